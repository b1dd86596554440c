"""The agent chain: retrieve -> prompt -> chat model -> parsed reply.

Callers get an `AgentReply`; which chat model answers (the offline model today, Azure OpenAI then
OpenAI as fallbacks later) is decided here and nowhere else. Whatever the model says, the caller
hears something: output that is not a reply with words in it becomes the agent's fallback line.
"""

from __future__ import annotations

import logging
from operator import itemgetter
from typing import Annotated

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from pydantic import StringConstraints

from shared.agent.offline_model import OfflineAgentModel
from shared.agent.prompt import PROMPT, format_knowledge, history_messages, memory_messages
from shared.models import AgentProfile, AgentReply, Intent, TurnRecord

log = logging.getLogger(__name__)


class SpokenReply(AgentReply):
    """A reply with words to speak: blank text fails parsing, as malformed output does."""

    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def chat_model_for(profile: AgentProfile) -> BaseChatModel:
    return OfflineAgentModel(agent=profile)


def reply_parser(profile: AgentProfile) -> Runnable[BaseMessage | str, AgentReply]:
    """Model output -> AgentReply; output that is no usable reply becomes the agent's not-understood line."""

    def fallback(_: BaseMessage | str) -> AgentReply:
        log.warning("agent %s: the model's output is no usable reply; saying the fallback line", profile.name)
        return AgentReply(intent=Intent.NOT_UNDERSTOOD, text=profile.not_understood)

    return PydanticOutputParser(pydantic_object=SpokenReply).with_fallbacks(
        [RunnableLambda(fallback)], exceptions_to_handle=(OutputParserException,)
    )


def build_chain(profile: AgentProfile, retriever: BaseRetriever) -> Runnable[dict[str, object], AgentReply]:
    """The runnable that turns {"utterance", "history", "memory"} into an AgentReply for this agent."""
    knowledge = itemgetter("utterance") | retriever | format_knowledge
    return (
        RunnablePassthrough.assign(
            knowledge=knowledge, display_name=lambda _: profile.display_name, language=lambda _: profile.language
        )
        | PROMPT
        | chat_model_for(profile)
        | reply_parser(profile)
    )


def reply_to(
    profile: AgentProfile, retriever: BaseRetriever, utterance: str, history: list[TurnRecord], summary: str = ""
) -> AgentReply:
    """The agent's reply to one utterance, given recent turns and a summary of what came before."""
    chain = build_chain(profile, retriever)
    return chain.invoke(
        {"utterance": utterance, "history": history_messages(history), "memory": memory_messages(summary)}
    )
