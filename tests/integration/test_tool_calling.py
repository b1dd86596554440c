"""Tool calling through the real `langchain-openai` and `openai` SDKs against the fake OpenAI server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.documents import Document

from shared.agent.chain import chat_model_for, reply_to
from shared.agent.tools import ToolBox
from shared.config import Settings
from shared.models import AgentProfile, AnsweredReply, Intent, TurnAction
from shared.security.egress import EgressPolicy
from tests.fakes.openai_server import Answer, CallsTools, FakeOpenAIServer, RateLimited
from tests.title_retriever import TitleRetriever

FAREWELL = '{"intent": "goodbye", "text": "Thanks for calling, goodbye."}'


@pytest.fixture
def openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def settings_for(server: FakeOpenAIServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "azure_openai_endpoint": "",
        "azure_openai_chat_deployment": "",
        "openai_api_key": "sk-test",
        "openai_base_url": f"{server.url}/v1",
        "openai_model": "fake-model",
        "llm_timeout_seconds": 5.0,
        "llm_max_retries": 0,
    }
    return Settings(**(values | overrides))


def converse(demo: AgentProfile, settings: Settings, utterance: str) -> tuple[ToolBox, AnsweredReply]:
    retriever = TitleRetriever(
        documents=[Document(page_content=k.text, metadata={"title": k.title}) for k in demo.knowledge]
    )
    box = ToolBox(profile=demo, retriever=retriever, egress=EgressPolicy(()), conversation_id="c1", turn=2)
    model = chat_model_for(demo, settings, tools=box.specs())
    return box, reply_to(demo, retriever, utterance, [], model=model, toolbox=box)


def test_the_model_is_offered_the_tools_and_its_end_call_ends_the_turn(
    demo: AgentProfile, openai: FakeOpenAIServer
) -> None:
    openai.script(CallsTools((("end_call", {"reason": "caller is done"}),)), Answer(FAREWELL))

    box, answered = converse(demo, settings_for(openai), "that is all, thanks")

    first, second = openai.requests
    offered = {t["function"]["name"] for t in first.body["tools"]}
    assert offered == {"search_knowledge", "end_call", "transfer_to_human"}
    assert first.body["temperature"] == demo.model.temperature
    assert first.body["max_completion_tokens"] == demo.model.max_tokens
    assistant, tool = second.body["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "end_call"
    assert tool == {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": '{"ending": true}'}
    assert box.action is TurnAction.END_CALL
    assert [(c.name, c.arguments) for c in box.calls] == [("end_call", {"reason": "caller is done"})]
    assert answered.reply.intent is Intent.GOODBYE


def test_a_search_tool_call_reads_the_knowledge_and_both_calls_count_in_the_usage(
    demo: AgentProfile, openai: FakeOpenAIServer
) -> None:
    openai.script(
        CallsTools((("search_knowledge", {"query": "delivery"}),)),
        Answer('{"intent": "question", "text": "Delivery costs 40 rupees."}'),
    )

    box, answered = converse(demo, settings_for(openai), "how much is it to bring food to me")

    [call] = box.calls
    assert json.loads(call.result)[0]["title"] == "Delivery"
    usage = answered.llm
    sent = [r.body for r in openai.requests]
    assert usage.input_tokens == sum(sum(len(str(m.get("content", "")).split()) for m in b["messages"]) for b in sent)
    assert box.action is TurnAction.CONTINUE


def test_when_the_model_fails_after_asking_for_a_tool_the_offline_model_finishes_the_turn(
    demo: AgentProfile, openai: FakeOpenAIServer
) -> None:
    openai.script(CallsTools((("transfer_to_human", {"reason": "asked"}),)), RateLimited())

    box, answered = converse(demo, settings_for(openai), "can i speak to a person")

    assert box.action is TurnAction.TRANSFER
    assert answered.llm.provider == "offline"
    assert "connecting you" in answered.reply.text
