"""A reply spoken sentence by sentence while the model is still writing it.

The text grows as tokens arrive; each sentence is cut the moment it is complete (its end mark and
the space after it have arrived, see `shared/speech/sentences.py`), the reply's opening clause even
before its sentence ends, and handed to text-to-speech at once, in a small pool, while the model
writes the next. Sentences are announced on the turn's reply stream strictly in order, each as soon
as it and every sentence before it are spoken, so the caller's first audio waits for one sentence
(or clause), not the whole reply.

If the final reply does not continue what was streamed (a malformed answer replaced by the
agent's fallback line), the stream restarts with the final reply's sentences.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from shared.speech.audio import Audio
from shared.speech.ports import Spoken
from shared.speech.sentences import SENTENCE_END, opening_clause_end, sentences
from shared.storage.reply_stream import AnnouncedSentence, ReplyStream

OPENING_CLAUSE_MIN_WORDS = 3
"""A reply's first clip may end at a clause of this many words, before its first sentence is complete."""
TTS_WORKERS = 2
"""Sentences spoken at once: the next one is ready when the first has played, without flooding the engine."""

Speak = Callable[[str], Spoken]
Store = Callable[[int, Audio], str]
"""Stores a sentence's audio; returns its blob name."""


@dataclass(frozen=True)
class SpokenSentence:
    text: str
    spoken: Spoken
    audio_blob: str
    tts_ms: float


def joined(sentences: list[SpokenSentence]) -> Audio:
    """The whole reply as one recording (every engine answers at the rate it was asked for)."""
    first = sentences[0].spoken.audio
    return Audio(np.concatenate([s.spoken.audio.samples for s in sentences]), first.rate)


class SpokenReply:
    """Cuts, speaks and announces one reply; `feed` the text as it grows, then `finish` with the final text."""

    def __init__(self, speak: Speak, store: Store, stream: ReplyStream, before_first_audio: Callable[[], None]) -> None:
        self._speak = speak
        self._store = store
        self._stream = stream
        self._before_first_audio = before_first_audio
        self._pool = ThreadPoolExecutor(max_workers=TTS_WORKERS, thread_name_prefix="tts")
        self._pending: list[Future[SpokenSentence]] = []
        self._announced: list[SpokenSentence] = []
        self._lock = threading.RLock()
        self._cut = 0
        self._streamed = ""
        self.first_audio_at: float | None = None

    def __enter__(self) -> SpokenReply:
        return self

    def __exit__(self, *_: object) -> None:
        """Whatever happened, no sentence is spoken after the reply is given up."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def feed(self, text: str) -> None:
        """The reply's text so far: every sentence completed since the last call starts being spoken."""
        if not text.startswith(self._streamed[: self._cut]):
            return
        self._streamed = text
        ends = list(SENTENCE_END.finditer(text, self._cut))
        if ends:
            cut = ends[-1].end()
        elif self._cut == 0 and (clause := opening_clause_end(text, OPENING_CLAUSE_MIN_WORDS)) is not None:
            cut = clause
        else:
            return
        complete = text[self._cut : cut]
        self._cut = cut
        for sentence in sentences(complete):
            self._submit(sentence)

    def finish(self, final_text: str) -> list[SpokenSentence]:
        """Speak what is left of the final text and wait for every sentence; all of them, in order."""
        if final_text.startswith(self._streamed[: self._cut]):
            rest = final_text[self._cut :]
        else:
            self._wait_for_pending()
            with self._lock:
                self._announced, self._cut = [], 0
            self._stream.restart("the streamed reply was replaced by the final one")
            rest = final_text
        for sentence in sentences(rest):
            self._submit(sentence)
        self._wait_for_pending()
        self._pool.shutdown()
        if not self._announced:
            raise ValueError("a reply with nothing to say")
        return list(self._announced)

    def stop(self) -> list[SpokenSentence]:
        """Give the reply up where it is (the listener interrupted): nothing more is spoken or announced.
        The sentences announced so far, in order."""
        with self._lock:
            self._pending = []
        self._pool.shutdown(wait=False, cancel_futures=True)
        return list(self._announced)

    def _submit(self, text: str) -> None:
        with self._lock:
            index = len(self._announced) + len(self._pending)
            # Both run in the submitter's context: blobs and stream keys belong to the turn's tenant.
            future = self._pool.submit(contextvars.copy_context().run, self._spoken, index, text)
            self._pending.append(future)
        announcing = contextvars.copy_context()
        future.add_done_callback(lambda _: announcing.run(self._announce_ready))

    def _spoken(self, index: int, text: str) -> SpokenSentence:
        started = time.perf_counter()
        spoken = self._speak(text)
        tts_ms = round((time.perf_counter() - started) * 1000, 2)
        return SpokenSentence(text, spoken, self._store(index, spoken.audio), tts_ms)

    def _announce_ready(self) -> None:
        """Announce the sentences at the head of the queue that are spoken, in order (a failed one waits
        for `finish` to raise it)."""
        with self._lock:
            while self._pending and self._pending[0].done() and self._pending[0].exception() is None:
                self._announce(self._pending.pop(0).result())

    def _wait_for_pending(self) -> None:
        """Wait for every sentence, announcing each in order (waiting outside the lock: the workers
        announce under it too)."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                head = self._pending[0]
            head.result()  # a sentence that could not be spoken fails the reply here
            self._announce_ready()

    def _announce(self, sentence: SpokenSentence) -> None:
        if self.first_audio_at is None:
            self._before_first_audio()
        self._stream.sentence(
            AnnouncedSentence(
                index=len(self._announced),
                text=sentence.text,
                audio_blob=sentence.audio_blob,
                duration_seconds=sentence.spoken.audio.duration_seconds,
                engine=sentence.spoken.engine,
            )
        )
        if self.first_audio_at is None:
            self.first_audio_at = time.time()
        self._announced.append(sentence)
