"""The offline agent model through the real LangChain chain, with an in-memory retriever."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.documents import Document

from shared.agent.catalog import AgentFileError, load_agent_file, load_agents
from shared.agent.chain import reply_to
from shared.agent.intents import classify
from shared.agent.offline_model import answer_from
from shared.agent.prompt import (
    PROMPT,
    SUMMARY_KEY,
    format_knowledge,
    history_messages,
    memory_messages,
    parse_knowledge,
)
from shared.config import REPOSITORY_ROOT
from shared.models import AgentProfile, Intent, TurnKind, TurnRecord
from tests.title_retriever import TitleRetriever


@pytest.fixture(scope="module")
def retriever(demo: AgentProfile) -> TitleRetriever:
    return TitleRetriever(
        documents=[Document(page_content=k.text, metadata={"title": k.title}) for k in demo.knowledge]
    )


@pytest.mark.parametrize(
    ("utterance", "intent", "needle"),
    [
        ("hello there", Intent.GREETING, "Hello!"),
        ("good morning", Intent.GREETING, "Hello!"),
        ("how are you today", Intent.SMALL_TALK, "doing well"),
        ("what are your opening hours", Intent.QUESTION, "8 am to 10 pm"),
        ("hello, when do you open on sunday", Intent.QUESTION, "Sundays we open at 9 am"),
        ("how much does delivery cost", Intent.QUESTION, "40 rupees"),
        ("i want to talk to a human", Intent.HUMAN, "connecting you"),
        ("hello, can i speak to a person please", Intent.HUMAN, "connecting you"),
        ("goodbye", Intent.GOODBYE, "Goodbye!"),
        ("purple elephants dance", Intent.NOT_UNDERSTOOD, "did not catch that"),
    ],
)
def test_demo_agent_answers(
    demo: AgentProfile, retriever: TitleRetriever, utterance: str, intent: Intent, needle: str
) -> None:
    reply = reply_to(demo, retriever, utterance, []).reply
    assert reply.intent is intent
    assert needle in reply.text


def test_the_prompt_carries_history_summary_and_knowledge(demo: AgentProfile, retriever: TitleRetriever) -> None:
    turns = [
        TurnRecord(
            conversation_id="c",
            turn=1,
            kind=TurnKind.UTTERANCE,
            request_id="r1",
            user_text="hello",
            intent=Intent.GREETING,
            reply_text="Hello! What would you like to know?",
        )
    ]
    messages = PROMPT.invoke(
        {
            "display_name": demo.display_name,
            "language": demo.language,
            "knowledge": format_knowledge(retriever.invoke("opening hours")),
            "memory": memory_messages("3 turns; asked about delivery"),
            "history": history_messages(turns),
            "utterance": "when do you open",
        }
    ).to_messages()
    assert [type(m).__name__ for m in messages] == [
        "SystemMessage",
        "HumanMessage",
        "HumanMessage",
        "AIMessage",
        "HumanMessage",
    ]
    assert json.loads(messages[1].text) == {SUMMARY_KEY: "3 turns; asked about delivery"}
    assert parse_knowledge(messages[0].text)[0].title == "Opening hours"
    assert messages[-1].text == "when do you open"


def test_greeting_only_wins_when_it_is_most_of_what_was_said(demo: AgentProfile) -> None:
    assert classify("hello", demo.intents, has_knowledge=True) is Intent.GREETING
    assert classify("hello what is on the menu today", demo.intents, has_knowledge=True) is Intent.QUESTION
    assert classify("hello what is on the menu today", demo.intents, has_knowledge=False) is Intent.GREETING
    assert classify("   ", demo.intents, has_knowledge=True) is Intent.NOT_UNDERSTOOD


def test_answer_picks_the_sentences_that_match_the_question() -> None:
    passage = "We deliver nearby. Delivery costs 40 rupees. Parking is at the back. Cakes are fresh."
    assert answer_from(passage, "how much does delivery cost") == "We deliver nearby. Delivery costs 40 rupees."
    assert "Parking is at the back." in answer_from(passage, "where can I park")


def test_every_agent_file_in_the_repository_loads() -> None:
    agents = load_agents(REPOSITORY_ROOT / "agents")
    assert "demo" in {a.name for a in agents}
    assert all(a.listening_phrases() for a in agents)


def test_agent_file_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "broken"\n', encoding="utf-8")
    with pytest.raises(AgentFileError, match=r"broken\.toml"):
        load_agent_file(broken)
    misnamed = tmp_path / "other.toml"
    misnamed.write_text('name = "demo"\ndisplay_name = "x"\ngreeting = "hi"\n', encoding="utf-8")
    with pytest.raises(AgentFileError, match="must match the file name"):
        load_agent_file(misnamed)
