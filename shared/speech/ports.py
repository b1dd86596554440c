"""What the core needs from speech engines, so offline and cloud adapters are interchangeable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared.speech.audio import Audio


class SpeechToText(Protocol):
    def transcribe(self, audio: Audio, language: str, phrases: Sequence[str]) -> str:
        """Return what was said, or "" when nothing was recognised.

        `phrases` are the utterances the current agent expects; an adapter may use
        them to constrain recognition, and must still hear anything else.
        """
        ...


class TextToSpeech(Protocol):
    def synthesize(self, text: str, language: str, voice: str) -> Audio:
        """Speak `text` (never empty) in the BCP-47 `language`.

        `voice` names an engine-specific voice; adapters fall back to one that
        suits `language` when they do not have it.
        """
        ...
