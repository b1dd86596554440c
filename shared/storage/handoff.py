"""Turn hand-off through Redis: the request that raised an utterance waits here for its reply.

The orchestrator's `publish` activity pushes the reply onto a list the waiting request blocks on
(BLPOP with a deadline) and also keeps a copy, so a retried request finds the answer without a
second turn. A per-conversation turn lock keeps one utterance in flight at a time: the Durable
Python SDK keeps only the last of several buffered events with the same name, so concurrent
utterances would otherwise be silently dropped.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Any

import redis
import redis.asyncio as aioredis

REPLY_TTL_SECONDS = 3600
WAIT_SLICE_SECONDS = 1.0

_RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class Claim(StrEnum):
    """The outcome of asking for a conversation's turn."""

    NEW = "new"
    """This request now holds the turn: raise its utterance."""
    HELD = "held"
    """This request already held it (a retry): its utterance is in flight, just wait."""
    TAKEN = "taken"
    """Another request holds it."""


class TurnKeys:
    """Key names for one conversation, under the deployment's prefix."""

    def __init__(self, prefix: str, conversation_id: str) -> None:
        self._base = f"{prefix}conv:{conversation_id}:"

    @property
    def lock(self) -> str:
        return self._base + "turn-lock"

    def reply(self, request_id: str) -> str:
        return f"{self._base}reply:{request_id}"

    def inbox(self, request_id: str) -> str:
        return f"{self._base}handoff:{request_id}"


class ReplyPublisher:
    """The orchestrator side (sync, used by activities)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._release = client.register_script(_RELEASE_IF_OWNER)

    def publish(self, conversation_id: str, request_id: str, reply: dict[str, Any]) -> None:
        keys = TurnKeys(self._prefix, conversation_id)
        payload = json.dumps(reply)
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.reply(request_id), payload, ex=REPLY_TTL_SECONDS)
            pipe.delete(keys.inbox(request_id))
            pipe.rpush(keys.inbox(request_id), payload)
            pipe.expire(keys.inbox(request_id), REPLY_TTL_SECONDS)
            pipe.execute()
        self._release(keys=[keys.lock], args=[request_id])


class ReplyWaiter:
    """The request side (async: it waits on the Functions worker's event loop)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._release = client.register_script(_RELEASE_IF_OWNER)

    async def claim_turn(self, conversation_id: str, request_id: str, ttl_seconds: int) -> Claim:
        """Take the conversation's turn lock for this request; it expires if the turn never completes."""
        key = TurnKeys(self._prefix, conversation_id).lock
        if await self._redis.set(key, request_id, nx=True, ex=ttl_seconds):
            return Claim.NEW
        holder = await self._redis.get(key)
        if isinstance(holder, bytes):
            holder = holder.decode()
        return Claim.HELD if holder == request_id else Claim.TAKEN

    async def release_turn(self, conversation_id: str, request_id: str) -> None:
        key = TurnKeys(self._prefix, conversation_id).lock
        await self._release(keys=[key], args=[request_id])

    async def stored_reply(self, conversation_id: str, request_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(TurnKeys(self._prefix, conversation_id).reply(request_id))
        return None if raw is None else dict(json.loads(raw))

    async def wait(self, conversation_id: str, request_id: str, timeout_seconds: float) -> dict[str, Any] | None:
        """The reply for this request, or None when the deadline passes first.

        Blocks in short slices and checks the stored copy between them: when a retry waits beside
        the original request only one of them pops the pushed reply, and the other finds the copy.
        Slices also stay under redis-py's 5 s socket timeout.
        """
        keys = TurnKeys(self._prefix, conversation_id)
        deadline = time.monotonic() + timeout_seconds
        while (remaining := deadline - time.monotonic()) > 0:
            popped = await self._redis.blpop(
                [keys.inbox(request_id)], timeout=max(0.01, min(remaining, WAIT_SLICE_SECONDS))
            )
            if popped is not None:
                return dict(json.loads(popped[1]))
            stored = await self.stored_reply(conversation_id, request_id)
            if stored is not None:
                return stored
        return None
