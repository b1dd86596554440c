"""After the call: one model call that summarises a conversation and fills the agent's extraction schema.

`finalize` stores its report on the conversation, and the summary a conversation carries across
continue-as-new comes from it too, so one model path serves both. The model is the agent's own chain
(`chat_model_for`, without tools); the call goes in as a JSON record in a user message, never in the
system message (`AFTER_CALL_PROMPT`).

Whatever the model says, the report is usable: an answer that is no JSON object gives the deterministic
summary (`describe`) and an empty extraction, a value of the wrong type becomes null, and a model that
cannot answer at all is logged and treated as a malformed answer. Closing a call never fails because of
the model.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter

from langchain_core.messages import BaseMessage

from shared.agent.chain import ChatModel, chat_model_for, usage_of
from shared.agent.prompt import AFTER_CALL_PROMPT, call_record, format_call_record, report_shape
from shared.config import Settings
from shared.models import AfterCallReport, AgentProfile, ExtractedValue, ExtractionField, TurnRecord

log = logging.getLogger(__name__)

REPORT_MAX_TOKENS = 600
"""Longest report, in tokens: the agent's own `max_tokens` is sized for a spoken reply, too short for a report."""
REPORT_TEMPERATURE = 0.0
"""A report is a record, not conversation: the same call should give the same report."""
MAX_SUMMARY_CHARACTERS = 2000
MAX_VALUE_CHARACTERS = 500
"""Longest summary and extracted string kept; longer ones are cut."""

_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


def describe(turns: list[TurnRecord]) -> str:
    """A short factual summary of a conversation from its stored turns: what a report falls back to.

    It quotes the caller's last request, so wherever it goes it is caller data: the
    prompt carries it in a user message, never in the system message.
    """
    intents = Counter(str(t.intent) for t in turns if t.intent is not None)
    asked = [t.user_text for t in turns if t.user_text]
    parts = [f"{len(turns)} turns"]
    if intents:
        parts.append("intents: " + ", ".join(f"{name} x{count}" for name, count in sorted(intents.items())))
    if asked:
        parts.append(f"last request: {asked[-1]!r}")
    return "; ".join(parts)


def report_on(
    profile: AgentProfile, turns: list[TurnRecord], settings: Settings, *, model: ChatModel | None = None
) -> AfterCallReport:
    """The summary of the call and the agent's extraction fields filled from it, with the model's usage.

    A call in which the caller said nothing is not sent to a model: there is nothing to report but
    `describe`. `model` replaces the agent's chain (`chat_model_for`) in tests.
    """
    fallback = AfterCallReport(summary=describe(turns), extraction=dict.fromkeys(profile.extraction), llm=None)
    if not any(t.user_text for t in turns):
        return fallback
    if model is None:
        model = chat_model_for(reporting(profile), settings)
    messages = AFTER_CALL_PROMPT.invoke(
        {
            "display_name": profile.display_name,
            "shape": report_shape(profile.extraction),
            "record": format_call_record(call_record(turns, settings.aftercall_transcript_characters)),
        }
    ).to_messages()
    try:
        message: BaseMessage = model.invoke(messages)
    except Exception:
        log.exception("no model could report on the call; keeping the deterministic summary")
        return fallback
    answer = parse_answer(message.text)
    if answer is None:
        log.warning("the after-call report was not a JSON object; keeping the deterministic summary")
        return fallback.model_copy(update={"llm": usage_of(message)})
    summary = answer.get("summary")
    extraction = answer.get("extraction")
    written = summary.strip()[:MAX_SUMMARY_CHARACTERS] if isinstance(summary, str) else ""
    return AfterCallReport(
        summary=written or fallback.summary,
        extraction=validated(extraction if isinstance(extraction, dict) else {}, profile.extraction),
        llm=usage_of(message),
    )


def reporting(profile: AgentProfile) -> AgentProfile:
    """The agent with the model parameters of a report (REPORT_MAX_TOKENS, REPORT_TEMPERATURE)."""
    parameters = profile.model.model_copy(update={"max_tokens": REPORT_MAX_TOKENS, "temperature": REPORT_TEMPERATURE})
    return profile.model_copy(update={"model": parameters})


def parse_answer(text: str) -> dict[str, object] | None:
    """The JSON object of a model's answer (inside a code fence, or amid prose); None if it holds none."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced is not None:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    for candidate in (text, text[start : end + 1] if 0 <= start < end else None):
        if candidate is None:
            continue
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def validated(values: dict[str, object], fields: dict[str, ExtractionField]) -> dict[str, ExtractedValue]:
    """Every declared field, with the model's value where it has the declared type, else None.

    Fields the model made up are dropped; a blank string is None; strings are cut to MAX_VALUE_CHARACTERS.
    An integer may come as a float with no fraction (3.0); a boolean is never a number, nor a number a
    string.
    """
    return {name: _typed(values.get(name), field.type) for name, field in fields.items()}


def _typed(value: object, kind: str) -> ExtractedValue:
    if kind == "string":
        return value.strip()[:MAX_VALUE_CHARACTERS] or None if isinstance(value, str) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if kind == "integer":
        if isinstance(value, float):
            return int(value) if value.is_integer() else None
        return value
    return value
