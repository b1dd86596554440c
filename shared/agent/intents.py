"""Rule-based intent recognition for the offline agent: phrase matching, no model.

A phrase matches when its words appear in the utterance in order and next to each other. Strong
signals (asking for a human or a callback, saying goodbye) win outright; greetings and small talk win only when
they are most of what was said, so "hello, when do you open?" is still treated as a question.
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


@dataclass(frozen=True)
class PhraseMatch:
    intent: Intent
    phrase_words: int


def _contains(haystack: list[str], needle: list[str]) -> bool:
    size = len(needle)
    return size > 0 and any(haystack[i : i + size] == needle for i in range(len(haystack) - size + 1))


def best_match(utterance: str, rules: dict[Intent, IntentRule]) -> PhraseMatch | None:
    """The longest phrase of any intent found in the utterance; strong intents first."""
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
    return max(strong or matches, key=lambda m: m.phrase_words)


def classify(utterance: str, rules: dict[Intent, IntentRule], has_knowledge: bool) -> Intent:
    """The caller's intent, given whether retrieval found knowledge relevant to the utterance."""
    said = words(utterance)
    if not said:
        return Intent.NOT_UNDERSTOOD
    match = best_match(utterance, rules)
    if match is not None and match.intent in STRONG_INTENTS:
        return match.intent
    if match is not None and match.phrase_words / len(said) >= SOCIAL_COVERAGE:
        return match.intent
    if has_knowledge:
        return Intent.QUESTION
    return match.intent if match is not None else Intent.NOT_UNDERSTOOD
