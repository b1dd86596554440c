"""The offline agent model: a deterministic LangChain chat model that needs no network.

It reads its prompt like an LLM would: the caller's utterance (the last message) and the knowledge
passages the retriever put into the system message, read back with a JSON parser. It recognises the
intent with the agent's phrase rules and answers from the best passage or with the agent's reply
templates. It is what `make dev` and the tests talk to; Azure OpenAI and OpenAI are placed in front
of it in the same chain.

Asked for an after-call report (a system message whose last line is the report's shape, see
`AFTER_CALL_PROMPT`), it reads the call record from the user message and reports by rule: see
`OfflineAgentModel._report`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from shared.agent.intents import STRONG_INTENTS, IntentKey, classify, words
from shared.agent.prompt import (
    CallRecord,
    Passage,
    ReportShape,
    parse_call_record,
    parse_knowledge,
    parse_report_shape,
)
from shared.models import AgentProfile, Intent
from shared.speech.sentences import sentences as sentences_of

OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL_NAME = "offline-agent"
"""It has no tokenizer: its token counts are whitespace-separated words of the prompt and of its reply."""
ANSWER_SENTENCES = 2
STEM_LENGTH = 4
"""Words sharing their first letters count as the same word ("opening" ~ "open") when picking sentences."""

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
    Intent.CALLBACK: "I have arranged for someone to call you back {when}.",
}
"""Replies for intents the agent file gives none; the callback one is a template over the tool's arguments."""


def _stems(text: str) -> set[str]:
    return {w[:STEM_LENGTH] for w in words(text) if w not in _STOP_WORDS}


def answer_from(passage: str, question: str) -> str:
    """The sentences of the passage that share the most words with the question, in passage order."""
    sentences = sentences_of(passage)
    wanted = _stems(question)
    scored = sorted(range(len(sentences)), key=lambda i: (-len(_stems(sentences[i]) & wanted), i))[:ANSWER_SENTENCES]
    return " ".join(sentences[i] for i in sorted(scored))


CALLBACK_TIME = re.compile(
    r"\b(?:(?:today|tomorrow|tonight|(?:mon|tues|wednes|thurs|fri|satur|sun)day)(?:\s+(?:morning|afternoon|evening))?"
    r"(?:\s+at\s+\d{1,2}(?::\d{2})?\s*(?:am|pm)?)?|at\s+\d{1,2}(?::\d{2})?\s*(?:am|pm)?|in\s+an?\s+hour)\b",
    re.IGNORECASE,
)
PHONE_DIGITS = re.compile(r"\+?\d[\d\s-]{5,18}\d")
TOOL_FAILED_REPLY = "Sorry, I could not do that right now."
TOOL_DONE_REPLY = "Done."
NO_CALLBACK_REPLY = "I'm sorry, I cannot arrange a callback on this line."


def callback_arguments(utterance: str) -> dict[str, str]:
    """What a caller asking for a callback said about where and when, read with two patterns."""
    number = PHONE_DIGITS.search(utterance)
    when = CALLBACK_TIME.search(utterance)
    return {
        "phone_number": re.sub(r"[\s-]", "", number.group()) if number else "caller",
        "when": when.group() if when else "as soon as possible",
        "note": utterance[:200],
    }


CALLER_NAME = re.compile(
    r"\b(?i:my\s+name\s+is)\s+([^\W\d_][\w'-]*(?:\s+[A-Z][\w'-]*)?)|\b(?i:this\s+is)\s+([A-Z][\w'-]*)"
)
""""my name is X" (X as said, and a capitalised surname after it), or "this is X" with X capitalised, so
"this is great" is no name."""


def caller_name(caller_lines: list[str]) -> str | None:
    """The name the caller last gave, read with CALLER_NAME; None if they gave none."""
    names = [m.group(1) or m.group(2) for line in caller_lines for m in CALLER_NAME.finditer(line)]
    return names[-1] if names else None


