"""API keys against a real Postgres: made, shown once, verified, rotated, revoked, expired, listed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from shared.errors import BadRequest, NotFound
from shared.security.api_keys import ApiKeys, InvalidApiKey, display_prefix
from shared.security.roles import Principal, Scope, allows
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.migrations import apply_migrations
from shared.storage.postgres import Pool, open_pool
from shared.tenancy import tenant_scope

WRITE = frozenset({Scope.CONVERSATIONS_WRITE, Scope.CONVERSATIONS_READ})


@pytest.fixture(scope="module")
def database(new_database: Callable[[], str]) -> Iterator[tuple[str, Pool]]:
    url = new_database()
    apply_migrations(url)
    pool = open_pool(url, 2)
    with pool.connection() as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme') ON CONFLICT DO NOTHING")
    yield url, pool
    pool.close()


@pytest.fixture
def keys(database: tuple[str, Pool]) -> ApiKeys:
    return ApiKeys(ApiKeyRepository(database[1]))


def sql(database: tuple[str, Pool], query: str, *params: object) -> list[dict[str, Any]]:
    with database[1].connection() as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def test_the_migration_brings_the_demo_tenant(database: tuple[str, Pool]) -> None:
    assert sql(database, "SELECT id, name FROM tenants WHERE id = 'demo'") == [{"id": "demo", "name": "Demo"}]


def test_a_key_is_shown_once_stored_as_its_hash_and_verifies_as_its_tenant_and_scopes(
    database: tuple[str, Pool], keys: ApiKeys
) -> None:
    issued = keys.create("demo", "telephony bridge", WRITE, created_by="user-1")

    assert issued.key.startswith(display_prefix(issued.record.id) + "_")
    assert len(issued.key) == len("vao_") + 12 + 1 + 43
    row = sql(database, "SELECT * FROM api_keys WHERE id = %s", issued.record.id)[0]
    assert bytes(row["key_hash"]) == hashlib.sha256(issued.key.encode()).digest()
    assert issued.key not in repr(row)
    assert issued.key.split("_")[2] not in repr(row)

    principal = keys.verify(issued.key)
    assert principal == Principal(kind="api_key", subject=issued.record.id, tenant="demo", scopes=WRITE)
    assert allows(principal, Scope.CONVERSATIONS_WRITE)
    assert not allows(principal, Scope.AGENTS_ADMIN)


def test_two_keys_never_share_an_id_or_a_secret(keys: ApiKeys) -> None:
    made = [keys.create("demo", f"k{i}", WRITE, created_by="u") for i in range(20)]
    assert len({m.record.id for m in made}) == 20
    assert len({m.key.split("_")[2] for m in made}) == 20


def test_create_rotate_revoke(keys: ApiKeys) -> None:
    with tenant_scope("acme"):
        first = keys.create("acme", "billing sync", {Scope.USAGE_READ}, created_by="user-1")
    assert keys.verify(first.key).tenant == "acme"

    with tenant_scope("acme"):
        second = keys.rotate("acme", first.record.id, created_by="user-2")
    assert second.key != first.key
    assert (second.record.name, second.record.scopes, second.record.created_by) == (
        "billing sync",
        ("usage:read",),
        "user-2",
    )
    with pytest.raises(InvalidApiKey):
        keys.verify(first.key)
    assert keys.verify(second.key).subject == second.record.id
    with tenant_scope("acme"):
        old = next(k for k in keys.list("acme") if k.id == first.record.id)
        assert old.revoked_at is not None
        assert old.replaced_by == second.record.id

        with pytest.raises(NotFound):
            keys.rotate("acme", first.record.id, created_by="user-2")  # a revoked key is not rotated twice

        keys.revoke("acme", second.record.id, "user-2")
    with pytest.raises(InvalidApiKey):
        keys.verify(second.key)


def test_another_tenant_can_neither_rotate_nor_revoke_a_key(keys: ApiKeys) -> None:
    with tenant_scope("acme"):
        theirs = keys.create("acme", "theirs", WRITE, created_by="u")
    with pytest.raises(NotFound):
        keys.rotate("demo", theirs.record.id, created_by="intruder")
    with pytest.raises(NotFound):
        keys.revoke("demo", theirs.record.id, "intruder")
    assert theirs.record.id not in {k.id for k in keys.list("demo")}
    assert keys.verify(theirs.key).tenant == "acme"


def test_an_expired_key_is_refused(database: tuple[str, Pool], keys: ApiKeys) -> None:
    issued = keys.create(
        "demo", "short-lived", WRITE, created_by="u", expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    assert keys.verify(issued.key).subject == issued.record.id

    sql(database, "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s", issued.record.id)

    with pytest.raises(InvalidApiKey):
        keys.verify(issued.key)
    with pytest.raises(NotFound):
        keys.rotate("demo", issued.record.id, created_by="u")


@pytest.mark.parametrize(
    "presented",
    [None, "", "vao_", "not-a-key", "vao_000000000000_" + "a" * 43, "vao_ABCDEF012345_" + "a" * 43],
)
def test_junk_and_unknown_keys_are_refused(presented: str | None, keys: ApiKeys) -> None:
    with pytest.raises(InvalidApiKey):
        keys.verify(presented)


def test_a_right_id_with_a_wrong_secret_is_refused_without_saying_so(keys: ApiKeys) -> None:
    issued = keys.create("demo", "k", WRITE, created_by="u")
    wrong = issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")
    with pytest.raises(InvalidApiKey) as caught:
        keys.verify(wrong)
    assert caught.value.status == 401
    assert caught.value.message == "The API key is not valid."
    assert issued.record.id not in caught.value.message


def test_the_list_shows_the_prefix_never_the_secret_or_hash(keys: ApiKeys) -> None:
    with tenant_scope("acme"):
        issued = keys.create("acme", "listed", WRITE, created_by="u")
        listed = next(k for k in keys.list("acme") if k.id == issued.record.id)
    shown = repr(asdict(listed))
    assert display_prefix(listed.id) in issued.key
    assert "hash" not in shown
    assert issued.key.split("_")[2] not in shown
    assert hashlib.sha256(issued.key.encode()).hexdigest() not in shown


def test_last_used_is_written_at_most_once_a_minute(database: tuple[str, Pool], keys: ApiKeys) -> None:
    issued = keys.create("demo", "busy", WRITE, created_by="u")
    key_id = issued.record.id

    def last_used() -> Any:
        return sql(database, "SELECT last_used_at FROM api_keys WHERE id = %s", key_id)[0]["last_used_at"]

    assert last_used() is None
    keys.verify(issued.key)
    first = last_used()
    assert first is not None
    for _ in range(5):
        keys.verify(issued.key)
    assert last_used() == first

    sql(database, "UPDATE api_keys SET last_used_at = now() - interval '50 seconds' WHERE id = %s", key_id)
    fifty_seconds_ago = last_used()
    keys.verify(issued.key)
    assert last_used() == fifty_seconds_ago

    sql(database, "UPDATE api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = %s", key_id)
    keys.verify(issued.key)
    assert last_used() > fifty_seconds_ago


@pytest.mark.parametrize(
    ("tenant", "name", "scopes"),
    [
        ("demo", "", WRITE),
        ("demo", "x" * 201, WRITE),
        ("demo", "k", frozenset()),
        ("demo", "k", frozenset({Scope.TENANT_ADMIN})),
        ("Demo", "k", WRITE),
    ],
)
def test_a_key_needs_a_tenant_id_a_name_and_key_scopes(
    keys: ApiKeys, tenant: str, name: str, scopes: frozenset[Scope]
) -> None:
    with pytest.raises(BadRequest):
        keys.create(tenant, name, scopes, created_by="u")


def test_a_key_of_a_tenant_that_does_not_exist_is_not_made(keys: ApiKeys) -> None:
    with tenant_scope("nobody"), pytest.raises(NotFound):
        keys.create("nobody", "k", WRITE, created_by="u")


def test_the_table_refuses_what_the_code_would_never_write(database: tuple[str, Pool]) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        sql(
            database,
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, scopes, created_by)"
            " VALUES ('0123456789ab', 'demo', 'k', %s, '{}', 'u')",
            b"\x00" * 32,
        )
