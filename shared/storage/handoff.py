"""Turn hand-off through Redis: the request that raised an utterance waits here for its reply.

The orchestrator's `publish` activity pushes the reply onto a list the waiting request blocks on
(BLPOP with a deadline) and also keeps a copy, so a retried request finds the answer without a
second turn. A per-conversation turn lock keeps one utterance in flight at a time: the Durable
Python SDK keeps only the last of several buffered events with the same name, so concurrent
utterances would otherwise be silently dropped.

When a conversation ends (hung up, failed, terminated) the request still waiting is told at once
instead of waiting out its deadline, and the turn lock is dropped with it.

Every key lives under the current tenant (`tenant_prefix`): a start request's Idempotency-Key, which
the client chooses, names the conversation it made only for the tenant that made it.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Any

import redis
import redis.asyncio as aioredis

from shared.tenancy import current_tenant

REPLY_TTL_SECONDS = 3600
WAIT_SLICE_SECONDS = 1.0

_RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class ConversationEnded(Exception):
    """The conversation ended before the awaited reply was published."""

    def __init__(self, outcome: str) -> None:
        super().__init__(f"the conversation ended ({outcome})")
        self.outcome = outcome


class Claim(StrEnum):
    """The outcome of asking for a conversation's turn."""

    NEW = "new"
    """This request now holds the turn: raise its utterance."""
    HELD = "held"
    """This request already held it (a retry): its utterance is in flight, just wait."""
    TAKEN = "taken"
    """Another request holds it."""


def tenant_prefix(prefix: str) -> str:
    """The deployment's prefix and the current tenant's part: `{prefix}t:{tenant}:` (`NoTenant` without one)."""
    return f"{prefix}t:{current_tenant()}:"


class TurnKeys:
    """Key names for one conversation, under the deployment's prefix and the current tenant."""

    def __init__(self, prefix: str, conversation_id: str) -> None:
        self._base = f"{tenant_prefix(prefix)}conv:{conversation_id}:"

    @property
    def lock(self) -> str:
        return self._base + "turn-lock"

    def reply(self, request_id: str) -> str:
        return f"{self._base}reply:{request_id}"

    def inbox(self, request_id: str) -> str:
        return f"{self._base}handoff:{request_id}"

    def raised(self, request_id: str) -> str:
        return f"{self._base}raised:{request_id}"

    @property
    def ended(self) -> str:
        return self._base + "ended"

    @property
    def expecting(self) -> str:
        """The event name the caller's next utterance goes under, as the last reply announced it."""
        return self._base + "expecting"

    def stream(self, turn: int) -> str:
        return f"{self._base}turn:{turn}:reply"

    def interrupted(self, turn: int) -> str:
        """Set when a web client interrupts the turn's reply: how many of its sentences the client played."""
        return f"{self._base}turn:{turn}:interrupted"

    @property
    def presence(self) -> str:
        """A web session's connections, counted (a hash: one key, so a script may change it in a cluster)."""
        return self._base + "presence"

    def streamed_turn(self, request_id: str) -> str:
        """The turn number whose reply stream answers this request (a reader knows the request, not the turn)."""
        return f"{self._base}streamed:{request_id}"


def _delivered(raw: bytes | str) -> dict[str, Any]:
    """The reply in an inbox envelope; ConversationEnded when the envelope says the call is over."""
    envelope = json.loads(raw)
    if "ended" in envelope:
        raise ConversationEnded(str(envelope["ended"]))
    return dict(envelope["reply"])