def _tool_names(tools: list[dict[str, Any]] | None) -> set[str]:
    return {t["function"]["name"] for t in tools or [] if isinstance(t, dict) and "function" in t}


def _last_tool_round(messages: list[BaseMessage]) -> tuple[AIMessage, list[ToolMessage]] | None:
    """The model's last tool calls and their answers, when the prompt ends with them."""
    answers: list[ToolMessage] = []
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            answers.insert(0, message)
        elif isinstance(message, AIMessage) and message.tool_calls and answers:
            return message, answers
        else:
            return None
    return None


class OfflineAgentModel(BaseChatModel):
    """Deterministic stand-in for an LLM, built for one agent profile.

    Given tools (`bind_tools`), it calls them as an LLM would, by rule: `transfer_to_human` when the
    caller asks for a person, `end_call` on goodbye, `schedule_callback` on a callback request, an
    HTTP tool whose `offline_pattern` matches, `search_knowledge` for a question the retrieved
    passages missed; then it answers from what the tools said.
    """

    agent: AgentProfile

    @property
    def _llm_type(self) -> str:
        return OFFLINE_MODEL_NAME

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = _tool_names(kwargs.get("tools"))
        round_ = _last_tool_round(messages)
        utterance = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        system = messages[0].text if messages and isinstance(messages[0], SystemMessage) else ""
        shape = parse_report_shape(system)
        if shape is not None:
            record = parse_call_record(utterance) or CallRecord(turns=0, transcript=[])
            message = self._report(shape, record)
        elif round_ is not None:
            message = self._answer_after_tools(*round_)
        else:
            message = self._first_answer(utterance, parse_knowledge(system), tools)
        input_tokens = sum(len(m.text.split()) for m in messages)
        output_tokens = len(message.text.split()) + sum(len(json.dumps(c["args"]).split()) for c in message.tool_calls)
        message.response_metadata = {"model_provider": OFFLINE_PROVIDER, "model_name": OFFLINE_MODEL_NAME}
        message.usage_metadata = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _first_answer(self, utterance: str, passages: list[Passage], tools: set[str]) -> AIMessage:
        intent = classify(utterance, self.agent.intents, has_knowledge=bool(passages))
        if intent is Intent.HUMAN and "transfer_to_human" in tools:
            return _calling("transfer_to_human", {"reason": "the caller asked for a person"})
        if intent is Intent.GOODBYE and "end_call" in tools:
            return _calling("end_call", {"reason": "the caller said goodbye"})
        if intent not in STRONG_INTENTS:
            for tool in self.agent.tools:
                found = re.search(tool.offline_pattern, utterance, re.IGNORECASE) if tool.offline_pattern else None
                if found is not None and tool.name in tools:
                    return _calling(tool.name, {k: v for k, v in found.groupdict().items() if v is not None})
        if intent is Intent.CALLBACK:
            if "schedule_callback" not in tools:
                return _saying(intent, NO_CALLBACK_REPLY)
            return _calling("schedule_callback", callback_arguments(utterance))
        if intent is Intent.NOT_UNDERSTOOD and "search_knowledge" in tools and _stems(utterance):
            return _calling("search_knowledge", {"query": " ".join(sorted(_stems(utterance)))})
        cites = [passages[0].id] if intent is Intent.QUESTION and passages[0].id else []
        return _saying(intent, self._reply(intent, utterance, passages), cites)

    def _answer_after_tools(self, asked: AIMessage, answers: list[ToolMessage]) -> AIMessage:
        call, answer = asked.tool_calls[-1], answers[-1]
        if answer.text.startswith("error:"):
            return _saying(Intent.NOT_UNDERSTOOD, TOOL_FAILED_REPLY)
        name = call["name"]
        if name == "transfer_to_human":
            return _saying(Intent.HUMAN, self._reply(Intent.HUMAN, "", []))
        if name == "end_call":
            return _saying(Intent.GOODBYE, self._reply(Intent.GOODBYE, "", []))
        if name == "schedule_callback":
            template = self._reply(Intent.CALLBACK, "", [])
            return _saying(Intent.CALLBACK, _filled(template, call["args"]) or template)
        if name == "search_knowledge":
            passages = parse_knowledge(answer.text)
            if not passages:
                return _saying(Intent.NOT_UNDERSTOOD, self.agent.not_understood)
            answer_text = answer_from(passages[0].text, str(call["args"].get("query", "")))
            return _saying(Intent.QUESTION, answer_text, [passages[0].id] if passages[0].id else [])
        tool = next((t for t in self.agent.tools if t.name == name), None)
        return _saying(Intent.QUESTION, _http_tool_reply(tool.offline_reply if tool else None, answer.text))

    def _report(self, shape: ReportShape, record: CallRecord) -> AIMessage:
        """The after-call report, by rule, as JSON text.

        Fields, from what the caller said (later mentions win): `caller_name` by CALLER_NAME;
        `callback_time` by CALLBACK_TIME in the lines the agent's rules hear as a callback request.
        Every other field is null: this is a deterministic stand-in, not a reader. The values are
        strings whatever type the shape asks for; the after-call chain nulls a wrong type. The summary
        reads like `describe` (turn count, intents, last request), with the facts found before the
        last request.
        """
        lines = [t.caller for t in record.transcript if t.caller]
        callbacks = [line for line in lines if classify(line, self.agent.intents, False) is Intent.CALLBACK]
        times = [m.group() for line in callbacks for m in CALLBACK_TIME.finditer(line)]
        rules: dict[str, str | None] = {
            "caller_name": caller_name(lines),
            "callback_time": times[-1] if times else None,
        }
        extraction = {name: rules.get(name) for name in shape.extraction}
        intents = Counter(t.intent for t in record.transcript if t.intent)
        parts = [f"{record.turns} turns"]
        if intents:
            parts.append("intents: " + ", ".join(f"{name} x{count}" for name, count in sorted(intents.items())))
        found = [f"{name} {value!r}" for name, value in extraction.items() if value is not None]
        if found:
            parts.append("noted: " + ", ".join(found))
        if lines:
            parts.append(f"last request: {lines[-1]!r}")
        return AIMessage(json.dumps({"summary": "; ".join(parts), "extraction": extraction}))

    def _reply(self, intent: IntentKey, utterance: str, passages: list[Passage]) -> str:
        if intent is Intent.QUESTION:
            return answer_from(passages[0].text, utterance)
        if intent is Intent.NOT_UNDERSTOOD:
            return self.agent.not_understood
        rule = self.agent.intents.get(intent)
        if rule is not None and rule.reply:
            return rule.reply
        return (
            DEFAULT_REPLIES.get(intent, self.agent.not_understood)
            if isinstance(intent, Intent)
            else self.agent.not_understood
        )


def _calling(name: str, arguments: dict[str, Any]) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": arguments, "id": f"call_{name}", "type": "tool_call"}])


def _saying(intent: IntentKey, text: str, cites: list[str] | None = None) -> AIMessage:
    """A reply in the prompt's format; `cites` names the passages it was answered from."""
    reply: dict[str, Any] = {"text": text, "intent": str(intent)}
    if cites:
        reply["cites"] = cites
    return AIMessage(json.dumps(reply))


def _filled(template: str, fields: dict[str, Any]) -> str | None:
    """`template` with its {field}s filled in; None when a field is missing or the template is malformed."""
    try:
        return template.format_map(fields)
    except (KeyError, IndexError, ValueError, AttributeError):
        return None


def _http_tool_reply(template: str | None, answer: str) -> str:
    """The tool's answer spoken through the agent's template ({field} of a JSON object answer), or as it is."""
    try:
        fields = json.loads(answer)
    except ValueError:
        fields = None
    if template is None:
        return answer[:300] if answer.strip() and not isinstance(fields, dict | list) else TOOL_DONE_REPLY
    return _filled(template, fields if isinstance(fields, dict) else {"answer": answer}) or TOOL_DONE_REPLY
