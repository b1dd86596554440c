"""How often one client address, API key or tenant may call: limits shared by every instance, in Redis.

Functions scales out, so a count kept in one process would multiply by the instance count; the
counts live in Redis (the `limits` library, its async redis-py storage), under
`<REDIS_KEY_PREFIX>limits:`. RATE_LIMIT_PER_IP, RATE_LIMIT_PER_KEY, RATE_LIMIT_PER_TENANT and
RATE_LIMIT_PER_WEBHOOK_IP are in the library's notation (`600/minute`, `100/minute;10/second`), checked
when the settings load; an empty one is no limit. An IPv6 caller is counted by its /64: one subscriber
usually holds all of one. A phone provider's webhooks count per sending address in a bucket of their
own: they are not API calls, and a burst of one must not spend the other's budget.

Strategy: the sliding window counter. A fixed window lets twice the limit through around a window's
edge; the moving window is exact but keeps one timestamp per allowed request (600 entries a key for
`600/minute`, for every address, key and tenant). The counter keeps two numbers per limit and
weights the previous window's by how much of it still overlaps, which approximates the moving window
closely enough for abuse protection at constant cost (one Lua call per limit).

A refused request is a `TooManyRequests` (429) whose `retry_after` comes from the library's window
statistics: the whole seconds until one more request would pass.

Redis unreachable: the request passes (fail open), a warning is logged, and Redis is left alone
(requests pass unchecked, unlogged) for OUTAGE_PAUSE_SECONDS. The limits protect capacity against
floods and runaway clients; every request is still authenticated and scoped, and refusing all
traffic (live phone calls included) because the counter store is down would turn a cache outage into
a full outage. Commands time out after REDIS_TIMEOUT_SECONDS so an outage costs each request at most that.

Build one `RateLimiter` per process (its Redis connections belong to the event loop that first uses them).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, RateLimitItemPerMinute, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from shared.config import Settings
from shared.errors import TooManyRequests
from shared.security.client_ip import IpAddress
from shared.storage.entra import async_redis_pool, redis_credentials

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 0.5
OUTAGE_PAUSE_SECONDS = 5.0
"""After a Redis failure, requests pass unchecked this long before Redis is tried again."""
IPV6_PREFIX = 64
UNKNOWN_ADDRESS = "unknown"
"""The one bucket of every request whose client address could not be told."""

_SCHEMES = {"redis://": "async+redis://", "rediss://": "async+rediss://", "unix://": "async+redis+unix://"}


def storage_uri(redis_url: str) -> str:
    """The `limits` async storage URI of our REDIS_URL (`rediss://` stays TLS, as Azure Cache for Redis needs)."""
    for scheme, storage_scheme in _SCHEMES.items():
        if redis_url.startswith(scheme):
            return storage_scheme + redis_url.removeprefix(scheme)
    raise ValueError("REDIS_URL must start with redis://, rediss:// or unix:// to hold rate limits")


def limits_of(setting: str) -> tuple[RateLimitItem, ...]:
    """The limits a RATE_LIMIT_* setting names; empty is none."""
    return tuple(parse_many(setting)) if setting.strip() else ()


@dataclass(frozen=True)
class _Identity:
    name: str
    """What is counted, in the Redis key: `ip`, `key`, `tenant`."""
    value: str
    limits: tuple[RateLimitItem, ...]
    described: str
    """What is counted, in the 429's message."""


