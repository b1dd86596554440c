"""A turn answered by a streaming model: sentences are spoken and announced while the model is still writing.

`answer_turn` runs for real (Postgres, Redis, Azurite, eSpeak) against the fake OpenAI server streaming
its answer token by token through the real `langchain-openai` SDK.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from shared import activities
from shared.models import TurnInput
from shared.services import Services
from shared.storage.handoff import TurnKeys
from shared.storage.reply_stream import read_stream, stream_key
from tests.conftest import AppServices
from tests.fakes.openai_server import Answer, BreaksMidStream, CallsTools, FakeOpenAIServer
from tests.turn_inputs import caller_turn

THREE_SENTENCES = "We open at 8 am on weekdays. On Sundays we open at 9 am. We close on public holidays."
REPLY = json.dumps({"intent": "question", "text": THREE_SENTENCES})


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(tokens_per_second=25) as server:
        yield server


@pytest.fixture(scope="module")
def services(app_services: AppServices, model: FakeOpenAIServer) -> Services:
    return app_services(openai_base_url=f"{model.url}/v1", openai_model="fake-streaming")


def turn(services: Services, text: str, request_id: str = "r1") -> tuple[TurnInput, str]:
    request = caller_turn(services, text=text, request_id=request_id)
    return request, stream_key(services.settings.redis_key_prefix, request.conversation_id, 1)


def entries(services: Services, key: str) -> list[tuple[str, dict[str, Any], float]]:
    """(event, data, when Redis stored it in Unix seconds) of every entry of the stream."""
    raw: list[tuple[bytes, dict[bytes, bytes]]] = services.redis.xrange(key)  # type: ignore[assignment]
    stored_at = [int(entry_id.split(b"-")[0]) / 1000 for entry_id, _ in raw]
    return [(event, data, at) for (event, data), at in zip(read_stream(services.redis, key), stored_at, strict=True)]


def test_the_first_sentence_is_announced_before_the_model_has_finished_writing(
    services: Services, model: FakeOpenAIServer
) -> None:
    model.script(Answer(REPLY))
    request, key = turn(services, "when do you open")

    stored = activities.answer_turn(services, request)

    stream = entries(services, key)
    assert [event for event, _, _ in stream] == ["start", "sentence", "sentence", "sentence", "done"]
    assert stream[0][1] == {"next_event": "utterance-2"}, "the next event name comes before any audio"
    assert [data["text"] for event, data, _ in stream if event == "sentence"] == [
        "We open at 8 am on weekdays.",
        "On Sundays we open at 9 am.",
        "We close on public holidays.",
    ]
    first_sentence_at = stream[1][2]
    assert first_sentence_at < model.streams_finished_at[-1], "first audio before the last token"
    assert stored.reply_text == THREE_SENTENCES
    assert stored.first_audio_ms is not None
    assert stored.llm is not None
    assert (stored.llm.provider, stored.llm.model, stored.llm.output_tokens) == (
        "openai",
        "fake-streaming",
        len(REPLY.split()),
    )
    assert model.requests[-1].body["stream"] is True
    assert services.audio.get(stored.audio_blob or "") is not None, "the whole reply is stored for the audio route"
    expecting = services.redis.get(TurnKeys(services.settings.redis_key_prefix, request.conversation_id).expecting)
    assert expecting == b"utterance-2"


def test_a_turn_that_ends_the_call_announces_no_next_event(services: Services, model: FakeOpenAIServer) -> None:
    model.script(
        CallsTools((("end_call", {"reason": "done"}),)),
        Answer('{"intent": "goodbye", "text": "Thank you for calling. Goodbye!"}'),
    )
    request, key = turn(services, "that is all")

    stored = activities.answer_turn(services, request)

    assert stored.action.value == "end_call"
    assert entries(services, key)[0][:2] == ("start", {"next_event": None})
    keys = TurnKeys(services.settings.redis_key_prefix, request.conversation_id)
    assert services.redis.get(keys.expecting) == b""


def test_a_stream_that_breaks_off_is_answered_again_and_the_stream_restarts(
    services: Services, model: FakeOpenAIServer
) -> None:
    model.script(BreaksMidStream(REPLY), Answer('{"intent": "question", "text": "We open at 8 am."}'))
    request, key = turn(services, "when do you open")

    stored = activities.answer_turn(services, request)

    assert stored.reply_text == "We open at 8 am."
    events = [event for event, _, _ in entries(services, key)]
    assert events[-2:] == ["sentence", "done"]
    assert events.count("restart") <= 1


def test_a_retried_turn_is_handed_over_again_not_answered_twice(services: Services, model: FakeOpenAIServer) -> None:
    model.script(Answer(REPLY))
    request, _ = turn(services, "when do you open", request_id="retried")
    first = activities.answer_turn(services, request)
    asked = len(model.requests)

    again = activities.answer_turn(services, request)

    assert again == first
    assert len(model.requests) == asked, "the model was not asked again"
    keys = TurnKeys(services.settings.redis_key_prefix, request.conversation_id)
    assert isinstance(services.redis, redis.Redis)
    assert services.redis.get(keys.reply("retried")) is not None
