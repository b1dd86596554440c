"""Agents, phone numbers and the audit log against a real Postgres: versions kept, agents from files left
alone by the API (and API agents by the file sync), soft delete, numbers unique across tenants, and an
audit entry with every write, committed with it. Isolation between tenants: test_row_level_security.py."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from shared.agent.catalog import load_agent_file
from shared.audit import AuditAction
from shared.config import REPOSITORY_ROOT
from shared.errors import Conflict, Unprocessable
from shared.models import AgentProfile, KnowledgeDocument
from shared.security.api_keys import ApiKeys
from shared.security.roles import Scope
from shared.storage.agents import (
    AgentExists,
    AgentHasNumbers,
    AgentRepository,
    ManagedByFile,
    UnknownAgent,
    VersionMismatch,
)
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.audit import AuditFilter, AuditLog
from shared.storage.knowledge import KnowledgeRepository
from shared.storage.migrations import MIGRATIONS_DIR, apply_migrations
from shared.storage.phone_numbers import NumberTaken, PhoneNumberRepository
from shared.storage.postgres import Pool, open_pool
from shared.tenancy import tenant_scope

DEMO = load_agent_file(REPOSITORY_ROOT / "agents" / "demo.toml")


def agent(name: str, greeting: str = "Hello.") -> AgentProfile:
    return DEMO.model_copy(update={"name": name, "greeting": greeting, "knowledge": []})


@pytest.fixture(scope="module")
def pool(new_database: Callable[[], str]) -> Iterator[Pool]:
    url = new_database()
    apply_migrations(url)
    pool = open_pool(url, 2)
    with pool.connection() as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
    KnowledgeRepository(pool).upsert_agent(DEMO)  # the demo tenant's file agent
    yield pool
    pool.close()


def test_an_agent_is_created_replaced_and_every_version_kept_with_who_wrote_it(pool: Pool) -> None:
    agents = AgentRepository(pool)
    made = agents.create(agent("sales", "Hi, sales."), "api_key:aaaaaaaaaaaa")
    assert (made.name, made.version, made.source, made.profile.greeting) == ("sales", 1, "api", "Hi, sales.")
    with pytest.raises(AgentExists):
        agents.create(agent("sales"), "api_key:aaaaaaaaaaaa")

    with pytest.raises(VersionMismatch):
        agents.replace(agent("sales", "Lost update."), "user:x", expected_version=2)
    second = agents.replace(agent("sales", "Hi again."), "user:bob", expected_version=1)
    third = agents.replace(agent("sales", "Third."), "user:eve")
    assert (second.version, third.version) == (2, 3)
    assert third.created_at == made.created_at
    assert third.updated_at >= second.updated_at

    versions = agents.versions("sales", 10)
    assert [(v.version, v.created_by, v.profile["greeting"]) for v in versions] == [
        (3, "user:eve", "Third."),
        (2, "user:bob", "Hi again."),
        (1, "api_key:aaaaaaaaaaaa", "Hi, sales."),
    ]
    assert [v.version for v in agents.versions("sales", 1, before=3)] == [2]
    assert [e.action for e in AuditLog(pool).page(AuditFilter(), 10) if e.target == "sales"] == [
        "agent.update",
        "agent.update",
        "agent.create",
    ]


def test_an_agent_from_a_file_is_read_but_never_changed_by_the_api(pool: Pool) -> None:
    agents = AgentRepository(pool)
    demo = agents.get("demo")
    assert demo is not None
    assert demo.source == "file"
    assert {v.created_by for v in agents.versions("demo", 10)} == {"file:demo.toml"}
    with pytest.raises(ManagedByFile, match=r"demo\.toml"):
        agents.replace(agent("demo", "Hijacked."), "user:x")
    with pytest.raises(ManagedByFile):
        agents.delete("demo", "user:x")
    with pytest.raises(ManagedByFile):
        agents.create(agent("demo"), "user:x")
    assert KnowledgeRepository(pool).get_agent("demo") == DEMO


def test_the_file_sync_keeps_versions_and_never_takes_over_nor_brings_back_an_api_agent(pool: Pool) -> None:
    knowledge, agents = KnowledgeRepository(pool), AgentRepository(pool)
    assert knowledge.upsert_agent(DEMO) is False, "unchanged: no new version"
    assert knowledge.upsert_agent(DEMO.model_copy(update={"greeting": "Edited file."})) is True
    assert [v.version for v in agents.versions("demo", 10)] == [2, 1]
    assert knowledge.upsert_agent(DEMO) is True  # the file back as it was: version 3

    agents.create(agent("kiosk", "API kiosk."), "user:x")
    assert knowledge.upsert_agent(agent("kiosk", "From a file.")) is False
    kiosk = agents.get("kiosk")
    assert kiosk is not None
    assert (kiosk.source, kiosk.profile.greeting) == ("api", "API kiosk.")
    agents.delete("kiosk", "user:x")
    assert knowledge.upsert_agent(agent("kiosk", "From a file.")) is False
    assert agents.get("kiosk") is None, "a deleted API agent stays deleted"


def test_a_deleted_agent_starts_nothing_but_its_conversations_keep_it_and_its_name_can_come_back(pool: Pool) -> None:
    agents, knowledge = AgentRepository(pool), KnowledgeRepository(pool)
    agents.create(agent("temp", "One."), "user:x")
    agents.replace(agent("temp", "Two."), "user:x")
    agents.delete("temp", "user:y")

    assert agents.get("temp") is None
    assert "temp" not in [a.name for a in agents.page(200)]
    assert knowledge.get_agent("temp") is None, "no new conversation"
    kept = knowledge.get_agent("temp", include_deleted=True)
    assert kept is not None
    assert kept.greeting == "Two."
    with pytest.raises(UnknownAgent):
        agents.delete("temp", "user:y")
    with pytest.raises(UnknownAgent):
        agents.replace(agent("temp"), "user:y")
    with pytest.raises(UnknownAgent):
        agents.versions("temp", 10)

    back = agents.create(agent("temp", "Three."), "user:z")
    assert (back.version, back.profile.greeting) == (3, "Three.")
    assert [v.version for v in agents.versions("temp", 10)] == [3, 2, 1]
    assert [e.action for e in AuditLog(pool).page(AuditFilter(), 10) if e.target == "temp"][:2] == [
        "agent.create",
        "agent.delete",
    ]


def test_inline_knowledge_of_an_api_agent_is_searchable_and_replaced_with_it(pool: Pool) -> None:
    agents, knowledge = AgentRepository(pool), KnowledgeRepository(pool)
    faq = [KnowledgeDocument(title="Parking", text="Park behind the bakery.")]
    agents.create(agent("faq").model_copy(update={"knowledge": faq}), "user:x")
    assert [hit.body for hit in knowledge.search("faq", "where can I park")] == ["Park behind the bakery."]
    agents.replace(agent("faq"), "user:x")
    assert knowledge.search("faq", "where can I park") == []


def test_numbers_route_to_a_live_agent_of_their_tenant_and_belong_to_one_tenant(pool: Pool) -> None:
    agents, numbers = AgentRepository(pool), PhoneNumberRepository(pool)
    agents.create(agent("desk"), "user:x")
    made = numbers.create("+14155552671", "desk", "twilio", "user:x")
    assert (made.number, made.agent, made.provider, made.created_by) == ("+14155552671", "desk", "twilio", "user:x")
    with pytest.raises(Conflict, match="already") as exists:
        numbers.create("+14155552671", "desk", "vonage", "user:x")
    assert exists.value.code == "number_exists"
    with pytest.raises(Unprocessable) as unknown:
        numbers.create("+14155552672", "nobody", "twilio", "user:x")
    assert unknown.value.code == "unknown_agent"

    with tenant_scope("acme"):
        AgentRepository(pool).create(agent("desk"), "user:acme")
        with pytest.raises(NumberTaken) as taken:
            PhoneNumberRepository(pool).create("+14155552671", "desk", "twilio", "user:acme")
        assert "demo" not in taken.value.message
        assert PhoneNumberRepository(pool).page(10) == []

    with pytest.raises(AgentHasNumbers, match=r"\+14155552671"):
        agents.delete("desk", "user:x")
    agents.create(agent("desk-2"), "user:x")
    moved = numbers.update("+14155552671", "desk-2", "amazon_connect", "user:y")
    assert (moved.agent, moved.provider, moved.created_at) == ("desk-2", "amazon_connect", made.created_at)
    agents.delete("desk", "user:x")
    with pytest.raises(Unprocessable):
        numbers.update("+14155552671", "desk", "twilio", "user:y")  # deleted: no number routes to it

    route = numbers.route("+14155552671")
    assert route is not None
    assert (route.tenant_id, route.agent, route.provider) == ("demo", "desk-2", "amazon_connect")
    numbers.delete("+14155552671", "user:z")
    assert numbers.route("+14155552671") is None
    assert [e.action for e in AuditLog(pool).page(AuditFilter(), 50) if e.target == "+14155552671"] == [
        "phone_number.delete",
        "phone_number.update",
        "phone_number.create",
    ]


def test_numbers_and_agents_page_newest_first_without_skipping_or_repeating(pool: Pool) -> None:
    with tenant_scope("acme"):
        agents, numbers = AgentRepository(pool), PhoneNumberRepository(pool)
        for n in range(3):
            agents.create(agent(f"page-{n}"), "user:acme")
            numbers.create(f"+4420718387{n}0", f"page-{n}", "vonage", "user:acme")
        first = agents.page(2)
        rest = agents.page(10, (first[-1].created_at, first[-1].name))
        listed = [a.name for a in first + rest]
        assert listed[:3] == ["page-2", "page-1", "page-0"]
        assert len(listed) == len(set(listed))
        top = numbers.page(1)
        assert [n.number for n in top + numbers.page(10, (top[0].created_at, top[0].number))] == [
            "+442071838720",
            "+442071838710",
            "+442071838700",
        ]


def test_key_writes_are_audited_in_their_transaction_and_a_repeated_revoke_once(pool: Pool) -> None:
    keys = ApiKeys(ApiKeyRepository(pool))
    with tenant_scope("acme"):
        issued = keys.create("acme", "ci", {Scope.USAGE_READ}, created_by="user:ops")
        rotated = keys.rotate("acme", issued.record.id, created_by="user:ops")
        keys.revoke("acme", rotated.record.id, "user:sec")
        keys.revoke("acme", rotated.record.id, "user:sec")
        log = AuditLog(pool)
        entries = [e for e in log.page(AuditFilter(), 50) if e.action.startswith("key.")]
        assert [(e.action, e.actor, e.target) for e in entries] == [
            ("key.revoke", "user:sec", rotated.record.id),
            ("key.rotate", "user:ops", issued.record.id),
            ("key.create", "user:ops", issued.record.id),
        ]
        assert entries[1].details == {"replaced_by": rotated.record.id}
        assert entries[2].details == {"name": "ci", "scopes": ["usage:read"], "expires_at": None}
        assert issued.key not in str(entries), "no secret in the log"

        newest = entries[0]
        assert [e.id for e in log.page(AuditFilter(action=AuditAction.KEY_REVOKE), 50)] == [newest.id]
        assert log.page(AuditFilter(since=newest.at + timedelta(microseconds=1)), 50) == []
        assert newest.id in [e.id for e in log.page(AuditFilter(until=newest.at + timedelta(seconds=1)), 50)]
        older = log.page(AuditFilter(), 50, (newest.at, newest.id))
        assert newest.id not in [e.id for e in older]
        assert [e.id for e in older] == sorted((e.id for e in older), reverse=True)


def test_a_write_that_fails_leaves_no_audit_entry(pool: Pool) -> None:
    numbers = PhoneNumberRepository(pool)
    before = len(AuditLog(pool).page(AuditFilter(), 200))
    with pytest.raises(psycopg.errors.CheckViolation):
        numbers.create("+1", "demo", "twilio", "user:x")  # the table's own check, past the API's
    assert len(AuditLog(pool).page(AuditFilter(), 200)) == before


def test_agents_stored_before_the_migration_become_their_file_version_1(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    url = new_database()
    earlier = tmp_path / "migrations"
    earlier.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if not path.name.startswith("0012"):
            shutil.copy(path, earlier / path.name)
    apply_migrations(url, earlier)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO agents (tenant_id, name, profile, content_hash) VALUES ('demo', 'old', %s, 'x')",
            (DEMO.model_copy(update={"name": "old"}).model_dump_json(),),
        )
    assert apply_migrations(url) == 1
    migrated = open_pool(url, 1)
    try:
        old = AgentRepository(migrated).get("old")
        assert old is not None
        assert (old.source, old.version) == ("file", 1)
        assert [(v.version, v.created_by) for v in AgentRepository(migrated).versions("old", 10)] == [
            (1, "file:old.toml")
        ]
    finally:
        migrated.close()
