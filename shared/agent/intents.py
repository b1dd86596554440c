"""Rule-based intent recognition for the offline agent: phrase matching, no model.

A phrase matches when its words appear in the utterance in order and next to each other. Strong
signals (asking for a human or a callback, saying goodbye) win outright, then the intents an agent
file declares of its own (its author chose those phrases for them); greetings and small talk win
only when they are most of what was said, so "hello, when do you open?" is still a question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.models import Intent, IntentRule

STRONG_INTENTS = (Intent.HUMAN, Intent.GOODBYE, Intent.CALLBACK)
SOCIAL_INTENTS = (Intent.GREETING, Intent.SMALL_TALK)
SOCIAL_COVERAGE = 0.6
"""Share of the utterance a greeting/small-talk phrase must cover to beat a knowledge answer."""

_WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


IntentKey = Intent | str
"""A built-in intent, or the name of one the agent file declares."""


def is_own(intent: IntentKey) -> bool:
    """An intent the agent file declares, not a built-in one."""
    return not isinstance(intent, Intent)


@dataclass(frozen=True)
class PhraseMatch:
    intent: IntentKey
    phrase_words: int


def _contains(haystack: list[str], needle: list[str]) -> bool:
    size = len(needle)
    return size > 0 and any(haystack[i : i + size] == needle for i in range(len(haystack) - size + 1))


def best_match(utterance: str, rules: dict[IntentKey, IntentRule]) -> PhraseMatch | None:
    """The longest phrase of any intent found in the utterance; strong intents first, the agent's own next."""
    said = words(utterance)
    matches = [
        PhraseMatch(intent, len(words(phrase)))
        for intent, rule in rules.items()
        for phrase in rule.phrases
        if _contains(said, words(phrase))
    ]
    if not matches:
        return None
    strong = [m for m in matches if m.intent in STRONG_INTENTS]
    own = [m for m in matches if is_own(m.intent)]
    return max(strong or own or matches, key=lambda m: m.phrase_words)


def classify(utterance: str, rules: dict[IntentKey, IntentRule], has_knowledge: bool) -> IntentKey:
    """The caller's intent, given whether retrieval found knowledge relevant to the utterance."""
    said = words(utterance)
    if not said:
        return Intent.NOT_UNDERSTOOD
    match = best_match(utterance, rules)
    if match is not None and (match.intent in STRONG_INTENTS or is_own(match.intent)):
        return match.intent
    if match is not None and match.phrase_words / len(said) >= SOCIAL_COVERAGE:
        return match.intent
    if has_knowledge:
        return Intent.QUESTION
    return match.intent if match is not None else Intent.NOT_UNDERSTOOD
