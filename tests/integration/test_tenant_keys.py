"""Redis keys and Blob names belong to a tenant: against real Redis and Azurite, two tenants using the same
client-chosen Idempotency-Key or the same conversation id never meet."""

from __future__ import annotations

import asyncio
import contextvars
import uuid

import pytest
import redis
import redis.asyncio as aioredis

from shared.storage.blobs import BlobStore, blob_service, caller_audio_name, reply_audio_name, sentence_audio_name
from shared.storage.handoff import ReplyPublisher, ReplyWaiter, TurnKeys
from shared.storage.reply_stream import stream_key
from shared.tenancy import NoTenant, tenant_scope


def test_two_tenants_with_the_same_idempotency_key_each_get_their_own_conversation(
    redis_url: str, redis_prefix: str
) -> None:
    async def start(tenant: str, conversation_id: str) -> str:
        with tenant_scope(tenant):
            waiter = ReplyWaiter(aioredis.Redis.from_url(redis_url), redis_prefix)
            return await waiter.claim_start("key:same-key", conversation_id, 60)

    async def scenario() -> tuple[str, str, str, str]:
        return (
            await start("alpha", "conversation-a"),
            await start("beta", "conversation-b"),
            await start("alpha", "conversation-c"),
            await start("beta", "conversation-d"),
        )

    assert asyncio.run(scenario()) == ("conversation-a", "conversation-b", "conversation-a", "conversation-b")
    client = redis.Redis.from_url(redis_url)
    assert client.get(f"{redis_prefix}t:alpha:start:key:same-key") == b"conversation-a"
    assert client.get(f"{redis_prefix}t:beta:start:key:same-key") == b"conversation-b"


def test_a_reply_handed_over_in_one_tenant_is_not_found_by_another(redis_url: str, redis_prefix: str) -> None:
    conversation_id = str(uuid.uuid4())
    with tenant_scope("alpha"):
        ReplyPublisher(redis.Redis.from_url(redis_url), redis_prefix).publish(conversation_id, "r1", {"turn": 1})

    async def stored(tenant: str) -> dict[str, object] | None:
        with tenant_scope(tenant):
            return await ReplyWaiter(aioredis.Redis.from_url(redis_url), redis_prefix).stored_reply(
                conversation_id, "r1"
            )

    assert asyncio.run(stored("alpha")) == {"turn": 1}
    assert asyncio.run(stored("beta")) is None
    with tenant_scope("beta"):
        keys = TurnKeys(redis_prefix, conversation_id)
        assert keys.lock == f"{redis_prefix}t:beta:conv:{conversation_id}:turn-lock"
        assert (
            stream_key(redis_prefix, conversation_id, 2) == f"{redis_prefix}t:beta:conv:{conversation_id}:turn:2:reply"
        )


def test_blob_names_start_with_the_tenant_and_one_tenants_audio_is_not_read_as_anothers(
    blob_connection_string: str,
) -> None:
    store = BlobStore(blob_service(blob_connection_string, ""), f"audio{uuid.uuid4().hex[:8]}")
    conversation_id = str(uuid.uuid4())
    with tenant_scope("alpha"):
        names = [
            reply_audio_name(conversation_id, 1),
            sentence_audio_name(conversation_id, 1, 0),
            caller_audio_name(conversation_id, "key:r1"),
        ]
        store.put(names[0], b"RIFF alpha")
    assert all(name.startswith(f"alpha/conversations/{conversation_id}/") for name in names)
    with tenant_scope("beta"):
        assert reply_audio_name(conversation_id, 1) == f"beta/conversations/{conversation_id}/turns/00001.wav"
        assert store.get(reply_audio_name(conversation_id, 1)) is None
    assert store.get(names[0]) == b"RIFF alpha"


def test_without_a_tenant_there_is_no_key_and_no_blob_name(redis_prefix: str) -> None:
    nowhere = contextvars.Context()
    with pytest.raises(NoTenant):
        nowhere.run(TurnKeys, redis_prefix, "c1")
    with pytest.raises(NoTenant):
        nowhere.run(reply_audio_name, "c1", 1)
