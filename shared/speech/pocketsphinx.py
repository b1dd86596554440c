"""Offline speech-to-text with the US-English model bundled in the pocketsphinx wheel.

Free-form recognition of eSpeak's robotic voice is poor, but a grammar made of the
phrases the agent expects recognises them exactly, so that is tried first and the
free-form language model only hears what the grammar cannot.

Recognition runs in a child process. PocketSphinx holds the GIL for every call into it, and its
passes over a whole utterance cannot be cut short; in the worker's own process, 30 s of noise held
every other thread (the event loop serving HTTP included) for 35 s. Fed in 10 ms chunks it still
held them for up to 0.8 s at a time (the final lattice passes), so health checks took seconds.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

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
_GRAMMAR_MAX_BYTES = 2 * MODEL_RATE * 6
"""Only audio up to 6 s (after trimming) is tried against the grammar: the longest expected phrase
is 2.4 s in eSpeak's voice, and the grammar's final lattice pass grows with the square of the
length (0.3 s for 6 s of noise, 10 s for 30 s)."""
_MAX_HMMS_PER_FRAME = 10_000
"""Bounds the search's work per frame (pocketsphinx's default is 30,000). Noise keeps the most
HMMs active: this cut 30 s of it from ~40 s to ~13 s of CPU, and left the word error rate on
eSpeak sentences unchanged at 16 and 8 kHz."""


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

    One child process serves every call, with one decoder: building one costs ~0.5 s and
    its search is single-threaded, so more would cost memory without adding throughput.
    If the child dies (out of memory, say), that call fails and the next starts a new one.
    """

    def __init__(self, max_grammars: int = DEFAULT_MAX_GRAMMARS) -> None:
        self._max_grammars = max_grammars
        self._lock = threading.Lock()
        self._child: ProcessPoolExecutor | None = None

    def transcribe(self, audio: Audio, language: str, phrases: Sequence[str]) -> str:
        child = self._running_child()
        try:
            return child.submit(_transcribe_in_child, audio, tuple(phrases)).result()
        except BrokenProcessPool:
            with self._lock:
                if self._child is child:
                    self._child = None
            raise

    def _running_child(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._child is None:
                self._child = ProcessPoolExecutor(
                    max_workers=1,
                    # Spawned, not forked: the worker has threads, and a fork copies their locks.
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_child,
                    initargs=(self._max_grammars,),
                )
                weakref.finalize(self, self._child.shutdown, wait=False, cancel_futures=True)
            return self._child


_decoding: _Decoding | None = None
"""The child process's decoder (set by `_start_child`)."""


def _start_child(max_grammars: int) -> None:
    global _decoding  # noqa: PLW0603 - one decoder per child process, made when the child starts
    _decoding = _Decoding(max_grammars)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_after, args=(parent,), daemon=True).start()


def _exit_after(parent: multiprocessing.process.BaseProcess) -> None:
    """The pool's queue would keep the child waiting forever once its parent is gone (killed, say)."""
    parent.join()
    os._exit(0)


def _transcribe_in_child(audio: Audio, phrases: tuple[str, ...]) -> str:
    if _decoding is None:
        raise RuntimeError("the recogniser's child process was not initialised")
    return _decoding.transcribe(audio, phrases)


class _Decoding:
    """The decoder and its grammars, inside the child. Each expected-phrase set becomes a
    named grammar search on the decoder, kept in a small LRU."""

    def __init__(self, max_grammars: int) -> None:
        self._max_grammars = max_grammars
        self._decoder = Decoder(logfn=os.devnull, maxhmmpf=_MAX_HMMS_PER_FRAME)
        self._grammars: OrderedDict[tuple[str, ...], str] = OrderedDict()

    def transcribe(self, audio: Audio, phrases: Sequence[str]) -> str:
        pcm = _prepared(resample(audio, MODEL_RATE).samples).tobytes()
        if not pcm:
            return ""
        expected = self._expected(phrases)
        if expected and len(pcm) <= _GRAMMAR_MAX_BYTES:
            heard = self._decode(self._grammar_search(expected), pcm)
            if heard in expected:
                return heard
        return self._decode(None, pcm)

    def _expected(self, phrases: Sequence[str]) -> tuple[str, ...]:
        """Phrases as the dictionary spells them; unknown words are dropped so the
        grammar always compiles."""
        normalised = (
            " ".join(
                word
                for word in (w.strip("'") for w in _WORD.findall(phrase.lower()))
                if word and self._decoder.lookup_word(word) is not None
            )
            for phrase in phrases
        )
        return tuple(sorted({phrase for phrase in normalised if phrase}))

    def _grammar_search(self, expected: tuple[str, ...]) -> str:
        name = self._grammars.get(expected)
        if name is not None:
            self._grammars.move_to_end(expected)
            return name
        name = "expected-" + hashlib.sha256("|".join(expected).encode()).hexdigest()[:16]
        self._decoder.add_jsgf_string(name, _grammar(expected))
        self._grammars[expected] = name
        if len(self._grammars) > self._max_grammars:
            _, evicted = self._grammars.popitem(last=False)
            self._decoder.remove_search(evicted)
        return name

    def _decode(self, search: str | None, pcm: bytes) -> str:
        """Decode one utterance; `None` selects the free-form language model."""
        decoder = self._decoder
        decoder.activate_search(search)
        # Reset feature extraction (cepstral mean and all): otherwise each transcript
        # depends on the utterances decoded before it.
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return "" if hypothesis is None else str(hypothesis.hypstr).strip().lower()