class RateLimiter:
    def __init__(
        self,
        storage: RedisStorage,
        *,
        per_ip: tuple[RateLimitItem, ...] = (),
        per_key: tuple[RateLimitItem, ...] = (),
        per_tenant: tuple[RateLimitItem, ...] = (),
        per_webhook_ip: tuple[RateLimitItem, ...] = (),
        per_tenant_calls: tuple[RateLimitItem, ...] = (),
    ) -> None:
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self._per_ip, self._per_key, self._per_tenant = per_ip, per_key, per_tenant
        self._per_webhook_ip = per_webhook_ip
        self._per_tenant_calls = per_tenant_calls
        self._paused_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL is not set (make dev and the devhost set it for you)")
        timeouts = {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "socket_timeout": REDIS_TIMEOUT_SECONDS}
        entra: dict[str, Any] = {}
        if settings.redis_entra_auth:
            # The library builds a client around a pool given to it, and passes the provider on to that
            # client, which then re-authenticates the pool's connections as tokens are renewed.
            provider = redis_credentials()
            entra = {
                "connection_pool": async_redis_pool(settings.redis_url, provider, **timeouts),
                "credential_provider": provider,
            }
        storage = RedisStorage(
            storage_uri(settings.redis_url),
            implementation="redispy",
            key_prefix=f"{settings.redis_key_prefix}limits",
            wrap_exceptions=True,
            **timeouts,
            **entra,
        )
        return cls(
            storage,
            per_ip=limits_of(settings.rate_limit_per_ip),
            per_key=limits_of(settings.rate_limit_per_key),
            per_tenant=limits_of(settings.rate_limit_per_tenant),
            per_webhook_ip=limits_of(settings.rate_limit_per_webhook_ip),
            per_tenant_calls=(
                (RateLimitItemPerMinute(settings.outbound_calls_per_minute),)
                if settings.outbound_calls_per_minute
                else ()
            ),
        )

    async def check(
        self,
        *,
        ip: IpAddress | None = None,
        unknown_address: bool = False,
        webhook: bool = False,
        key_id: str | None = None,
        audio_link: str | None = None,
        tenant: str | None = None,
        calls_of: str | None = None,
    ) -> None:
        """Count one request against every limit of each identity given; `TooManyRequests` if one is spent.

        `unknown_address`: the caller's address could not be told (no usable X-Forwarded-For), so the
        request counts in one shared bucket rather than in none. `webhook`: the address is a phone
        provider's, counted against RATE_LIMIT_PER_WEBHOOK_IP instead of the API's. `audio_link`: a
        signed audio fetch, counted per conversation with the per-key limits, apart from the tenant's own
        traffic (a leaked link must not spend the tenant's limit). `calls_of`: a tenant placing an
        outbound call, counted against OUTBOUND_CALLS_PER_MINUTE (each call costs money and rings
        someone). The identities are checked in this order and the first refusal stops the rest, so a
        request refused for its address is not counted further.
        """
        identities = []
        per_address = self._per_webhook_ip if webhook else self._per_ip
        if (ip is not None or unknown_address) and per_address:
            address = UNKNOWN_ADDRESS if ip is None else _ip_identity(ip)
            if webhook:
                identities.append(_Identity("webhook-ip", address, per_address, "provider address"))
            else:
                identities.append(_Identity("ip", address, per_address, "client address"))
        if audio_link is not None and self._per_key:
            identities.append(_Identity("link", audio_link, self._per_key, "audio link"))
        if key_id is not None and self._per_key:
            identities.append(_Identity("key", key_id, self._per_key, "API key"))
        if tenant is not None and self._per_tenant:
            identities.append(_Identity("tenant", tenant, self._per_tenant, "tenant"))
        if calls_of is not None and self._per_tenant_calls:
            identities.append(_Identity("calls", calls_of, self._per_tenant_calls, "tenant's outbound calls"))
        if not identities or time.monotonic() < self._paused_until:
            return
        try:
            for identity in identities:
                await self._hit(identity)
        except StorageError as error:
            self._paused_until = time.monotonic() + OUTAGE_PAUSE_SECONDS
            log.warning(
                "rate limits not enforced for %.0f s: Redis failed (%s)",
                OUTAGE_PAUSE_SECONDS,
                type(error.storage_error).__name__,
            )

    async def _hit(self, identity: _Identity) -> None:
        for limit in identity.limits:
            if not await self._strategy.hit(limit, identity.name, identity.value):
                stats = await self._strategy.get_window_stats(limit, identity.name, identity.value)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise TooManyRequests(
                    f"Too many requests for this {identity.described} (at most {limit}); retry in {retry_after} s.",
                    retry_after=retry_after,
                )


def _ip_identity(ip: IpAddress) -> str:
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)
