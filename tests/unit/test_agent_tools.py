"""The agent's tools through the real chain with the offline model: every built-in tool path, no network."""

from __future__ import annotations

import json

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

from shared.agent.chain import reply_to, total_usage
from shared.agent.offline_model import TOOL_FAILED_REPLY, callback_arguments
from shared.agent.tools import ToolBox
from shared.models import AgentProfile, AnsweredReply, Intent, ModelUsage, TurnAction
from shared.security.egress import EgressPolicy
from tests.title_retriever import TitleRetriever

NO_EGRESS = EgressPolicy(allowed_hosts=())


class SecondLookRetriever(BaseRetriever):
    """Finds nothing for the utterance itself, then `documents` for any other query (the tool's own)."""

    documents: list[Document]
    queries: list[str] = Field(default_factory=list)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        self.queries.append(query)
        return self.documents if len(self.queries) > 1 else []


def toolbox(profile: AgentProfile, retriever: BaseRetriever) -> ToolBox:
    return ToolBox(profile=profile, retriever=retriever, egress=NO_EGRESS, conversation_id="c1", turn=3)


def answer(profile: AgentProfile, utterance: str, retriever: BaseRetriever | None = None) -> AnsweredReply:
    retriever = retriever or TitleRetriever(
        documents=[Document(page_content=k.text, metadata={"title": k.title}) for k in profile.knowledge]
    )
    return reply_to(profile, retriever, utterance, [], toolbox=toolbox(profile, retriever))


def test_asking_for_a_person_calls_transfer_to_human_with_the_agents_number(demo: AgentProfile) -> None:
    answered = answer(demo, "i want to talk to a human")

    assert answered.action is TurnAction.TRANSFER
    assert answered.transfer_to == demo.transfer_number == "+918045550100"
    [call] = answered.tool_calls
    assert call.name == "transfer_to_human"
    assert json.loads(call.result) == {"transferring_to": "+918045550100"}
    assert (answered.reply.intent, "connecting you" in answered.reply.text) == (Intent.HUMAN, True)


def test_an_agent_without_a_transfer_number_is_not_offered_the_transfer_and_keeps_the_call(
    demo: AgentProfile,
) -> None:
    answered = answer(demo.model_copy(update={"transfer_number": None}), "i want to talk to a human")

    assert answered.action is TurnAction.CONTINUE
    assert answered.tool_calls == []
    assert answered.reply.intent is Intent.HUMAN


def test_goodbye_calls_end_call(demo: AgentProfile) -> None:
    answered = answer(demo, "goodbye")

    assert answered.action is TurnAction.END_CALL
    assert [c.name for c in answered.tool_calls] == ["end_call"]
    assert answered.reply.text == demo.intents[Intent.GOODBYE].reply


def test_a_question_the_first_retrieval_missed_is_searched_again_and_answered_from_what_the_tool_found(
    demo: AgentProfile,
) -> None:
    retriever = SecondLookRetriever(documents=[Document(page_content="Parking is behind the building.")])

    answered = answer(demo, "tell me about parking", retriever)

    [call] = answered.tool_calls
    assert call.name == "search_knowledge"
    assert retriever.queries[1] == call.arguments["query"]
    assert "Parking is behind the building." in call.result
    assert answered.reply.intent is Intent.QUESTION
    assert answered.reply.text == "Parking is behind the building."
    assert answered.action is TurnAction.CONTINUE


def test_a_search_that_finds_nothing_gets_the_not_understood_line(demo: AgentProfile) -> None:
    answered = answer(demo, "purple elephants dance")

    assert [c.name for c in answered.tool_calls] == ["search_knowledge"]
    assert answered.reply.text == demo.not_understood


def test_a_turn_with_tool_calls_adds_up_the_usage_of_every_model_call(demo: AgentProfile) -> None:
    answered = answer(demo, "goodbye")

    single = answer(demo.model_copy(update={"transfer_number": None}), "hello")
    assert answered.llm.provider == "offline"
    assert answered.llm.input_tokens is not None
    assert single.llm.input_tokens is not None
    assert answered.llm.input_tokens > single.llm.input_tokens, "two prompts were read, the second one longer"


def test_usage_over_several_calls_is_unknown_when_any_call_did_not_report_it() -> None:
    known = ModelUsage(provider="openai", model="m", input_tokens=3, output_tokens=4, cost_usd=0.5)
    unknown = known.model_copy(update={"output_tokens": None, "cost_usd": None})

    assert total_usage([known, known]) == known.model_copy(
        update={"input_tokens": 6, "output_tokens": 8, "cost_usd": 1.0}
    )
    assert total_usage([known, unknown]).output_tokens is None
    assert total_usage([known, unknown]).input_tokens == 6


def test_a_tool_the_agent_does_not_have_is_answered_with_an_error_not_run(demo: AgentProfile) -> None:
    box = toolbox(demo, TitleRetriever(documents=[]))

    [message] = box.run([{"name": "delete_everything", "args": {}, "id": "call_1", "type": "tool_call"}])

    assert message.text.startswith("error:")
    assert box.calls[0].error
    assert box.action is TurnAction.CONTINUE


def test_a_callback_request_is_read_for_number_and_time() -> None:
    assert callback_arguments("please call me back tomorrow at 5 pm on 98450 12345") == {
        "phone_number": "9845012345",
        "when": "tomorrow at 5 pm",
        "note": "please call me back tomorrow at 5 pm on 98450 12345",
    }
    assert callback_arguments("call me back")["phone_number"] == "caller"
    assert callback_arguments("call me back")["when"] == "as soon as possible"


def test_without_a_place_to_store_callbacks_the_agent_does_not_promise_one(demo: AgentProfile) -> None:
    answered = answer(demo, "can you call me back tomorrow")

    assert answered.tool_calls == []
    assert "call you back" not in answered.reply.text


@pytest.mark.parametrize("utterance", ["where is order 4711", "what is the status of my order 4711"])
def test_an_http_tool_whose_pattern_matches_is_called_and_a_refusal_is_apologised_for(
    demo: AgentProfile, utterance: str
) -> None:
    tool = {
        "name": "order_status",
        "description": "Look up an order.",
        "url": "https://orders.example.com/status",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        "offline_pattern": r"order (?P<order_id>\d+)",
        "offline_reply": "Order {order_id} is {status}.",
    }
    agent = AgentProfile.model_validate(demo.model_dump() | {"tools": [tool]})

    answered = answer(agent, utterance)

    [call] = answered.tool_calls
    assert (call.name, call.arguments) == ("order_status", {"order_id": "4711"})
    assert call.error
    assert "not in HTTP_TOOL_ALLOWED_HOSTS" in call.result
    assert answered.reply.text == TOOL_FAILED_REPLY
