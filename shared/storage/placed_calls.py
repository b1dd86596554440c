"""The outbound calls placed, kept in Redis for a day: the answer to each (a retried `POST /api/calls`
with the same Idempotency-Key gets it back instead of ringing the number a second time), and whose
call each provider call id is (its webhooks do not always say which side is ours)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.call_models import PlacedCall
from shared.storage.handoff import tenant_prefix

if TYPE_CHECKING:
    import redis.asyncio as aioredis


class PlacedCalls:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, conversation_id: str) -> str:
        return f"{tenant_prefix(self._prefix)}placed:{conversation_id}"

    async def remember(self, placed: PlacedCall, ttl_seconds: int) -> None:
        await self._redis.set(self._key(placed.conversation_id), placed.model_dump_json(), ex=ttl_seconds)

    async def recall(self, conversation_id: str) -> PlacedCall | None:
        """The call placed for this conversation, None while it is being placed (or after a day)."""
        raw = await self._redis.get(self._key(conversation_id))
        return None if raw is None else PlacedCall.model_validate_json(raw)

    def _leg_key(self, provider: str, call_id: str) -> str:
        return f"{self._prefix}leg:{provider}:{call_id}"

    async def remember_leg(self, provider: str, call_id: str, tenant: str, ttl_seconds: int) -> None:
        """The provider's call `call_id` is one `tenant` placed (read before any tenant is known)."""
        await self._redis.set(self._leg_key(provider, call_id), tenant, ex=ttl_seconds)

    async def tenant_of_leg(self, provider: str, call_id: str) -> str | None:
        """The tenant that placed the provider's call `call_id`; None for a call that called in."""
        raw = await self._redis.get(self._leg_key(provider, call_id))
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)
