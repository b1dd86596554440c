"""Storage against real Postgres, Redis and Azurite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis
import redis.asyncio as aioredis

from shared.agent.catalog import load_agent_file
from shared.audit import AuditAction, AuditEntry
from shared.config import REPOSITORY_ROOT
from shared.models import AgentProfile, Intent, KnowledgeDocument, ModelUsage, Outcome, TurnKind, TurnRecord
from shared.storage.audit import AuditFilter, AuditLog
from shared.storage.blobs import BlobStore, blob_service, conversation_folder, reply_audio_name
from shared.storage.conversation_keys import forget_conversation
from shared.storage.conversations import ConversationRepository
from shared.storage.handoff import Claim, ReplyPublisher, ReplyWaiter, TurnKeys, tenant_prefix
from shared.storage.knowledge import KnowledgeRepository
from shared.storage.migrations import apply_migrations
from shared.storage.postgres import Pool, open_pool
from shared.tenancy import tenant_scope


@pytest.fixture(scope="module")
def pool(new_database: Callable[[], str]) -> Iterator[Pool]:
    url = new_database()
    assert apply_migrations(url) > 0
    assert apply_migrations(url) == 0, "a second run applies nothing"
    pool = open_pool(url, 4)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def demo(pool: Pool) -> AgentProfile:
    profile = load_agent_file(REPOSITORY_ROOT / "agents" / "demo.toml")
    KnowledgeRepository(pool).upsert_agent(profile)
    return profile


def _turn(conversation_id: str, turn: int, request_id: str | None, reply: str = "hi") -> TurnRecord:
    return TurnRecord(
        conversation_id=conversation_id,
        turn=turn,
        kind=TurnKind.UTTERANCE,
        request_id=request_id,
        user_text="hello",
        intent=Intent.GREETING,
        reply_text=reply,
        agent_ms=1.5,
    )


def test_agent_sync_is_a_no_op_when_the_file_did_not_change(pool: Pool, demo: AgentProfile) -> None:
    repository = KnowledgeRepository(pool)
    assert repository.upsert_agent(demo) is False
    changed = demo.model_copy(update={"knowledge": [KnowledgeDocument(title="Parking", text="Park behind.")]})
    assert repository.upsert_agent(changed) is True
    assert [hit.title for hit in repository.search("demo", "where do I park")] == ["Parking"]
    assert repository.upsert_agent(demo) is True
    assert repository.get_agent("demo") == demo


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("what are your opening hours", "Opening hours"),
        ("how much does delivery cost", "Delivery"),
        ("do you have vegan options", "Menu"),
        ("where are you located", "Location"),
        ("can I book a table for six", "Table booking"),
    ],
)
def test_full_text_search_finds_the_right_passage(pool: Pool, demo: AgentProfile, question: str, title: str) -> None:
    hits = KnowledgeRepository(pool).search("demo", question)
    assert hits, question
    assert hits[0].title == title


def test_search_without_meaningful_words_finds_nothing(pool: Pool, demo: AgentProfile) -> None:
    assert KnowledgeRepository(pool).search("demo", "and the of") == []
    assert KnowledgeRepository(pool).search("demo", "") == []
    assert KnowledgeRepository(pool).search("nobody", "opening hours") == []


def test_a_retried_turn_write_keeps_one_row(pool: Pool, demo: AgentProfile) -> None:
    repository = ConversationRepository(pool)
    conversation_id = str(uuid.uuid4())
    repository.create(conversation_id, "demo", "en-US", "api")
    first = repository.record_turn(_turn(conversation_id, 1, "req-1", reply="first"))
    again = repository.record_turn(_turn(conversation_id, 1, "req-1", reply="second attempt"))
    assert again == first
    assert again.reply_text == "first"
    with pytest.raises(LookupError):
        repository.record_turn(_turn(conversation_id, 2, "req-1"))
    assert [t.turn for t in repository.list_turns(conversation_id)] == [1]


def test_a_turns_model_usage_round_trips_and_a_turn_without_a_model_reads_back_none(
    pool: Pool, demo: AgentProfile
) -> None:
    repository = ConversationRepository(pool)
    conversation_id = str(uuid.uuid4())
    repository.create(conversation_id, "demo", "en", "api")
    usage = ModelUsage(provider="openai", model="gpt-4o-mini", input_tokens=1200, output_tokens=35, cost_usd=0.000201)

    stored = repository.record_turn(_turn(conversation_id, 1, "r1").model_copy(update={"llm": usage}))
    greeting = repository.record_turn(_turn(conversation_id, 0, None))

    assert stored.llm == usage
    assert greeting.llm is None
    assert [t.llm for t in repository.list_turns(conversation_id)] == [None, usage]
    assert repository.get_turn_by_request(conversation_id, "r1") == stored


def test_turns_list_in_order_and_last_n(pool: Pool, demo: AgentProfile) -> None:
    repository = ConversationRepository(pool)
    conversation_id = str(uuid.uuid4())
    repository.create(conversation_id, "demo", "en-US", "api")
    for number in (2, 0, 1, 3):
        repository.record_turn(_turn(conversation_id, number, f"r{number}"))
    assert [t.turn for t in repository.list_turns(conversation_id)] == [0, 1, 2, 3]
    assert [t.turn for t in repository.list_turns(conversation_id, last=2)] == [2, 3]

    spoken = _turn(conversation_id, 4, "r4").model_copy(
        update={"audio_blob": "blob.wav", "tts_ms": 12.5, "tts_engine": "espeak", "first_audio_ms": 80.25}
    )
    repository.record_turn(spoken)
    stored = repository.get_turn_by_request(conversation_id, "r4")
    assert stored == spoken, "a turn is stored whole, its audio included"


def test_conversation_lifecycle(pool: Pool, demo: AgentProfile) -> None:
    repository = ConversationRepository(pool)
    conversation_id = str(uuid.uuid4())
    repository.create(conversation_id, "demo", "hi-IN", "api")
    assert repository.mark_ending(conversation_id) is True
    assert repository.mark_ending(conversation_id) is False
    repository.complete(conversation_id, Outcome.ENDED_BY_CLIENT, "2 turns")
    stored = repository.get(conversation_id)
    assert stored is not None
    assert (stored.status, stored.outcome, stored.summary, stored.language) == (
        "completed",
        "ended_by_client",
        "2 turns",
        "hi-IN",
    )
    assert stored.ended_at is not None
    assert repository.get(str(uuid.uuid4())) is None


def test_unknown_agent_is_refused_by_the_schema(pool: Pool) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        ConversationRepository(pool).create(str(uuid.uuid4()), "nobody", "en-US", "api")


def test_handoff_delivers_the_reply_to_the_waiting_request(redis_url: str, redis_prefix: str) -> None:
    publisher = ReplyPublisher(redis.Redis.from_url(redis_url), redis_prefix)

    async def scenario() -> tuple[Claim, Claim, dict[str, object] | None, dict[str, object] | None, Claim]:
        waiter = ReplyWaiter(aioredis.Redis.from_url(redis_url), redis_prefix)
        claimed = await waiter.claim_turn("c1", "req-1", 60)
        other = await waiter.claim_turn("c1", "req-2", 60)
        waiting = asyncio.create_task(waiter.wait("c1", "req-1", 5))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(publisher.publish, "c1", "req-1", {"turn": 1, "text": "hello"})
        reply = await waiting
        stored = await waiter.stored_reply("c1", "req-1")
        after = await waiter.claim_turn("c1", "req-2", 60)
        return claimed, other, reply, stored, after

    claimed, other, reply, stored, after = asyncio.run(scenario())
    assert claimed is Claim.NEW
    assert other is Claim.TAKEN, "a second request cannot take the turn while one is in flight"
    assert reply == {"turn": 1, "text": "hello"}
    assert stored == reply, "a retry finds the reply without a second turn"
    assert after is Claim.NEW, "publishing releases the turn lock"


def test_a_wait_longer_than_redis_default_socket_timeout_still_gets_its_reply(
    redis_url: str, redis_prefix: str
) -> None:
    publisher = ReplyPublisher(redis.Redis.from_url(redis_url), redis_prefix)

    async def scenario() -> dict[str, object] | None:
        waiter = ReplyWaiter(aioredis.Redis.from_url(redis_url), redis_prefix)
        waiting = asyncio.create_task(waiter.wait("c9", "slow-1", 8))
        await asyncio.sleep(5.5)
        await asyncio.to_thread(publisher.publish, "c9", "slow-1", {"turn": 3})
        return await waiting

    assert asyncio.run(scenario()) == {"turn": 3}


def test_a_retry_waiting_beside_the_original_gets_the_reply_too(redis_url: str, redis_prefix: str) -> None:
    publisher = ReplyPublisher(redis.Redis.from_url(redis_url), redis_prefix)

    async def scenario() -> list[dict[str, object] | None]:
        waiter = ReplyWaiter(aioredis.Redis.from_url(redis_url), redis_prefix)
        original = asyncio.create_task(waiter.wait("c7", "twice", 30))
        retry = asyncio.create_task(waiter.wait("c7", "twice", 30))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(publisher.publish, "c7", "twice", {"turn": 5})
        return list(await asyncio.wait_for(asyncio.gather(original, retry), timeout=5))

    assert asyncio.run(scenario()) == [{"turn": 5}, {"turn": 5}]


def test_handoff_wait_times_out_with_none(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> tuple[Claim, dict[str, object] | None, Claim]:
        waiter = ReplyWaiter(aioredis.Redis.from_url(redis_url), redis_prefix)
        await waiter.claim_turn("c2", "req-1", 60)
        again = await waiter.claim_turn("c2", "req-1", 60)
        reply = await waiter.wait("c2", "req-1", 0.2)
        await waiter.release_turn("c2", "req-1")
        return again, reply, await waiter.claim_turn("c2", "req-3", 60)

    again, reply, released = asyncio.run(scenario())
    assert again is Claim.HELD, "a retry of the same request finds its turn in flight"
    assert reply is None
    assert released is Claim.NEW


def test_audio_store_round_trip_against_azurite(blob_connection_string: str) -> None:
    store = BlobStore(blob_service(blob_connection_string, ""), f"audio{uuid.uuid4().hex[:8]}")
    store.ping()
    name = reply_audio_name("c3", 7)
    assert name.endswith("/00007.wav")
    assert store.get(name) is None
    store.put(name, b"RIFF....WAVE")
    store.put(name, b"RIFF-second")
    assert store.get(name) == b"RIFF-second"


def test_a_call_length_without_a_provider_figure_runs_from_the_start_and_the_first_end_counts(
    pool: Pool, demo: AgentProfile
) -> None:
    repository = ConversationRepository(pool)
    conversation_id = str(uuid.uuid4())
    repository.create(conversation_id, "demo", "en-US", "amazon_connect")
    with pool.connection() as conn:  # the call began 90 s ago (as the tests' superuser)
        conn.execute(
            "UPDATE conversations SET created_at = now() - interval '90 seconds' WHERE id = %s", (conversation_id,)
        )
    repository.record_call_length(conversation_id)
    assert (stored := repository.get(conversation_id)) is not None
    assert stored.call_duration_seconds == 90
    with pool.connection() as conn:
        conn.execute(
            "UPDATE conversations SET created_at = now() - interval '200 seconds' WHERE id = %s", (conversation_id,)
        )
    repository.record_call_length(conversation_id)
    assert (again := repository.get(conversation_id)) is not None
    assert again.call_duration_seconds == 90, "a repeated end keeps the first length"


def test_deleting_a_conversation_takes_its_turns_with_it_and_is_audited_in_the_same_transaction(
    pool: Pool, demo: AgentProfile
) -> None:
    repository = ConversationRepository(pool)
    conversation_id, kept_id = str(uuid.uuid4()), str(uuid.uuid4())
    for made in (conversation_id, kept_id):
        repository.create(made, "demo", "en-US", "twilio")
        repository.record_turn(_turn(made, 0, "greeting"))
    entry = AuditEntry("api_key:k1", AuditAction.CONVERSATION_DELETE, conversation_id, {"blobs": 3})
    with tenant_scope("acme"):
        assert repository.delete(conversation_id, entry) is False, "another tenant's is not there to delete"
    assert repository.delete(conversation_id, entry) is True
    assert repository.get(conversation_id) is None
    assert repository.get_turn(conversation_id, 0) is None, "its turns went with it"
    assert repository.delete(conversation_id, entry) is False, "a second delete finds nothing"
    assert repository.get_turn(kept_id, 0) is not None, "another conversation keeps its turns"
    logged = AuditLog(pool).page(AuditFilter(action=AuditAction.CONVERSATION_DELETE), 10)
    assert [(e.target, e.actor, e.details) for e in logged] == [(conversation_id, "api_key:k1", {"blobs": 3})]


def test_deleting_a_conversations_folder_deletes_its_blobs_and_no_other(blob_connection_string: str) -> None:
    store = BlobStore(blob_service(blob_connection_string, ""), f"audio{uuid.uuid4().hex[:8]}")
    assert store.delete_folder(conversation_folder("c1")) == 0, "no container yet: nothing to delete"
    ours = [
        reply_audio_name("c1", 0),
        conversation_folder("c1") + "turns/00001/000.wav",
        conversation_folder("c1") + "recording.wav",
    ]
    for name in [*ours, reply_audio_name("c10", 0)]:
        store.put(name, b"RIFF")
    assert store.delete_folder(conversation_folder("c1")) == 3
    assert [store.get(name) for name in ours] == [None, None, None]
    assert store.get(reply_audio_name("c10", 0)) == b"RIFF", "c10 starts like c1 but is another folder"
    assert store.delete_folder(conversation_folder("c1")) == 0


def test_forgetting_a_conversation_deletes_every_key_naming_or_pointing_at_it_and_no_other(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    ours, other = str(uuid.uuid4()), str(uuid.uuid4())
    tenant = tenant_prefix(redis_prefix)
    doomed = {
        TurnKeys(redis_prefix, ours).lock: "r1",
        TurnKeys(redis_prefix, ours).stream(1): "x",
        f"{tenant}placed:{ours}": "{}",
        f"{tenant}start:key:client-key": ours,
        f"{tenant}start:twilio:CA1": ours,
        f"{redis_prefix}leg:twilio:CA1": "demo",
        f"{tenant}start:answered:{ours}": "{}",
    }
    kept = {
        TurnKeys(redis_prefix, other).lock: "r2",
        f"{tenant}start:twilio:CA2": other,
        f"{redis_prefix}leg:twilio:CA2": "demo",
        f"{tenant}start:key:retry-of-{ours}": other,  # a client's key that merely contains the id
    }
    with tenant_scope("acme"):
        kept[f"{tenant_prefix(redis_prefix)}start:twilio:CA3"] = ours  # another tenant's key is never touched
    for key, value in {**doomed, **kept}.items():
        client.set(key, value)
    assert forget_conversation(client, redis_prefix, ours) == len(doomed)
    assert [client.exists(key) for key in doomed] == [0] * len(doomed)
    assert [client.exists(key) for key in kept] == [1] * len(kept)
    assert forget_conversation(client, redis_prefix, ours) == 0
