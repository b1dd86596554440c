"""Offline text-to-speech with the eSpeak NG library bundled in the espeakng-loader wheel.

Robotic, but it needs no network, no OS package and no subprocess, so local
development and the tests can speak every language the agents use. It is called
through ctypes; the signatures below follow eSpeak's `speak_lib.h`.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Sequence

import espeakng_loader
import numpy as np
import numpy.typing as npt

from shared.speech.audio import Audio, resample

OUTPUT_RATE = 16000
"""What the recognisers and telephony want; eSpeak itself produces 22050 Hz."""

DEFAULT_WORDS_PER_MINUTE = 140
"""Slower than eSpeak's 175 wpm default: the offline recogniser understands it far better."""

FALLBACK_VOICE = "en-us"

_VOICES = {
    "en-us": "en-us",
    "en-gb": "en",
    "en-in": "en-us",
    "hi-in": "hi",
    "ta-in": "ta",
    "te-in": "te",
    "bn-in": "bn",
    "mr-in": "mr",
    "gu-in": "gu",
    "kn-in": "kn",
    "ml-in": "ml",
    "pa-in": "pa",
    "od-in": "or",
    "or-in": "or",
}
"""BCP-47 tags to eSpeak voice names. eSpeak's British voice is plain "en"; it has no
Indian English, and US English is what the offline recogniser's model was trained on.
Odia is `od-IN` to Sarvam and `or` to eSpeak."""

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
"""Without it eSpeak calls exit() when its data is missing, killing the worker process."""
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE_PARAMETER = 1
_EE_OK = 0
_BYTES_PER_SAMPLE = 2

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
"""int callback(short *wav, int numsamples, espeak_EVENT *events)."""

_LOCK = threading.Lock()
"""eSpeak keeps one voice, one parameter set and one callback per process."""


def _declare(library: ctypes.CDLL) -> None:
    """Give ctypes the C signatures, so pointers and size_t are passed at full width."""
    library.espeak_Initialize.argtypes = [
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    library.espeak_Initialize.restype = ctypes.c_int
    library.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    library.espeak_SetSynthCallback.restype = None
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetVoiceByName.restype = ctypes.c_int
    library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    library.espeak_SetParameter.restype = ctypes.c_int
    library.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
    ]
    library.espeak_Synth.restype = ctypes.c_int
    library.espeak_Synchronize.argtypes = []
    library.espeak_Synchronize.restype = ctypes.c_int


class _Engine:
    """The process's one eSpeak instance; every method must be called holding `_LOCK`."""

    def __init__(self) -> None:
        self._library = ctypes.CDLL(espeakng_loader.get_library_path())
        _declare(self._library)
        data_path = espeakng_loader.get_data_path().encode()
        self.rate = int(self._library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT))
        if self.rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise from {data_path!r}")
        self._chunks: list[bytes] = []
        # eSpeak keeps only the C pointer: this reference keeps the trampoline alive.
        self._callback = _SynthCallback(self._collect)
        self._library.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: int | None, count: int, _events: int | None) -> int:
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * _BYTES_PER_SAMPLE))
        return 0

    def speak(self, text: str, voices: Sequence[str], words_per_minute: int) -> npt.NDArray[np.int16]:
        """Synthesise with the first of `voices` eSpeak knows, at its native rate."""
        if not any(self._library.espeak_SetVoiceByName(name.encode()) == _EE_OK for name in voices):
            raise RuntimeError(f"eSpeak NG has none of the voices {list(voices)}")
        self._library.espeak_SetParameter(_RATE_PARAMETER, words_per_minute, 0)
        self._chunks = []
        encoded = text.encode()
        status = self._library.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._library.espeak_Synchronize()
        if status != _EE_OK:
            raise RuntimeError(f"eSpeak NG synthesis failed with status {status}")
        return np.frombuffer(b"".join(self._chunks), dtype=np.int16)


@functools.cache
def _engine() -> _Engine:
    """Initialise eSpeak on first use only; call holding `_LOCK` so it happens once."""
    return _Engine()


def voices_for(language: str, voice: str) -> list[str]:
    """The eSpeak voices to try, best first: the named voice, the language's, English."""
    tag = language.strip().lower()
    by_language = _VOICES.get(tag, tag.split("-")[0])
    candidates = [voice.strip(), by_language, FALLBACK_VOICE]
    return [name for name in dict.fromkeys(candidates) if name]


class EspeakSynthesizer:
    """`TextToSpeech` that works offline; output is 16 kHz mono."""

    def __init__(self, words_per_minute: int = DEFAULT_WORDS_PER_MINUTE) -> None:
        self._words_per_minute = words_per_minute

    def synthesize(self, text: str, language: str, voice: str) -> Audio:
        if not text.strip():
            raise ValueError("Cannot synthesise empty text")
        voices = voices_for(language, voice)
        with _LOCK:
            engine = _engine()
            samples = engine.speak(text, voices, self._words_per_minute)
        return resample(Audio(samples, engine.rate), OUTPUT_RATE)
