"""A web conversation's turn, answered by `answer_turn` for real (Postgres, Redis, Azurite, eSpeak, the
streaming OpenAI fake), sent to its Web PubSub group through the service SDK, heard by Microsoft's
Python client on the local Web PubSub."""

from __future__ import annotations

import base64
import json
import queue
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.messaging.webpubsubclient.models import CallbackType, OnGroupDataMessageArgs

from shared import activities
from shared.models import FinalizeInput, Outcome, TurnInput, TurnKind
from shared.realtime.interruptions import cut_to_heard
from shared.realtime.protocol import WEB_CHANNEL, group_of
from shared.realtime.replies import WebReplyStream
from shared.services import Services
from shared.speech.audio import decode_wav, encode_wav
from shared.speech.espeak import EspeakSynthesizer
from shared.storage.blobs import sentence_audio_name
from shared.storage.handoff import TurnKeys
from shared.storage.reply_stream import AnnouncedSentence
from shared.tenancy import DEMO_TENANT
from tests.conftest import AppServices
from tests.fakes.openai_server import Answer, FakeOpenAIServer
from tests.webpubsub_local import HUB, Emulator, local_webpubsub

THREE_SENTENCES = "We open at 8 am on weekdays. On Sundays we open at 9 am. We close on public holidays."
REPLY = json.dumps({"intent": "question", "text": THREE_SENTENCES})


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(tokens_per_second=40) as server:
        yield server


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with local_webpubsub() as running:
        yield running


@pytest.fixture(scope="module")
def services(app_services: AppServices, model: FakeOpenAIServer, emulator: Emulator) -> Services:
    return app_services(
        openai_base_url=f"{model.url}/v1",
        openai_model="fake-streaming",
        web_pubsub_connection_string=emulator.endpoint.connection_string,
        web_pubsub_hub=HUB,
    )


def web_turn(services: Services, channel: str = WEB_CHANNEL) -> TurnInput:
    conversation_id = str(uuid.uuid4())
    services.conversations.create(conversation_id, "demo", "en-US", channel)
    return TurnInput(
        conversation_id=conversation_id,
        tenant=DEMO_TENANT,
        agent="demo",
        language="en-US",
        turn=1,
        kind=TurnKind.UTTERANCE,
        request_id="key:u-1",
        text="when do you open",
        next_event="utterance-2",
        received_at=time.time(),
    )


def listening(emulator: Emulator, conversation_id: str) -> tuple[Any, queue.Queue[dict[str, Any]]]:
    """A client in the conversation's group, and what reaches it."""
    group = group_of(conversation_id)
    url = emulator.service().get_client_access_token(groups=[group])["url"]
    client = emulator.client(url)
    heard: queue.Queue[dict[str, Any]] = queue.Queue()

    def on_group(args: OnGroupDataMessageArgs) -> None:
        heard.put(dict(args.data))

    client.subscribe(CallbackType.GROUP_MESSAGE, on_group)
    return client, heard


