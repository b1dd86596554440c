"""A devhost whose language model is an OpenAI-compatible server (the fake): typed turns get its words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devhost.process import DevHost
from tests.e2e.conftest import StartDevHost
from tests.fakes.openai_server import Answer, FakeOpenAIServer

SECRET_KEY = "sk-e2e-never-logged"
MODEL_SAYS = '{"intent": "question", "text": "We open at seven, said the real model."}'


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost, model_server: FakeOpenAIServer) -> DevHost:
    return start_devhost(
        OPENAI_BASE_URL=f"{model_server.url}/v1",
        OPENAI_API_KEY=SECRET_KEY,
        OPENAI_MODEL="fake-e2e-model",
        LLM_TIMEOUT_SECONDS="5",
        LLM_MAX_RETRIES="0",
    )


def test_a_typed_turn_is_answered_with_the_configured_models_words_and_shows_its_usage(
    host: DevHost, model_server: FakeOpenAIServer
) -> None:
    model_server.script(Answer(MODEL_SAYS))
    started = host.post("/api/conversations", json={"agent": "demo"})
    assert started.status_code == 201, started.text
    conversation_id = started.json()["conversation_id"]

    turn = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": "when do you open"}, timeout=60)

    assert turn.status_code == 200, f"{turn.text}\n{host.log_tail()}"
    assert turn.json()["intent"] == "question"
    assert turn.json()["reply"]["text"] == "We open at seven, said the real model."
    [sent] = model_server.requests
    assert sent.body["model"] == "fake-e2e-model"
    assert "when do you open" in sent.body["messages"][-1]["content"]
    assert SECRET_KEY not in host.log_tail(lines=1_000_000)
    shown = host.get(f"/api/conversations/{conversation_id}")
    assert shown.status_code == 200, shown.text
    greeting, answered = shown.json()["turns"]
    assert greeting["llm"] is None, "the greeting uses no model"
    assert answered["llm"] == {
        "provider": "openai",
        "model": "fake-e2e-model",
        "input_tokens": sum(len(m["content"].split()) for m in sent.body["messages"]),
        "output_tokens": len(MODEL_SAYS.split()),
        "cost_usd": None,
    }, "the fake reports words as tokens; a model missing from the price table has no cost"
