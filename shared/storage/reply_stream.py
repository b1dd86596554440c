"""Each reply, sentence by sentence, on a Redis stream that every channel can read as it is written.

The turn activity writes, in order: `start` (the event name the caller's next utterance must be
raised under, or none when the call ends: channels learn it before any audio, so a caller who
speaks over the first sentence is heard by the right waiter), one `sentence` entry per sentence as
soon as its audio is stored (text, audio blob, duration), and `done`. A `restart` entry says the
sentences begin again (a retried attempt, or a reply replaced at the end): a reader drops those it
has. Streams expire with the hand-off copies.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis

from shared.storage.handoff import REPLY_TTL_SECONDS, TurnKeys

STREAM_MAX_ENTRIES = 500
"""A reply is a few sentences; the cap only stops a runaway writer."""


@dataclass(frozen=True)
class AnnouncedSentence:
    index: int
    text: str
    audio_blob: str
    duration_seconds: float
    engine: str


def stream_key(prefix: str, conversation_id: str, turn: int) -> str:
    return TurnKeys(prefix, conversation_id).stream(turn)


class ReplyStream:
    """The writer of one turn's stream (sync: activities run in worker threads)."""

    def __init__(self, client: redis.Redis, prefix: str, conversation_id: str, turn: int) -> None:
        self._redis = client
        self._key = stream_key(prefix, conversation_id, turn)

    def _add(self, event: str, data: dict[str, Any]) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._key, {"event": event, "data": json.dumps(data)}, maxlen=STREAM_MAX_ENTRIES)
            pipe.expire(self._key, REPLY_TTL_SECONDS)
            pipe.execute()

    def start(self, next_event: str | None) -> None:
        """Open the reply (a retried attempt writes `restart` first, so readers drop what came before)."""
        if self._redis.exists(self._key):
            self.restart("a retried attempt starts again")
        self._add("start", {"next_event": next_event})

    def restart(self, reason: str) -> None:
        """Readers drop the sentences announced so far; the reply's sentences follow again."""
        self._add("restart", {"reason": reason})

    def sentence(self, sentence: AnnouncedSentence) -> None:
        self._add("sentence", asdict(sentence))

    def done(self, turn: dict[str, Any]) -> None:
        self._add("done", {"turn": turn})


def read_stream(client: redis.Redis, key: str) -> list[tuple[str, dict[str, Any]]]:
    """Every entry of a stream so far, as (event, data) in order."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(key)  # type: ignore[assignment]
    return [(fields[b"event"].decode(), json.loads(fields[b"data"])) for _, fields in entries]