def until_done(heard: queue.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    messages = [heard.get(timeout=10)]
    while messages[-1]["type"] != "reply.done":
        messages.append(heard.get(timeout=10))
    return messages


def placed(deltas: list[dict[str, Any]]) -> str:
    """The reply's text as a client assembles it: each delta at its offset."""
    text = ""
    for delta in deltas:
        text = text[: delta["offset"]] + delta["text"]
    return text


def test_a_web_turn_reaches_its_group_as_written_and_a_retry_sends_nothing_new(
    services: Services, model: FakeOpenAIServer, emulator: Emulator
) -> None:
    model.script(Answer(REPLY))
    request = web_turn(services)
    client, heard = listening(emulator, request.conversation_id)
    with client:
        stored = activities.answer_turn(services, request)
        messages = until_done(heard)
        assert [m["type"] for m in messages if m["type"] != "reply.delta"] == ["reply.audio"] * 3 + ["reply.done"]
        assert placed([m for m in messages if m["type"] == "reply.delta"]) == THREE_SENTENCES
        sentences = [m for m in messages if m["type"] == "reply.audio"]
        assert [s["index"] for s in sentences] == [0, 1, 2]
        for sentence in sentences:
            audio = decode_wav(base64.b64decode(sentence["audio"]))
            assert (audio.rate, sentence["sample_rate"]) == (16000, 16000)
        assert messages[-1]["text"] == stored.reply_text
        assert messages[-1]["id"] == "u-1"

        again = activities.answer_turn(services, request)  # the runtime delivered the activity twice
        assert again.turn == stored.turn
        with pytest.raises(queue.Empty):
            heard.get(timeout=0.5)


def test_a_restarted_reply_tells_the_client_to_drop_what_it_has_of_the_turn(
    services: Services, emulator: Emulator
) -> None:
    request = web_turn(services)
    assert services.realtime is not None
    stream = WebReplyStream(
        services.redis,
        services.settings.redis_key_prefix,
        request.conversation_id,
        1,
        sender=services.realtime,
        audio=services.audio.get,
        sample_rate=16000,
    )
    wav = encode_wav(EspeakSynthesizer().synthesize("We open.", "en-US", ""))
    services.audio.put("first.wav", wav)
    client, heard = listening(emulator, request.conversation_id)
    with client:
        stream.start("utterance-2")
        stream.text("We open at 8")
        stream.sentence(AnnouncedSentence(0, "We open.", "first.wav", 0.8, "espeak"))
        stream.restart("the streamed reply was replaced by the final one")
        stream.text("Sorry, say that again?")
        stream.sentence(AnnouncedSentence(0, "Sorry, say that again?", "first.wav", 0.8, "espeak"))
        stream.done({"turn": 1, "request_id": "key:u-1", "reply_text": "Sorry, say that again?"})
        messages = until_done(heard)
    assert [(m["type"], m.get("offset", m.get("index"))) for m in messages] == [
        ("reply.delta", 0),
        ("reply.audio", 0),
        ("reply.restart", None),
        ("reply.delta", 0),
        ("reply.audio", 0),
        ("reply.done", None),
    ]
    assert base64.b64decode(messages[1]["audio"]) == wav
    assert messages[3]["text"] == "Sorry, say that again?"


def test_a_phone_or_api_turn_sends_nothing_to_web_pubsub(services: Services, emulator: Emulator) -> None:
    request = web_turn(services, channel="api")
    client, heard = listening(emulator, request.conversation_id)
    with client:
        activities.answer_turn(services, request)
        with pytest.raises(queue.Empty):
            heard.get(timeout=0.5)


def test_an_unreachable_web_pubsub_loses_the_messages_not_the_turn(
    app_services: AppServices, model: FakeOpenAIServer
) -> None:
    away = app_services(
        openai_base_url=f"{model.url}/v1",
        web_pubsub_connection_string="Endpoint=http://127.0.0.1:9;AccessKey=nobody-listens;Version=1.0;",
    )
    model.script(Answer(REPLY))
    request = web_turn(away)
    started = time.monotonic()
    stored = activities.answer_turn(away, request)
    assert stored.reply_text == THREE_SENTENCES
    assert away.conversations.get_turn(request.conversation_id, 1) is not None
    assert time.monotonic() - started < 15


def test_a_web_session_hears_that_its_conversation_ended_and_why(services: Services, emulator: Emulator) -> None:
    request = web_turn(services)
    client, heard = listening(emulator, request.conversation_id)
    closing = FinalizeInput(conversation_id=request.conversation_id, tenant=DEMO_TENANT, outcome=Outcome.FAILED)
    with client:
        activities.finalize(services, closing)
        assert heard.get(timeout=10) == {"type": "conversation.ended", "outcome": "failed"}
        activities.finalize(services, closing.model_copy(update={"outcome": Outcome.COMPLETED}))  # a retry
        assert heard.get(timeout=10) == {"type": "conversation.ended", "outcome": "failed"}, "the first outcome"


def test_a_turn_interrupted_after_it_was_stored_keeps_only_what_was_heard_once(
    services: Services, model: FakeOpenAIServer
) -> None:
    model.script(Answer(REPLY))
    request = web_turn(services)
    conversation = request.conversation_id
    stored = activities.answer_turn(services, request)
    assert stored.reply_text == THREE_SENTENCES
    assert cut_to_heard(services, conversation, 1) is None, "not interrupted: nothing to cut"

    interrupted = TurnKeys(services.settings.redis_key_prefix, conversation).interrupted(1)
    services.redis.set(interrupted, 1)
    cut = cut_to_heard(services, conversation, 1)
    assert cut is not None
    assert cut.reply_text == "We open at 8 am on weekdays."
    assert cut.written_reply == THREE_SENTENCES, "what the agent wrote is kept beside what was heard"
    assert cut.audio_blob is not None
    heard = decode_wav(services.audio.get(cut.audio_blob) or b"")
    first = decode_wav(services.audio.get(sentence_audio_name(conversation, 1, 0)) or b"")
    assert heard.duration_seconds == pytest.approx(first.duration_seconds)
    assert cut_to_heard(services, conversation, 1) == cut, "cut again: the same turn"

    services.conversations.record_turn(stored.model_copy(update={"turn": 2, "request_id": "key:u-2"}))
    services.redis.set(interrupted, 0)
    assert cut_to_heard(services, conversation, 1) is None, "a later turn exists"
    assert services.conversations.get_turn(conversation, 1) == cut
