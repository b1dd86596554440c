"""The agent chain: retrieve -> prompt -> chat model -> parsed reply.

Callers get an `AgentReply`; which chat model answers (the offline model today, Azure OpenAI then
OpenAI as fallbacks later) is decided here and nowhere else.
"""

from __future__ import annotations

from operator import itemgetter

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnablePassthrough

from shared.agent.offline_model import OfflineAgentModel
from shared.agent.prompt import PROMPT, format_knowledge, history_messages
from shared.models import AgentProfile, AgentReply, TurnRecord


def chat_model_for(profile: AgentProfile) -> BaseChatModel:
    return OfflineAgentModel(agent=profile)


def build_chain(profile: AgentProfile, retriever: BaseRetriever) -> Runnable[dict[str, object], AgentReply]:
    """The runnable that turns {"utterance", "history"} into an AgentReply for this agent."""
    knowledge = itemgetter("utterance") | retriever | format_knowledge
    return (
        RunnablePassthrough.assign(
            knowledge=knowledge, display_name=lambda _: profile.display_name, language=lambda _: profile.language
        )
        | PROMPT
        | chat_model_for(profile)
        | PydanticOutputParser(pydantic_object=AgentReply)
    )


def reply_to(
    profile: AgentProfile, retriever: BaseRetriever, utterance: str, history: list[TurnRecord], summary: str = ""
) -> AgentReply:
    """The agent's reply to one utterance, given recent turns and a summary of what came before."""
    chain = build_chain(profile, retriever)
    return chain.invoke(
        {"utterance": utterance, "history": history_messages(history), "summary": summary or "(nothing yet)"}
    )
