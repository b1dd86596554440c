"""Answers cite the knowledge chunks they came from, and the turn keeps the citations (real Postgres FTS)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.documents import Document

from shared import activities
from shared.agent.chain import citations
from shared.config import REPOSITORY_ROOT, Settings
from shared.models import TurnInput, TurnKind, TurnRecord
from shared.services import Services
from tests.fakes.openai_server import Answer, FakeOpenAIServer


def build(new_database: Callable[[], str], redis_url: str, blob_connection_string: str, **llm: Any) -> Services:
    settings = Settings(
        database_url=new_database(),
        redis_url=redis_url,
        redis_key_prefix=f"cite-{uuid.uuid4().hex[:8]}:",
        blob_connection_string=blob_connection_string,
        audio_container=f"audio{uuid.uuid4().hex[:8]}",
        agents_dir=REPOSITORY_ROOT / "agents",
        llm_max_retries=0,
        **llm,
    )
    services = Services(settings)
    activities.agent_profile(services, "demo")
    return services


@pytest.fixture(scope="module")
def offline(new_database: Callable[[], str], redis_url: str, blob_connection_string: str) -> Iterator[Services]:
    services = build(new_database, redis_url, blob_connection_string)
    yield services
    services.pool.close()


def ask(services: Services, text: str) -> TurnRecord:
    conversation_id = str(uuid.uuid4())
    services.conversations.create(conversation_id, "demo", "en-US", "api")
    request = TurnInput(
        conversation_id=conversation_id,
        agent="demo",
        language="en-US",
        turn=1,
        kind=TurnKind.UTTERANCE,
        request_id="r1",
        text=text,
        next_event="utterance-2",
        received_at=time.time(),
    )
    activities.answer_turn(services, request)
    stored = services.conversations.get_turn(conversation_id, 1)
    assert stored is not None
    return stored


def test_an_answer_from_knowledge_cites_its_chunk_and_the_turn_keeps_it(offline: Services) -> None:
    turn = ask(offline, "how much does delivery cost")

    [citation] = turn.citations
    assert citation.title == "Delivery"
    assert citation.chunk_id
    assert citation.document_id
    assert "40 rupees" in turn.reply_text


def test_small_talk_cites_nothing(offline: Services) -> None:
    assert ask(offline, "how are you today").citations == []


def test_a_real_models_citations_keep_only_chunks_it_was_shown(
    new_database: Callable[[], str], redis_url: str, blob_connection_string: str
) -> None:
    with FakeOpenAIServer() as model:
        services = build(
            new_database, redis_url, blob_connection_string, openai_base_url=f"{model.url}/v1", openai_model="m"
        )
        try:
            [delivery] = services.knowledge.search("demo", "delivery cost", 1)
            model.script(
                Answer(
                    json.dumps({"intent": "question", "text": "It is 40 rupees.", "cites": [delivery.chunk_id, "x"]})
                )
            )
            turn = ask(services, "how much does delivery cost")
        finally:
            services.pool.close()
        shown = json.loads(model.requests[-1].body["messages"][0]["content"].rpartition("\n")[2])

    assert delivery.chunk_id in [passage["id"] for passage in shown], "the model is shown each passage's id"
    assert [c.chunk_id for c in turn.citations] == [delivery.chunk_id], "an id it was not shown is dropped"


def test_citations_are_deduplicated_and_only_of_shown_chunks() -> None:
    shown = [Document(page_content="a", metadata={"chunk_id": "1", "title": "A"}), Document(page_content="b")]

    assert [c.chunk_id for c in citations(["1", "1", "2"], shown)] == ["1"]
