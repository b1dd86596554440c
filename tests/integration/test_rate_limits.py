"""Rate limits on the real Redis: exact bursts, separate identities, recovery, outages, settings."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import Any

import pydantic
import pytest
import redis

from shared.config import Settings
from shared.errors import TooManyRequests
from shared.security.rate_limits import REDIS_TIMEOUT_SECONDS, RateLimiter, storage_uri

NO_LIMITS = {
    "rate_limit_per_ip": "",
    "rate_limit_per_key": "",
    "rate_limit_per_tenant": "",
    "rate_limit_per_webhook_ip": "",
}


def limiter(redis_url: str, redis_prefix: str, **limits: str) -> RateLimiter:
    settings: dict[str, Any] = {"redis_url": redis_url, "redis_key_prefix": redis_prefix}
    return RateLimiter.from_settings(Settings(**(settings | NO_LIMITS | limits)))


async def passed(limits: RateLimiter, **identity: Any) -> bool:
    try:
        await limits.check(**identity)
    except TooManyRequests:
        return False
    return True


def test_a_burst_is_refused_after_exactly_the_limit_with_retry_after(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> tuple[list[bool], TooManyRequests]:
        limits = limiter(redis_url, redis_prefix, rate_limit_per_key="5/minute")
        outcomes = [await passed(limits, key_id="k1") for _ in range(5)]
        with pytest.raises(TooManyRequests) as refused:
            await limits.check(key_id="k1")
        return outcomes, refused.value

    outcomes, refused = asyncio.run(scenario())

    assert outcomes == [True] * 5
    assert (refused.status, refused.code) == (429, "rate_limited")
    assert 1 <= refused.retry_after <= 60
    assert refused.headers() == {"Retry-After": str(refused.retry_after)}
    assert "API key" in refused.message


def test_a_phone_providers_address_has_its_own_limit_apart_from_the_apis(redis_url: str, redis_prefix: str) -> None:
    provider = ipaddress.ip_address("198.51.100.9")

    async def scenario() -> dict[str, bool]:
        limits = limiter(redis_url, redis_prefix, rate_limit_per_ip="2/minute", rate_limit_per_webhook_ip="3/minute")
        webhooks = [await passed(limits, ip=provider, webhook=True) for _ in range(3)]
        return {
            "three webhooks": all(webhooks),
            "a fourth": await passed(limits, ip=provider, webhook=True),
            "an API call from the same address": await passed(limits, ip=provider),
            "a webhook from the unknown bucket": await passed(limits, unknown_address=True, webhook=True),
        }

    assert asyncio.run(scenario()) == {
        "three webhooks": True,
        "a fourth": False,
        "an API call from the same address": True,
        "a webhook from the unknown bucket": True,
    }


def test_counts_live_under_our_key_prefix(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        await limiter(redis_url, redis_prefix, rate_limit_per_tenant="5/minute").check(tenant="acme")

    asyncio.run(scenario())

    keys = [key.decode() for key in redis.Redis.from_url(redis_url).scan_iter(match=f"{redis_prefix}*")]
    assert keys
    assert all(key.startswith(f"{redis_prefix}limits:") and "tenant/acme" in key for key in keys)


def test_identities_do_not_share_counts(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> dict[str, bool]:
        limits = limiter(
            redis_url,
            redis_prefix,
            rate_limit_per_ip="1/minute",
            rate_limit_per_key="1/minute",
            rate_limit_per_tenant="1/minute",
        )
        await limits.check(key_id="k1")
        await limits.check(tenant="acme")
        await limits.check(ip=ipaddress.ip_address("203.0.113.7"))
        await limits.check(ip=ipaddress.ip_address("2001:db8:1:2::1"))
        return {
            "same key": await passed(limits, key_id="k1"),
            "other key": await passed(limits, key_id="k2"),
            "key id equal to a tenant": await passed(limits, key_id="acme"),
            "same tenant": await passed(limits, tenant="acme"),
            "other tenant": await passed(limits, tenant="globex"),
            "same address": await passed(limits, ip=ipaddress.ip_address("203.0.113.7")),
            "other address": await passed(limits, ip=ipaddress.ip_address("203.0.113.8")),
            "same IPv6 /64": await passed(limits, ip=ipaddress.ip_address("2001:db8:1:2:ffff::9")),
            "other IPv6 /64": await passed(limits, ip=ipaddress.ip_address("2001:db8:1:3::1")),
        }

    assert asyncio.run(scenario()) == {
        "same key": False,
        "other key": True,
        "key id equal to a tenant": True,
        "same tenant": False,
        "other tenant": True,
        "same address": False,
        "other address": True,
        "same IPv6 /64": False,
        "other IPv6 /64": True,
    }


def test_every_limit_of_a_setting_applies_and_a_refusal_stops_at_the_first_identity(
    redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> tuple[list[bool], TooManyRequests, bool]:
        limits = limiter(
            redis_url, redis_prefix, rate_limit_per_key="100/minute;2/second", rate_limit_per_tenant="3/minute"
        )
        outcomes = [await passed(limits, key_id="k1", tenant="acme") for _ in range(2)]
        with pytest.raises(TooManyRequests) as refused:
            await limits.check(key_id="k1", tenant="acme")
        return outcomes, refused.value, await passed(limits, tenant="acme")

    outcomes, refused, tenant_has_one_left = asyncio.run(scenario())

    assert outcomes == [True, True]
    assert refused.retry_after == 1
    assert "2 per 1 second" in refused.message
    assert tenant_has_one_left


def test_requests_pass_again_once_retry_after_has_passed(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> tuple[int, bool, bool]:
        limits = limiter(redis_url, redis_prefix, rate_limit_per_ip="2/second")
        address = ipaddress.ip_address("198.51.100.1")
        await limits.check(ip=address)
        await limits.check(ip=address)
        with pytest.raises(TooManyRequests) as refused:
            await limits.check(ip=address)
        await asyncio.sleep(refused.value.retry_after)
        return refused.value.retry_after, await passed(limits, ip=address), await passed(limits, ip=address)

    retry_after, after_waiting, burst_again = asyncio.run(scenario())

    assert retry_after == 1
    assert after_waiting
    assert not burst_again, "the previous second's requests still count, weighted by their overlap"


def test_an_unreachable_redis_lets_requests_through_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[bool]:
        limits = limiter("redis://127.0.0.1:1/0", "unused:", rate_limit_per_key="1/minute")
        return [await passed(limits, key_id="k1") for _ in range(3)]

    with caplog.at_level(logging.WARNING, logger="shared.security.rate_limits"):
        outcomes = asyncio.run(scenario())

    assert outcomes == [True, True, True]
    assert [record.getMessage() for record in caplog.records] == [
        "rate limits not enforced for 5 s: Redis failed (ConnectionError)"
    ]


def test_a_redis_that_never_answers_costs_a_request_one_timeout() -> None:
    async def scenario() -> tuple[bool, float]:
        connections: list[asyncio.StreamWriter] = []

        async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(writer)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        limits = limiter(f"redis://127.0.0.1:{port}/0", "unused:", rate_limit_per_ip="1/minute")
        started = time.monotonic()
        outcome = await passed(limits, ip=ipaddress.ip_address("203.0.113.7"))
        elapsed = time.monotonic() - started
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()
        return outcome, elapsed

    outcome, elapsed = asyncio.run(scenario())

    assert outcome
    assert REDIS_TIMEOUT_SECONDS <= elapsed < REDIS_TIMEOUT_SECONDS + 0.5


def test_without_identities_or_limits_nothing_is_counted(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        limits = limiter(redis_url, redis_prefix, rate_limit_per_key="1/minute")
        for _ in range(3):
            await limits.check(ip=ipaddress.ip_address("203.0.113.7"), tenant="acme")
            await limits.check()

    asyncio.run(scenario())

    assert list(redis.Redis.from_url(redis_url).scan_iter(match=f"{redis_prefix}*")) == []


@pytest.mark.parametrize("value", ["lots", "10/fortnight", "0/minute", "5/minute;0/second", "*"])
@pytest.mark.parametrize("setting", ["rate_limit_per_ip", "rate_limit_per_key", "rate_limit_per_tenant"])
def test_bad_rate_limit_settings_are_refused_at_startup(setting: str, value: str) -> None:
    values: dict[str, Any] = {setting: value}
    with pytest.raises(pydantic.ValidationError, match=setting):
        Settings(**values)


def test_our_redis_urls_become_limits_storage_uris() -> None:
    assert storage_uri("redis://127.0.0.1:6379/0") == "async+redis://127.0.0.1:6379/0"
    assert storage_uri("rediss://:secret@cache.redis.cache.windows.net:6380/0") == (
        "async+rediss://:secret@cache.redis.cache.windows.net:6380/0"
    )
    with pytest.raises(ValueError, match="REDIS_URL"):
        storage_uri("memcached://127.0.0.1:11211")


def test_requests_without_a_known_address_share_one_bucket(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> list[bool]:
        limits = limiter(redis_url, redis_prefix, rate_limit_per_ip="2/minute")
        return [await passed(limits, unknown_address=True) for _ in range(3)] + [
            await passed(limits, ip=ipaddress.ip_address("203.0.113.9"))
        ]

    assert asyncio.run(scenario()) == [True, True, False, True]


def test_signed_audio_fetches_count_per_link_and_never_against_the_tenant(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> tuple[list[bool], bool]:
        limits = limiter(redis_url, redis_prefix, rate_limit_per_key="2/minute", rate_limit_per_tenant="1/minute")
        fetches = [await passed(limits, audio_link="acme/c1") for _ in range(3)]
        return [*fetches, await passed(limits, audio_link="acme/c2")], await passed(limits, tenant="acme")

    fetches, tenant_passes = asyncio.run(scenario())

    assert fetches == [True, True, False, True]
    assert tenant_passes, "the tenant's own limit was not spent by audio fetches"
