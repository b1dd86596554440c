"""The offline engines behind the speech ports: PocketSphinx listens, eSpeak NG speaks.

They need no network and no key, so they are the last engine of every chain: what answers when
the cloud engine cannot, and everything when none is configured.
"""

from __future__ import annotations

from shared.speech.audio import Audio, resample
from shared.speech.ports import Heard, Hearing, Recognizer, Speaking, Spoken, Synthesizer

RECOGNIZER = "pocketsphinx"
SYNTHESIZER = "espeak"


class OfflineSpeechToText:
    """`SpeechToText` over an offline recogniser (US English only: it never detects a language)."""

    def __init__(self, recognizer: Recognizer, name: str = RECOGNIZER) -> None:
        self._recognizer = recognizer
        self._name = name

    def transcribe(self, audio: Audio, hearing: Hearing) -> Heard:
        text = self._recognizer.transcribe(audio, hearing.language, hearing.phrases)
        return Heard(text=text, engine=self._name, language=hearing.language)


class OfflineTextToSpeech:
    """`TextToSpeech` over an offline synthesiser, resampled to the rate the channel plays."""

    def __init__(self, synthesizer: Synthesizer, name: str = SYNTHESIZER) -> None:
        self._synthesizer = synthesizer
        self._name = name

    def synthesize(self, text: str, speaking: Speaking) -> Spoken:
        audio: Audio = self._synthesizer.synthesize(text, speaking.language, speaking.voice)
        return Spoken(audio=resample(audio, speaking.rate), engine=self._name)
