"""Each reply, sentence by sentence, on a Redis stream that every channel can read as it is written.

The turn activity writes, in order: `start` (the event name the caller's next utterance must be
raised under, or none when the call ends: channels learn it before any audio, so a caller who
speaks over the first sentence is heard by the right waiter), one `sentence` entry per sentence as
soon as its audio is stored (text, audio blob, duration), and `done`. A `restart` entry says the
sentences begin again (a retried attempt, or a reply replaced at the end): a reader drops those it
has. Streams expire with the hand-off copies.

The `start` entry also records which request the turn answers (`TurnKeys.streamed_turn`), so a
channel that knows only its request (a phone call's gather) finds the turn's stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from shared.storage.handoff import REPLY_TTL_SECONDS, ConversationEnded, TurnKeys

STREAM_MAX_ENTRIES = 500
"""A reply is a few sentences; the cap only stops a runaway writer."""
INTERRUPT_CHECK_SECONDS = 0.05
"""How often the writer of a reply looks for the listener's interrupt (a Redis GET)."""


class Interrupted(Exception):
    """The listener interrupted the reply (barge-in): the model stops writing it."""


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
    """The writer of one turn's stream (sync: activities run in worker threads).

    Any channel may interrupt the reply (barge-in) by setting the turn's `interrupted` key to the number
    of sentences its listener started hearing: a web client's `interrupt`, a caller who speaks over a
    sentence on the phone. The writer sees it within INTERRUPT_CHECK_SECONDS and the turn keeps what
    was heard."""

    def __init__(self, client: redis.Redis, prefix: str, conversation_id: str, turn: int) -> None:
        self._redis = client
        self._keys = TurnKeys(prefix, conversation_id)
        self._key = self._keys.stream(turn)
        self._turn = turn
        self._interrupt_key = self._keys.interrupted(turn)
        self._played: int | None = None
        self._checked_at = 0.0

    def played(self, *, now: bool = False) -> int | None:
        """How many sentences the listener started hearing before it interrupted; None while it has not.
        Redis is asked at most every INTERRUPT_CHECK_SECONDS unless `now`."""
        moment = time.monotonic()
        if self._played is None and (now or moment - self._checked_at >= INTERRUPT_CHECK_SECONDS):
            self._checked_at = moment
            raw = self._redis.get(self._interrupt_key)
            self._played = None if raw is None else int(raw)
        return self._played

    def text(self, so_far: str) -> None:
        """The reply's text as the model has written it so far; an interrupted reply raises `Interrupted`."""
        if self.played() is not None:
            raise Interrupted

    def _add(self, event: str, data: dict[str, Any]) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._key, {"event": event, "data": json.dumps(data)}, maxlen=STREAM_MAX_ENTRIES)
            pipe.expire(self._key, REPLY_TTL_SECONDS)
            pipe.execute()

    def start(self, next_event: str | None, request_id: str | None = None) -> None:
        """Open the reply (a retried attempt writes `restart` first, so readers drop what came before);
        `request_id` is the request it answers, pointed at this stream."""
        if self._redis.exists(self._key):
            self.restart("a retried attempt starts again")
        self._add("start", {"next_event": next_event})
        if request_id is not None:
            self._redis.set(self._keys.streamed_turn(request_id), self._turn, ex=REPLY_TTL_SECONDS)

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


POLL_SECONDS = 0.02
"""How often a reader looks for a stream that has not started yet (a GET; the stream itself is blocked on)."""
BLOCK_SLICE_SECONDS = 1.0
"""A blocking read's slice: under redis-py's 5 s socket timeout."""


@dataclass
class StreamedReply:
    """A turn's reply as its stream says so far: the current attempt's sentences, and the stored turn once done."""

    turn: int
    attempt: int = 0
    """Restarts so far: sentences of an earlier attempt are dropped."""
    sentences: list[AnnouncedSentence] = field(default_factory=list)
    done: dict[str, Any] | None = None
    continues: bool = True
    """False when the reply's `start` said the call takes no more utterances (the agent ends or transfers it)."""

    def add(self, event: str, data: dict[str, Any]) -> None:
        if event == "start":
            self.continues = data.get("next_event") is not None
        elif event == "restart":
            self.attempt += 1
            self.sentences = []
        elif event == "sentence":
            self.sentences.append(AnnouncedSentence(**data))
        elif event == "done":
            self.done = dict(data["turn"])


class ReplyStreamReader:
    """Reads a request's reply stream as it is written (async: on the Functions worker's event loop)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    async def turn_of(self, conversation_id: str, request_id: str) -> int | None:
        """The turn whose stream answers this request, once its reply has started."""
        raw = await self._redis.get(TurnKeys(self._prefix, conversation_id).streamed_turn(request_id))
        return None if raw is None else int(raw)

    async def wait(
        self, conversation_id: str, turn: int, ready: Callable[[StreamedReply], bool], timeout_seconds: float
    ) -> tuple[StreamedReply, bool]:
        """The stream so far, read until `ready(reply)` holds or the timeout passes; and whether it held.

        Raises ConversationEnded as soon as the conversation is over with the reply not ready (its
        orchestration failed or was terminated mid-reply, say): nobody will write the rest."""
        keys = TurnKeys(self._prefix, conversation_id)
        key = keys.stream(turn)
        reply, last, block_ms = StreamedReply(turn), "0-0", None
        deadline = time.monotonic() + timeout_seconds
        while True:
            answer: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None
            answer = await self._redis.xread({key: last}, count=STREAM_MAX_ENTRIES, block=block_ms)  # type: ignore[assignment]
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    reply.add(fields[b"event"].decode(), json.loads(fields[b"data"]))
            if ready(reply):
                return reply, True
            ended = await self._redis.get(keys.ended)
            if ended is not None:
                raise ConversationEnded(ended.decode() if isinstance(ended, bytes) else str(ended))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return reply, False
            block_ms = max(1, int(min(remaining, BLOCK_SLICE_SECONDS) * 1000))
