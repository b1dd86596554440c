"""Offline speech-to-text with the US-English model bundled in the pocketsphinx wheel.

Free-form recognition of eSpeak's robotic voice is poor, but a grammar made of the
phrases the agent expects recognises them exactly, so that is tried first and the
free-form language model only hears what the grammar cannot.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pocketsphinx import Decoder

from shared.speech.audio import Audio, resample

MODEL_RATE = 16000
"""The bundled acoustic model is wideband; telephone audio is upsampled to it."""

DEFAULT_MAX_GRAMMARS = 32

_FRAME = MODEL_RATE // 100
_SPEECH_THRESHOLD = 0.02
"""Frames quieter than this fraction of the loudest frame's RMS (-34 dB) are silence."""
_SPEECH_PEAK = 16384.0
"""Speech is scaled to peak at -6 dBFS so the dither below sits at a fixed level under it."""
_PADDING = np.zeros(MODEL_RATE // 5)
"""A fixed 0.2 s around the speech: long silences make grammar searches end off-grammar."""
_DITHER = 128
"""Uniform noise of +-128 LSB (-48 dBFS). Digital silence, and the empty band above 4 kHz
in upsampled telephone audio, make searches fail ("Final result does not match the
grammar"). Measured on eSpeak speech, +-128 beats +-4 for telephone audio and more than
halves the free-form word error rate. Seeded, so transcripts are reproducible."""
_WORD = re.compile(r"[a-z0-9']+")


def _prepared(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """Cut silence at both ends, normalise the level, add a fixed margin and dither."""
    frames = len(samples) // _FRAME
    if frames == 0:
        return samples[:0]
    energy = samples[: frames * _FRAME].astype(np.float64).reshape(frames, _FRAME)
    rms = np.sqrt((energy**2).mean(axis=1))
    loud = np.flatnonzero(rms > _SPEECH_THRESHOLD * rms.max())
    if len(loud) == 0:
        return samples[:0]
    speech = samples[loud[0] * _FRAME : (loud[-1] + 1) * _FRAME].astype(np.float64)
    speech *= _SPEECH_PEAK / np.abs(speech).max()
    padded = np.concatenate([_PADDING, speech, _PADDING])
    noise = np.random.default_rng(0).integers(-_DITHER, _DITHER + 1, len(padded))
    return np.clip(np.round(padded + noise), -32768, 32767).astype(np.int16)


def _grammar(phrases: Sequence[str]) -> str:
    body = " | ".join(phrases)
    return f"#JSGF V1.0;\ngrammar expected;\npublic <utterance> = {body} ;\n"


class PocketsphinxRecognizer:
    """`SpeechToText` that works offline, for US English only (`language` is ignored).

    One decoder serves every call: building one costs ~0.5 s and its search holds
    the GIL, so more decoders would cost memory without adding throughput. Each
    expected-phrase set becomes a named grammar search on it, kept in a small LRU.
    """

    def __init__(self, max_grammars: int = DEFAULT_MAX_GRAMMARS) -> None:
        self._max_grammars = max_grammars
        self._lock = threading.Lock()
        self._decoder: Decoder | None = None
        self._grammars: OrderedDict[tuple[str, ...], str] = OrderedDict()

    def transcribe(self, audio: Audio, language: str, phrases: Sequence[str]) -> str:
        pcm = _prepared(resample(audio, MODEL_RATE).samples).tobytes()
        if not pcm:
            return ""
        with self._lock:
            decoder = self._loaded()
            expected = self._expected(decoder, phrases)
            if expected:
                heard = self._decode(decoder, self._grammar_search(decoder, expected), pcm)
                if heard in expected:
                    return heard
            return self._decode(decoder, None, pcm)

    def _loaded(self) -> Decoder:
        if self._decoder is None:
            self._decoder = Decoder(logfn=os.devnull)
        return self._decoder

    @staticmethod
    def _expected(decoder: Decoder, phrases: Sequence[str]) -> tuple[str, ...]:
        """Phrases as the dictionary spells them; unknown words are dropped so the
        grammar always compiles."""
        normalised = (
            " ".join(
                word
                for word in (w.strip("'") for w in _WORD.findall(phrase.lower()))
                if word and decoder.lookup_word(word) is not None
            )
            for phrase in phrases
        )
        return tuple(sorted({phrase for phrase in normalised if phrase}))

    def _grammar_search(self, decoder: Decoder, expected: tuple[str, ...]) -> str:
        name = self._grammars.get(expected)
        if name is not None:
            self._grammars.move_to_end(expected)
            return name
        name = "expected-" + hashlib.sha256("|".join(expected).encode()).hexdigest()[:16]
        decoder.add_jsgf_string(name, _grammar(expected))
        self._grammars[expected] = name
        if len(self._grammars) > self._max_grammars:
            _, evicted = self._grammars.popitem(last=False)
            decoder.remove_search(evicted)
        return name

    def _decode(self, decoder: Decoder, search: str | None, pcm: bytes) -> str:
        """Decode one utterance; `None` selects the free-form language model."""
        decoder.activate_search(search)
        # Reset feature extraction (cepstral mean and all): otherwise each transcript
        # depends on the utterances decoded before it.
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return "" if hypothesis is None else str(hypothesis.hypstr).strip().lower()
