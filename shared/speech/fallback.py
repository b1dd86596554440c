"""Speech engines in order of preference: the cloud engine first, the offline one when it cannot.

An engine that raises `SpeechUnavailable` (rate limit, outage, timeout, a language it lacks) hands
the request to the next one, so a turn is still heard and spoken when Sarvam is down. Any other
error is ours to fix (a wrong key, a bad request) and is raised, never hidden behind the fallback.
An agent chooses with its `stt_provider` / `tts_provider`: "auto" tries every engine in order,
"offline" only the offline ones, "sarvam" requires Sarvam to be configured.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared import telemetry
from shared.models import SpeechProvider
from shared.speech.audio import Audio
from shared.speech.ports import Heard, Hearing, Speaking, SpeechToText, SpeechUnavailable, Spoken, TextToSpeech

log = logging.getLogger(__name__)

OFFLINE = "offline"
Engine = TypeVar("Engine")


@dataclass(frozen=True)
class Choice(Generic[Engine]):
    """One engine of a chain and the provider an agent names to choose it ("sarvam", "offline")."""

    provider: str
    engine: Engine


class SpeechNotConfigured(RuntimeError):
    """An agent asks for a speech provider this deployment has not configured."""


def _engines(chain: Sequence[Choice[Engine]], wanted: SpeechProvider, what: str) -> list[Choice[Engine]]:
    if wanted == "auto":
        chosen = list(chain)
    elif wanted == OFFLINE:
        chosen = [c for c in chain if c.provider == OFFLINE]
    else:
        chosen = [c for c in chain if c.provider == wanted]
        if not chosen:
            raise SpeechNotConfigured(f"the agent's {what} provider is {wanted!r}, which is not configured here")
        chosen += [c for c in chain if c.provider == OFFLINE]
    if not chosen:
        raise SpeechNotConfigured(f"no {what} engine is configured for provider {wanted!r}")
    return chosen


class FallbackSpeechToText:
    """`SpeechToText` that asks each engine in turn until one hears the utterance."""

    def __init__(self, chain: Sequence[Choice[SpeechToText]]) -> None:
        self._chain = list(chain)

    def transcribe(self, audio: Audio, hearing: Hearing) -> Heard:
        engines = _engines(self._chain, hearing.provider, "speech-to-text")
        for choice in engines[:-1]:
            try:
                with telemetry.speech_call("stt", choice.provider, hearing.language):
                    return choice.engine.transcribe(audio, hearing)
            except SpeechUnavailable as unavailable:
                log.warning("speech-to-text %s unavailable, the next engine listens: %s", choice.provider, unavailable)
        with telemetry.speech_call("stt", engines[-1].provider, hearing.language):
            return engines[-1].engine.transcribe(audio, hearing)


class FallbackTextToSpeech:
    """`TextToSpeech` that asks each engine in turn until one speaks the text."""

    def __init__(self, chain: Sequence[Choice[TextToSpeech]]) -> None:
        self._chain = list(chain)

    def synthesize(self, text: str, speaking: Speaking) -> Spoken:
        engines = _engines(self._chain, speaking.provider, "text-to-speech")
        for choice in engines[:-1]:
            try:
                with telemetry.speech_call("tts", choice.provider, speaking.language, characters=len(text)):
                    return choice.engine.synthesize(text, speaking)
            except SpeechUnavailable as unavailable:
                log.warning("text-to-speech %s unavailable, the next engine speaks: %s", choice.provider, unavailable)
        with telemetry.speech_call("tts", engines[-1].provider, speaking.language, characters=len(text)):
            return engines[-1].engine.synthesize(text, speaking)