class ReplyPublisher:
    """The orchestrator side (sync, used by activities)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._release = client.register_script(_RELEASE_IF_OWNER)

    def publish(self, conversation_id: str, request_id: str, reply: dict[str, Any]) -> None:
        keys = TurnKeys(self._prefix, conversation_id)
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.reply(request_id), json.dumps(reply), ex=REPLY_TTL_SECONDS)
            pipe.delete(keys.inbox(request_id))
            pipe.rpush(keys.inbox(request_id), json.dumps({"reply": reply}))
            pipe.expire(keys.inbox(request_id), REPLY_TTL_SECONDS)
            pipe.execute()
        self._release(keys=[keys.lock], args=[request_id])

    def announce_expecting(self, conversation_id: str, next_event: str | None) -> None:
        """Say under which event name the caller's next utterance goes (None: the call takes no more)."""
        keys = TurnKeys(self._prefix, conversation_id)
        self._redis.set(keys.expecting, next_event or "", ex=REPLY_TTL_SECONDS)

    def announce_end(self, conversation_id: str, outcome: str) -> None:
        """Wake the request holding the turn (it answers at once) and drop the lock with the call."""
        keys = TurnKeys(self._prefix, conversation_id)
        holder = self._redis.get(keys.lock)
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.ended, outcome, ex=REPLY_TTL_SECONDS)
            if holder is not None:
                inbox = keys.inbox(holder.decode() if isinstance(holder, bytes) else str(holder))
                pipe.rpush(inbox, json.dumps({"ended": outcome}))
                pipe.expire(inbox, REPLY_TTL_SECONDS)
            pipe.delete(keys.lock)
            pipe.execute()


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

    def _start_key(self, request_id: str) -> str:
        return f"{tenant_prefix(self._prefix)}start:{request_id}"

    async def claim_start(self, request_id: str, conversation_id: str, ttl_seconds: int) -> str:
        """The conversation a start request made: this new one, or the one an earlier try already made."""
        key = self._start_key(request_id)
        if await self._redis.set(key, conversation_id, nx=True, ex=ttl_seconds):
            return conversation_id
        existing = await self._redis.get(key)
        if existing is None:
            return conversation_id
        return existing.decode() if isinstance(existing, bytes) else str(existing)

    async def started(self, request_id: str) -> str | None:
        """The conversation a start request made, if any (a provider's later webhooks of the same call)."""
        existing = await self._redis.get(self._start_key(request_id))
        return None if existing is None else existing.decode() if isinstance(existing, bytes) else str(existing)

    async def release_start(self, request_id: str, conversation_id: str) -> None:
        """Forget a start that failed before its conversation existed, so a retry starts afresh."""
        await self._release(keys=[self._start_key(request_id)], args=[conversation_id])

    async def begin_raise(self, conversation_id: str, request_id: str, grace_seconds: int) -> bool:
        """True if this request should raise the utterance: nobody raised it, nor is raising it now.

        A request marks itself as raising for `grace_seconds`; a retry takes over only after that,
        so an original still uploading its audio is never doubled by its own retry.
        """
        key = TurnKeys(self._prefix, conversation_id).raised(request_id)
        return bool(await self._redis.set(key, "raising", nx=True, ex=grace_seconds))

    async def mark_raised(self, conversation_id: str, request_id: str, ttl_seconds: int) -> None:
        """Remember that this request's utterance reached the orchestration."""
        await self._redis.set(TurnKeys(self._prefix, conversation_id).raised(request_id), "raised", ex=ttl_seconds)

    async def release_turn(self, conversation_id: str, request_id: str) -> None:
        """Give the turn back (its utterance was never raised): a retry starts afresh."""
        keys = TurnKeys(self._prefix, conversation_id)
        await self._release(keys=[keys.lock], args=[request_id])
        await self._redis.delete(keys.raised(request_id))

    async def expecting(self, conversation_id: str) -> str | None:
        """The next utterance's event name as the last reply announced it; "" once the call takes no more,
        None when no reply has said (the orchestration's custom status tells then)."""
        raw = await self._redis.get(TurnKeys(self._prefix, conversation_id).expecting)
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)

    async def ended(self, conversation_id: str) -> str | None:
        """The conversation's outcome once it has ended, else None."""
        raw = await self._redis.get(TurnKeys(self._prefix, conversation_id).ended)
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)

    async def stored_reply(self, conversation_id: str, request_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(TurnKeys(self._prefix, conversation_id).reply(request_id))
        return None if raw is None else dict(json.loads(raw))

    async def wait(self, conversation_id: str, request_id: str, timeout_seconds: float) -> dict[str, Any] | None:
        """The reply for this request, or None when the deadline passes first.

        Blocks in short slices and checks the stored copy between them: when a retry waits beside
        the original request only one of them pops the pushed reply, and the other finds the copy.
        Slices also stay under redis-py's 5 s socket timeout. Raises ConversationEnded as soon as
        the conversation is over without this reply.
        """
        keys = TurnKeys(self._prefix, conversation_id)
        deadline = time.monotonic() + timeout_seconds
        while (remaining := deadline - time.monotonic()) > 0:
            popped = await self._redis.blpop(
                [keys.inbox(request_id)], timeout=max(0.01, min(remaining, WAIT_SLICE_SECONDS))
            )
            if popped is not None:
                return _delivered(popped[1])
            stored = await self.stored_reply(conversation_id, request_id)
            if stored is not None:
                return stored
            ended = await self._redis.get(keys.ended)
            if ended is not None:
                raise ConversationEnded(ended.decode() if isinstance(ended, bytes) else str(ended))
        return None
