"""What the core needs from speech engines, so offline and cloud adapters are interchangeable.

Two levels. `SpeechToText` and `TextToSpeech` are what the core calls: they take what an agent wants
(`Hearing`, `Speaking`) and say which engine did the work (`Heard`, `Spoken`), so every turn records
who listened and who spoke. `Recognizer` and `Synthesizer` are the plain offline engines
(PocketSphinx, eSpeak NG), which `shared/speech/offline.py` puts behind the first two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.models import SpeechProvider
from shared.speech.audio import Audio


@dataclass(frozen=True)
class Hearing:
    """How to listen to one utterance."""

    language: str
    """BCP-47 tag of the agent's language (e.g. `hi-IN`, `en-US`)."""
    phrases: tuple[str, ...] = ()
    """Utterances the agent expects; an engine may use them to constrain recognition."""
    detect_language: bool = False
    """Detect the utterance's language instead of assuming `language` (engines that can)."""
    provider: SpeechProvider = "auto"


@dataclass(frozen=True)
class Speaking:
    """How to speak one reply."""

    language: str
    voice: str = ""
    """An offline (eSpeak) voice name; empty: the language's voice."""
    speaker: str = ""
    """A Sarvam speaker name; empty: the model's default."""
    rate: int = 16000
    """Sample rate the channel plays, in Hz; every engine answers at exactly this rate."""
    provider: SpeechProvider = "auto"


@dataclass(frozen=True)
class Heard:
    text: str
    """What was said, or "" when nothing was recognised."""
    engine: str
    language: str
    """The language detected by the engine, else the one it was told to assume."""


@dataclass(frozen=True, eq=False)
class Spoken:
    audio: Audio
    engine: str


class SpeechToText(Protocol):
    def transcribe(self, audio: Audio, hearing: Hearing) -> Heard:
        """Hear one utterance and say which engine heard it."""
        ...


class TextToSpeech(Protocol):
    def synthesize(self, text: str, speaking: Speaking) -> Spoken:
        """Speak `text` (never empty) at `speaking.rate` and say which engine spoke it."""
        ...


class Recognizer(Protocol):
    def transcribe(self, audio: Audio, language: str, phrases: Sequence[str]) -> str:
        """Return what was said, or "" when nothing was recognised.

        `phrases` are the utterances the current agent expects; an adapter may use
        them to constrain recognition, and must still hear anything else.
        """
        ...


class Synthesizer(Protocol):
    def synthesize(self, text: str, language: str, voice: str) -> Audio:
        """Speak `text` (never empty) in the BCP-47 `language`.

        `voice` names an engine-specific voice; adapters fall back to one that
        suits `language` when they do not have it.
        """
        ...


class SpeechUnavailable(Exception):
    """The engine cannot answer now or cannot handle this request (rate limit, outage, timeout,
    an unsupported language): the next engine in the chain answers instead."""
