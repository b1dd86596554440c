"""Signed webhook tokens on the real Redis: a retry of the same request passes, any other use is refused."""

from __future__ import annotations

import asyncio
import uuid

import redis
import redis.asyncio as aioredis

from shared.storage.webhook_tokens import WebhookTokens, request_fingerprint

INPUT = "/api/voice/vonage/input"


def test_a_token_passes_once_per_request_and_again_only_for_that_same_request(
    redis_url: str, redis_prefix: str
) -> None:
    token_id = str(uuid.uuid4())
    first = request_fingerprint("POST", INPUT, "turn=1&silences=0&wait=0", "ab" * 32)

    async def scenario() -> dict[str, bool]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            tokens = WebhookTokens(client, redis_prefix)
            return {
                "first use": await tokens.first_use(token_id, first, 300),
                "a retry": await tokens.first_use(token_id, first, 300),
                "another turn": await tokens.first_use(
                    token_id, request_fingerprint("POST", INPUT, "turn=2&silences=0&wait=0", "ab" * 32), 300
                ),
                "another route": await tokens.first_use(
                    token_id,
                    request_fingerprint("POST", "/api/voice/vonage/event", "turn=1&silences=0&wait=0", "ab" * 32),
                    300,
                ),
                "another token": await tokens.first_use(str(uuid.uuid4()), first, 300),
            }
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == {
        "first use": True,
        "a retry": True,
        "another turn": False,
        "another route": False,
        "another token": True,
    }
    key = f"{redis_prefix}webhook-token:{token_id}"
    assert 290 <= redis.Redis.from_url(redis_url).ttl(key) <= 300, "kept as long as the token is accepted"


def test_a_fingerprint_tells_method_path_query_and_payload_apart() -> None:
    base = ("POST", INPUT, "turn=1", "ab" * 32)
    variants = [
        ("GET", INPUT, "turn=1", "ab" * 32),
        ("POST", "/api/voice/vonage/answer", "turn=1", "ab" * 32),
        ("POST", INPUT, "turn=11", "ab" * 32),
        ("POST", INPUT, "turn=1", "cd" * 32),
        ("POST", INPUT + "\nturn=1", "", "ab" * 32),
    ]
    assert len({request_fingerprint(*v) for v in [base, *variants]}) == 1 + len(variants)
    assert request_fingerprint("post", INPUT, "turn=1", "AB" * 32) == request_fingerprint(*base)
