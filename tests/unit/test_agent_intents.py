"""An agent file may declare intents of its own: turns record them, models are told them, the offline one hears them."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from shared.agent.catalog import AgentFileError, load_agent_file
from shared.agent.chain import reply_parser, reply_to
from shared.agent.prompt import intents_of
from shared.config import REPOSITORY_ROOT
from shared.models import AgentProfile, AgentReply, Intent, TurnKind, TurnRecord
from tests.chat_model_inputs import recording_chat_model_inputs
from tests.title_retriever import TitleRetriever

ORDER_STATUS = """
[intents.order_status]
description = "asks where an order is"
phrases = ["where is my order", "order status"]
reply = "Let me check on your order."
"""


@pytest.fixture
def shop(tmp_path: Path) -> AgentProfile:
    text = (REPOSITORY_ROOT / "agents" / "demo.toml").read_text(encoding="utf-8")
    path = tmp_path / "demo.toml"
    path.write_text(text + ORDER_STATUS, encoding="utf-8")
    return load_agent_file(path)


def knowledge(agent: AgentProfile) -> TitleRetriever:
    return TitleRetriever(
        documents=[Document(page_content=k.text, metadata={"title": k.title}) for k in agent.knowledge]
    )


def test_the_agents_own_intent_is_on_its_list_after_the_built_in_ones(shop: AgentProfile) -> None:
    assert shop.intent_names()[-1] == "order_status"
    assert set(shop.intent_names()) >= {i.value for i in Intent}
    assert intents_of(shop).endswith("order_status (asks where an order is)")


def test_the_offline_model_hears_it_before_a_knowledge_answer_and_says_its_reply(shop: AgentProfile) -> None:
    with recording_chat_model_inputs() as sent:
        reply = reply_to(shop, knowledge(shop), "where is my order from the menu", []).reply

    assert (reply.intent, reply.text) == ("order_status", "Let me check on your order.")
    assert "order_status (asks where an order is)" in sent.system_texts()[0]


def test_a_models_reply_with_the_agents_intent_parses_and_one_off_the_list_is_the_fallback(shop: AgentProfile) -> None:
    own = FakeListChatModel(responses=['{"text": "On its way.", "intent": "order_status"}']) | reply_parser(shop)
    other = FakeListChatModel(responses=['{"text": "On its way.", "intent": "refund"}']) | reply_parser(shop)

    assert own.invoke("x") == AgentReply(intent="order_status", text="On its way.")
    assert other.invoke("x") == AgentReply(intent=Intent.NOT_UNDERSTOOD, text=shop.not_understood)


def test_built_in_intent_names_stay_the_built_in_intents(shop: AgentProfile) -> None:
    turn = TurnRecord.model_validate(
        {
            "conversation_id": "c",
            "turn": 1,
            "kind": TurnKind.UTTERANCE,
            "request_id": "r",
            "user_text": "bye",
            "intent": "goodbye",
            "reply_text": "Bye.",
        }
    )
    assert turn.intent is Intent.GOODBYE
    assert TurnRecord.model_validate(turn.model_dump() | {"intent": "order_status"}).intent == "order_status"


def test_an_intent_name_that_is_no_plain_name_is_refused_with_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(
        'name = "shop"\ndisplay_name = "Shop"\ngreeting = "Hi"\n[intents."Order Status"]\n', encoding="utf-8"
    )

    with pytest.raises(AgentFileError, match=r"shop\.toml: intents\.Order Status"):
        load_agent_file(path)
