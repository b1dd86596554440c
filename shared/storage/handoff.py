"""Turn hand-off through Redis: the request that raised an utterance waits here for its reply.

The orchestrator's `publish` activity pushes the reply onto a list the waiting request blocks on
(BLPOP with a deadline) and also keeps a copy, so a retried request finds the answer without a
second turn. A per-conversation turn lock keeps one utterance in flight at a time: the Durable
Python SDK keeps only the last of several buffered events with the same name, so concurrent
utterances would otherwise be silently dropped.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import redis
import redis.asyncio as aioredis

REPLY_TTL_SECONDS = 3600
SOCKET_TIMEOUT_MARGIN_SECONDS = 5.0

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

    @classmethod
    def connect(cls, url: str, prefix: str, longest_wait_seconds: float) -> ReplyWaiter:
        """A waiter whose socket timeout outlasts its longest BLPOP (redis-py's default is 5 s)."""
        client = aioredis.Redis.from_url(url, socket_timeout=longest_wait_seconds + SOCKET_TIMEOUT_MARGIN_SECONDS)
        return cls(client, prefix)

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
        await self._redis.eval(_RELEASE_IF_OWNER, 1, key, request_id)

    async def stored_reply(self, conversation_id: str, request_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(TurnKeys(self._prefix, conversation_id).reply(request_id))
        return None if raw is None else dict(json.loads(raw))

    async def wait(self, conversation_id: str, request_id: str, timeout_seconds: float) -> dict[str, Any] | None:
        """The reply for this request, or None when the deadline passes first."""
        keys = TurnKeys(self._prefix, conversation_id)
        popped = await self._redis.blpop([keys.inbox(request_id)], timeout=timeout_seconds)
        if popped is not None:
            return dict(json.loads(popped[1]))
        return await self.stored_reply(conversation_id, request_id)
