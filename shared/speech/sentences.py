"""Cutting text into sentences and into pieces a speech API accepts in one request.

Speech engines limit each request (Sarvam's bulbul:v2 takes 1,500 characters, v3 2,500), and a cut
in mid-sentence is heard as a pause in the wrong place, so text is cut at sentence ends: `.`, `!`,
`?`, the Devanagari danda `।` and double danda `॥`, and their full-width forms. A sentence longer
than the limit is cut at a space, and only a word longer than the limit is cut inside.
"""

from __future__ import annotations

import re

SENTENCE_END = re.compile(r"([.!?।॥。！？]+[\"'”’)\]]*)\s+")
"""A sentence ends at its marks (and any closing quotes or brackets), before the next one's space."""
CLAUSE_END = re.compile(r"[,;:،、，；：]+[\"'”’)\]]*\s+")
"""A clause ends at a comma, semicolon or colon before a space (so never inside 10,000 or 10:30)."""
_CUT = "\u2029"


def sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, in order; none empty."""
    marked = SENTENCE_END.sub(lambda end: end.group(1) + _CUT, text.replace(_CUT, " "))
    return [s.strip() for s in marked.split(_CUT) if s.strip()]


def opening_clause_end(text: str, min_words: int) -> int | None:
    """Where the first clause of `text` that has at least `min_words` words ends (after its space), else None.

    A reply's opening clause ("Yes, we are open today,") can be spoken before its sentence is complete:
    the caller hears the agent start sooner, and a pause at a comma sounds natural. Shorter openings
    ("Sure,") wait for more words, so no clip is a lone interjection."""
    for end in CLAUSE_END.finditer(text):
        if len(text[: end.start()].split()) >= min_words:
            return end.end()
    return None


def pieces(text: str, limit: int) -> list[str]:
    """`text` as few pieces of at most `limit` characters as its sentence ends allow, in order."""
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    result: list[str] = []
    current = ""
    for sentence in sentences(text):
        for part in _within(sentence, limit):
            joined = f"{current} {part}" if current else part
            if len(joined) <= limit:
                current = joined
            else:
                result.append(current)
                current = part
    if current:
        result.append(current)
    return result


def _within(sentence: str, limit: int) -> list[str]:
    """A sentence as parts of at most `limit` characters, cut at spaces where it can be."""
    if len(sentence) <= limit:
        return [sentence]
    parts: list[str] = []
    current = ""
    for whole in sentence.split():
        word = whole
        while len(word) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:limit])
            word = word[limit:]
        joined = f"{current} {word}" if current else word
        if len(joined) <= limit:
            current = joined
        else:
            parts.append(current)
            current = word
    if current:
        parts.append(current)
    return parts
