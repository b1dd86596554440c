"""Signed webhook tokens seen lately, so a captured token cannot be sent again for another request.

A Vonage token signs the payload, not the URL: our input webhook's `turn` rides in its query, so a
token captured in flight could be replayed against another turn while it is fresh. Each token's `jti`
is kept with the request it came with, for as long as the token is accepted at all. Vonage's documents
do not say whether a retried webhook is signed again, so a repeat of the very same request (same
method, URL and payload: a retry, answered from what the first did) passes, and anything else under a
token already used is refused. Keys live under the deployment's prefix, not a tenant's: the tenant is
known only after the webhook is trusted.
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis


def request_fingerprint(method: str, path: str, query: str, payload_hash: str) -> str:
    """What one webhook request is: its method, path, query and (signed) payload, as one digest."""
    return hashlib.sha256("\n".join((method.upper(), path, query, payload_hash.lower())).encode()).hexdigest()


class WebhookTokens:
    """Async: checked by the HTTP functions on the worker's event loop."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    async def first_use(self, token_id: str, fingerprint: str, ttl_seconds: int) -> bool:
        """True if the token is new, or was used before for this same request (a retry); False if it
        came before with another request. Kept `ttl_seconds`: past that the token is refused as too old."""
        key = f"{self._prefix}webhook-token:{token_id}"
        if await self._redis.set(key, fingerprint, nx=True, ex=ttl_seconds):
            return True
        seen = await self._redis.get(key)
        return seen is None or (seen.decode() if isinstance(seen, bytes) else str(seen)) == fingerprint
