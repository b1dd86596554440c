"""The offline agent model: a deterministic LangChain chat model that needs no network.

It reads its prompt like an LLM would: the caller's utterance (the last message) and the knowledge
passages the retriever put into the system message, read back with a JSON parser. It recognises the
intent with the agent's phrase rules and answers from the best passage or with the agent's reply
templates. It is what `make dev` and the tests talk to; Azure OpenAI and OpenAI are placed in front
of it in the same chain.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from shared.agent.intents import classify, words
from shared.agent.prompt import Passage, parse_knowledge
from shared.models import AgentProfile, Intent

OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL_NAME = "offline-agent"
"""It has no tokenizer: its token counts are whitespace-separated words of the prompt and of its reply."""
ANSWER_SENTENCES = 2
STEM_LENGTH = 4
"""Words sharing their first letters count as the same word ("opening" ~ "open") when picking sentences."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "can",
        "do",
        "does",
        "how",
        "i",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "the",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "you",
        "your",
    ]
)

DEFAULT_REPLIES: dict[Intent, str] = {
    Intent.GREETING: "Hello! How can I help you?",
    Intent.SMALL_TALK: "I'm doing well, thank you. How can I help you?",
    Intent.HUMAN: "I'm connecting you to a member of our team now.",
    Intent.GOODBYE: "Thank you for calling. Goodbye!",
}


def _stems(text: str) -> set[str]:
    return {w[:STEM_LENGTH] for w in words(text) if w not in _STOP_WORDS}


def answer_from(passage: str, question: str) -> str:
    """The sentences of the passage that share the most words with the question, in passage order."""
    sentences = [s for s in _SENTENCE_END.split(passage.strip()) if s]
    wanted = _stems(question)
    scored = sorted(range(len(sentences)), key=lambda i: (-len(_stems(sentences[i]) & wanted), i))[:ANSWER_SENTENCES]
    return " ".join(sentences[i] for i in sorted(scored))


class OfflineAgentModel(BaseChatModel):
    """Deterministic stand-in for an LLM, built for one agent profile."""

    agent: AgentProfile

    @property
    def _llm_type(self) -> str:
        return OFFLINE_MODEL_NAME

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        utterance = messages[-1].text if messages and isinstance(messages[-1], HumanMessage) else ""
        system = messages[0].text if messages and isinstance(messages[0], SystemMessage) else ""
        passages = parse_knowledge(system)
        intent = classify(utterance, self.agent.intents, has_knowledge=bool(passages))
        content = json.dumps({"intent": intent.value, "text": self._reply(intent, utterance, passages)})
        input_tokens = sum(len(m.text.split()) for m in messages)
        output_tokens = len(content.split())
        message = AIMessage(
            content,
            response_metadata={"model_provider": OFFLINE_PROVIDER, "model_name": OFFLINE_MODEL_NAME},
            usage_metadata={
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _reply(self, intent: Intent, utterance: str, passages: list[Passage]) -> str:
        if intent is Intent.QUESTION:
            return answer_from(passages[0].text, utterance)
        if intent is Intent.NOT_UNDERSTOOD:
            return self.agent.not_understood
        rule = self.agent.intents.get(intent)
        return rule.reply if rule is not None and rule.reply else DEFAULT_REPLIES[intent]
