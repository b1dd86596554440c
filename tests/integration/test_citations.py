"""Answers cite the knowledge chunks they came from, and the turn keeps the citations (real Postgres FTS)."""

from __future__ import annotations

import json

import pytest
from langchain_core.documents import Document

from shared import activities
from shared.agent.chain import citations
from shared.models import TurnRecord
from shared.services import Services
from tests.conftest import AppServices
from tests.fakes.openai_server import Answer, FakeOpenAIServer
from tests.turn_inputs import caller_turn


@pytest.fixture(scope="module")
def offline(app_services: AppServices) -> Services:
    return app_services()


def ask(services: Services, text: str) -> TurnRecord:
    request = caller_turn(services, text=text)
    activities.answer_turn(services, request)
    stored = services.conversations.get_turn(request.conversation_id, 1)
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


def test_a_real_models_citations_keep_only_chunks_it_was_shown(app_services: AppServices) -> None:
    with FakeOpenAIServer() as model:
        services = app_services(openai_base_url=f"{model.url}/v1", openai_model="m")
        [delivery] = services.knowledge.search("demo", "delivery cost", 1)
        cites = [delivery.chunk_id, "x"]
        model.script(Answer(json.dumps({"text": "It is 40 rupees.", "intent": "question", "cites": cites})))
        turn = ask(services, "how much does delivery cost")
        shown = json.loads(model.requests[-1].body["messages"][0]["content"].rpartition("\n")[2])

    assert delivery.chunk_id in [passage["id"] for passage in shown], "the model is shown each passage's id"
    assert [c.chunk_id for c in turn.citations] == [delivery.chunk_id], "an id it was not shown is dropped"


def test_citations_are_deduplicated_and_only_of_shown_chunks() -> None:
    shown = [Document(page_content="a", metadata={"chunk_id": "1", "title": "A"}), Document(page_content="b")]

    assert [c.chunk_id for c in citations(["1", "1", "2"], shown)] == ["1"]
