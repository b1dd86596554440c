"""Row-level security against a real Postgres: two tenants, `alpha` and `beta`, with the same agent name,
documents, a conversation with a turn and a callback, and an API key each. As the app role, through the
repositories and in plain SQL, neither can read, list, change, delete or insert the other's rows; with
no tenant nothing is seen and nothing is written; a pooled connection forgets its tenant.

The tests connect as a superuser (the run's migrations do too), who bypasses row security: every check
runs as `vao_app`, as the app does.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg.rows import DictRow
from psycopg.types.json import Json

from shared.agent.catalog import load_agent_file
from shared.config import REPOSITORY_ROOT
from shared.errors import NotFound, Unprocessable
from shared.models import Intent, KnowledgeDocument, Outcome, TurnKind, TurnRecord
from shared.storage.agents import AgentRepository, UnknownAgent
from shared.storage.api_keys import ApiKeyRepository, NewApiKey
from shared.storage.audit import AuditFilter, AuditLog
from shared.storage.callbacks import CallbackRepository, CallbackRequest
from shared.storage.conversations import ConversationRepository
from shared.storage.knowledge import KnowledgeRepository, NewDocument
from shared.storage.migrations import apply_migrations
from shared.storage.phone_numbers import NumberRoute, NumberTaken, PhoneNumberRepository
from shared.storage.postgres import Pool, open_pool, tenant_connection
from shared.tenancy import NoTenant, tenant_scope

TENANT_TABLES = [
    "agents",
    "knowledge_documents",
    "knowledge_chunks",
    "conversations",
    "turns",
    "callbacks",
    "api_keys",
    "agent_versions",
    "phone_numbers",
    "audit_log",
]
WRITABLE = {"agents", "knowledge_documents", "knowledge_chunks", "conversations", "api_keys", "phone_numbers"}
"""Tables the app role may update (turns, callbacks, agent versions and the audit log are written once)."""
DELETABLE = {"knowledge_documents", "knowledge_chunks", "phone_numbers", "conversations"}
"""Tables the app role may delete from: a deleted conversation takes its turns and callbacks (0015)."""
NUMBERS = {"alpha": "+14155552671", "beta": "+442071838750"}
T = TypeVar("T")


@dataclass(frozen=True)
class Seeded:
    conversation_id: str
    key_id: str


@pytest.fixture(scope="module")
def pool(new_database: Callable[[], str]) -> Iterator[Pool]:
    url = new_database()
    apply_migrations(url)
    pool = open_pool(url, 2)
    with pool.connection() as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('alpha', 'Alpha'), ('beta', 'Beta')")
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def seeded(pool: Pool) -> dict[str, Seeded]:
    """The same agent (`shop`, with the tenant's name in its knowledge) and rows of every kind, per tenant."""
    shop = load_agent_file(REPOSITORY_ROOT / "agents" / "demo.toml").model_copy(update={"name": "shop"})
    made: dict[str, Seeded] = {}
    for tenant in ("alpha", "beta"):
        with tenant_scope(tenant):
            knowledge = [KnowledgeDocument(title="Owner", text=f"This shop belongs to {tenant}.")]
            KnowledgeRepository(pool).upsert_agent(shop.model_copy(update={"knowledge": knowledge}))
            KnowledgeRepository(pool).replace_document(_document(f"The {tenant} secret is kept here."))
            conversation_id = str(uuid.uuid4())
            conversations = ConversationRepository(pool)
            conversations.create(conversation_id, "shop", "en-US", "api")
            conversations.record_turn(_turn(conversation_id, f"{tenant} says hello"))
            CallbackRepository(pool).schedule(_callback(conversation_id))
            key_id = uuid.uuid4().hex[:12]
            ApiKeyRepository(pool).insert(NewApiKey(key_id, tenant, "k", bytes(32), ("conversations:read",), "u", None))
            PhoneNumberRepository(pool).create(NUMBERS[tenant], "shop", "twilio", "u")
            made[tenant] = Seeded(conversation_id, key_id)
    return made


def _document(text: str) -> NewDocument:
    return NewDocument(
        agent="shop",
        document_id="secret-txt",
        title="Secret",
        source="secret.txt",
        origin="ingest",
        content_type="text/plain",
        content_hash=text,
        size_bytes=len(text),
        chunks=[text],
    )


def _turn(conversation_id: str, text: str) -> TurnRecord:
    return TurnRecord(
        conversation_id=conversation_id,
        turn=1,
        kind=TurnKind.UTTERANCE,
        request_id="r1",
        user_text=text,
        intent=Intent.GREETING,
        reply_text="hi",
    )


def _callback(conversation_id: str) -> CallbackRequest:
    return CallbackRequest(conversation_id, 1, 0, "shop", "+15550100", "tomorrow", "")


@contextlib.contextmanager
def as_app(pool: Pool, tenant: str | None) -> Iterator[psycopg.Connection[DictRow]]:
    """Plain SQL as the app role, in a transaction rolled back afterwards; `tenant` None sets none."""
    with pool.connection() as conn, conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE vao_app")
        if tenant is not None:
            conn.execute("SELECT set_config('app.tenant', %s, true)", (tenant,))
        yield conn


def owner_rows(pool: Pool, table: str, tenant: str) -> list[dict[str, Any]]:
    """The tenant's rows as the owner (a superuser here) sees them, each as its JSON object."""
    column = "id" if table == "tenants" else "tenant_id"
    with pool.connection() as conn:
        rows = conn.execute(f"SELECT row_to_json(t) AS row FROM {table} t WHERE {column} = %s", (tenant,))
        return [r["row"] for r in rows.fetchall()]


def insertable_columns(pool: Pool, table: str) -> list[str]:
    with pool.connection() as conn:
        rows = conn.execute(
            """SELECT column_name FROM information_schema.columns
               WHERE table_schema = 'public' AND table_name = %s AND is_generated = 'NEVER'""",
            (table,),
        ).fetchall()
    return [r["column_name"] for r in rows]


def copy_row(conn: psycopg.Connection[DictRow], table: str, columns: list[str], row: dict[str, Any]) -> None:
    """Insert a copy of `row` (an exact copy: row security refuses it before any unique key could)."""
    names = ", ".join(columns)
    conn.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM json_populate_record(NULL::{table}, %s)",
        (Json({c: row[c] for c in columns}),),
    )


def outside_any_tenant(work: Callable[[], T]) -> T:
    """Run `work` in a fresh context: no tenant scope at all (the session's demo scope included)."""
    return contextvars.Context().run(work)


# Through the repositories, as the app runs them.


def test_a_tenant_reads_and_lists_only_its_own_rows(pool: Pool, seeded: dict[str, Seeded]) -> None:
    beta = seeded["beta"]
    with tenant_scope("alpha"):
        conversations, knowledge = ConversationRepository(pool), KnowledgeRepository(pool)
        assert conversations.get(beta.conversation_id) is None
        assert conversations.get_turn(beta.conversation_id, 1) is None
        assert conversations.get_turn_by_request(beta.conversation_id, "r1") is None
        assert conversations.list_turns(beta.conversation_id) == []
        assert CallbackRepository(pool).list_for(beta.conversation_id) == []
        assert conversations.get(seeded["alpha"].conversation_id) is not None

        agent = knowledge.get_agent("shop")
        assert agent is not None
        assert agent.knowledge[0].text == "This shop belongs to alpha."
        assert [hit.body for hit in knowledge.search("shop", "secret kept")] == ["The alpha secret is kept here."]
        assert [hit.body for hit in knowledge.search("shop", "shop belongs")] == ["This shop belongs to alpha."]
        assert [d.document_id for d in knowledge.list_documents("shop")] == ["inline-owner", "secret-txt"]
        assert [h.body for h in knowledge.chunks("shop", "secret-txt")] == ["The alpha secret is kept here."]

        keys = ApiKeyRepository(pool)
        assert keys.get("beta", beta.key_id) is None
        assert keys.list_for("beta") == []
        assert [k.id for k in keys.list_for("alpha")] == [seeded["alpha"].key_id]

        agents = AgentRepository(pool)
        shop = agents.get("shop")
        assert shop is not None
        assert shop.profile.knowledge[0].text == "This shop belongs to alpha."
        assert [a.name for a in agents.page(10)] == ["shop"]
        assert [v.profile["knowledge"][0]["text"] for v in agents.versions("shop", 10)] == [
            "This shop belongs to alpha."
        ]
        assert [n.number for n in PhoneNumberRepository(pool).page(10)] == [NUMBERS["alpha"]]
        assert {e.target for e in AuditLog(pool).page(AuditFilter(), 50)} == {seeded["alpha"].key_id, NUMBERS["alpha"]}


def test_a_tenant_can_neither_change_nor_delete_anothers_rows(pool: Pool, seeded: dict[str, Seeded]) -> None:
    beta = seeded["beta"]
    with tenant_scope("alpha"):
        conversations = ConversationRepository(pool)
        assert conversations.mark_ending(beta.conversation_id) is False
        assert conversations.complete(beta.conversation_id, Outcome.COMPLETED, "taken over") is False
        knowledge = KnowledgeRepository(pool)
        knowledge.mark_indexed("shop", "secret-txt", "forged")
        assert knowledge.delete_document("shop", "no-such-doc") == []
        with pytest.raises(NotFound):
            ApiKeyRepository(pool).revoke("beta", beta.key_id, "u")
        numbers = PhoneNumberRepository(pool)
        with pytest.raises(NotFound):
            numbers.update(NUMBERS["beta"], "shop", "vonage", "u")
        with pytest.raises(NotFound):
            numbers.delete(NUMBERS["beta"], "u")

    with tenant_scope("beta"):
        stored = ConversationRepository(pool).get(beta.conversation_id)
        assert stored is not None
        assert stored.status == "active"
        document = KnowledgeRepository(pool).get_document("shop", "secret-txt")
        assert document is not None
        assert not document.indexed
        key = ApiKeyRepository(pool).get("beta", beta.key_id)
        assert key is not None
        assert key.revoked_at is None
        assert [(n.number, n.provider) for n in PhoneNumberRepository(pool).page(10)] == [(NUMBERS["beta"], "twilio")]
        assert {e.action for e in AuditLog(pool).page(AuditFilter(), 50)} == {"key.create", "phone_number.create"}


def test_a_tenant_cannot_write_into_anothers_conversation_or_as_another(pool: Pool, seeded: dict[str, Seeded]) -> None:
    beta = seeded["beta"]
    injected = _turn(beta.conversation_id, "injected").model_copy(update={"turn": 9, "request_id": "r9"})
    forged_key = NewApiKey("0000000000ab", "beta", "k", bytes(32), ("usage:read",), "u", None)
    with tenant_scope("alpha"):
        with pytest.raises(psycopg.errors.ForeignKeyViolation):  # (alpha, beta's id) is no conversation
            ConversationRepository(pool).record_turn(injected)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            CallbackRepository(pool).schedule(_callback(beta.conversation_id))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            ApiKeyRepository(pool).insert(forged_key)
    with tenant_scope("beta"):
        assert [t.user_text for t in ConversationRepository(pool).list_turns(beta.conversation_id)] == [
            "beta says hello"
        ]
        assert len(CallbackRepository(pool).list_for(beta.conversation_id)) == 1


def test_a_tenant_cannot_give_its_number_to_anothers_agent_nor_take_anothers_number(
    pool: Pool, seeded: dict[str, Seeded]
) -> None:
    with tenant_scope("beta"):
        beta_only = load_agent_file(REPOSITORY_ROOT / "agents" / "demo.toml").model_copy(update={"name": "beta-only"})
        AgentRepository(pool).create(beta_only, "u")
    with tenant_scope("alpha"):
        numbers = PhoneNumberRepository(pool)
        with pytest.raises(Unprocessable):  # beta's agents are not alpha's
            numbers.update(NUMBERS["alpha"], "beta-only", "twilio", "u")
        with pytest.raises(NumberTaken):
            numbers.create(NUMBERS["beta"], "shop", "twilio", "u")
        with pytest.raises(UnknownAgent):
            AgentRepository(pool).versions("nobody", 10)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level"), as_app(pool, "alpha") as conn:
        conn.execute(
            "INSERT INTO phone_numbers (tenant_id, number, agent, provider, created_by)"
            " VALUES ('alpha', '+14155550123', 'shop', 'twilio', 'u'), ('beta', '+14155550124', 'shop', 'twilio', 'u')"
        )


def test_without_a_tenant_the_repositories_refuse_to_work(pool: Pool, seeded: dict[str, Seeded]) -> None:
    with pytest.raises(NoTenant):
        outside_any_tenant(lambda: ConversationRepository(pool).get(seeded["alpha"].conversation_id))
    with pytest.raises(NoTenant):
        outside_any_tenant(lambda: KnowledgeRepository(pool).get_agent("shop"))
    with pytest.raises(NoTenant):
        outside_any_tenant(lambda: AgentRepository(pool).page(10))
    with pytest.raises(NoTenant):
        outside_any_tenant(lambda: PhoneNumberRepository(pool).page(10))
    with pytest.raises(NoTenant):
        outside_any_tenant(lambda: AuditLog(pool).page(AuditFilter(), 10))


def test_the_same_names_live_side_by_side_in_two_tenants(pool: Pool, seeded: dict[str, Seeded]) -> None:
    with pool.connection() as conn:  # the owner's view: both rows, same keys but the tenant
        agents = conn.execute("SELECT tenant_id FROM agents WHERE name = 'shop' ORDER BY 1").fetchall()
        chunks = conn.execute("SELECT tenant_id, chunk_id FROM knowledge_chunks WHERE document_id = 'secret-txt'")
        assert [a["tenant_id"] for a in agents] == ["alpha", "beta"]
        assert sorted((c["tenant_id"], c["chunk_id"]) for c in chunks.fetchall()) == [
            ("alpha", "shop=secret-txt=0"),
            ("beta", "shop=secret-txt=0"),
        ]


# In plain SQL, as the app role, table by table.


@pytest.mark.parametrize("table", [*TENANT_TABLES, "tenants"])
def test_in_sql_a_tenant_sees_only_its_own_rows_and_none_without_a_tenant(
    pool: Pool, seeded: dict[str, Seeded], table: str
) -> None:
    column = "id" if table == "tenants" else "tenant_id"
    assert owner_rows(pool, table, "beta"), "the owner sees beta's rows: there is something to hide"
    with as_app(pool, "alpha") as conn:
        seen = conn.execute(f"SELECT DISTINCT {column} AS tenant FROM {table}").fetchall()
        assert [r["tenant"] for r in seen] == ["alpha"]
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = 'beta'").fetchone() == {"count": 0}
    with as_app(pool, None) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == {"count": 0}


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_in_sql_a_tenant_cannot_update_or_delete_anothers_rows_nor_move_its_own(
    pool: Pool, seeded: dict[str, Seeded], table: str
) -> None:
    with as_app(pool, "alpha") as conn:
        if table not in WRITABLE:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(f"UPDATE {table} SET tenant_id = tenant_id")
            return
        updated = conn.execute(f"UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = 'beta'")
        assert updated.rowcount == 0
        if table in DELETABLE:
            assert conn.execute(f"DELETE FROM {table} WHERE tenant_id = 'beta'").rowcount == 0
    with as_app(pool, "alpha") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level"):
        conn.execute(f"UPDATE {table} SET tenant_id = 'beta'")
    assert len(owner_rows(pool, table, "beta")) >= 1


def test_in_sql_a_turn_s_reply_may_be_cut_to_what_was_heard_for_its_own_tenant_only(
    pool: Pool, seeded: dict[str, Seeded]
) -> None:
    with as_app(pool, "alpha") as conn:
        assert conn.execute("UPDATE turns SET reply_text = reply_text WHERE tenant_id = 'beta'").rowcount == 0
        assert conn.execute("UPDATE turns SET reply_text = reply_text, audio_blob = audio_blob").rowcount >= 1
        assert conn.execute("UPDATE turns SET written_reply = reply_text").rowcount >= 1
    with as_app(pool, "alpha") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission"):
        conn.execute("UPDATE turns SET user_text = user_text")


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_in_sql_a_row_of_another_tenant_or_of_none_is_refused(
    pool: Pool, seeded: dict[str, Seeded], table: str
) -> None:
    columns = insertable_columns(pool, table)
    beta_row = owner_rows(pool, table, "beta")[0]
    with as_app(pool, "alpha") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level"):
        copy_row(conn, table, columns, beta_row)
    without_tenant = [c for c in columns if c != "tenant_id"]  # the column's default: no tenant, NULL
    with as_app(pool, None) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level"):
        copy_row(conn, table, without_tenant, beta_row)


@pytest.mark.parametrize("table", sorted(set(TENANT_TABLES) - DELETABLE - {"tenants"}))
def test_in_sql_the_app_deletes_nothing_but_what_it_may_and_only_appends_to_the_audit_log(
    pool: Pool, seeded: dict[str, Seeded], table: str
) -> None:
    with as_app(pool, "alpha") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        conn.execute(f"DELETE FROM {table} WHERE tenant_id = 'alpha'")
    if table in {"audit_log", "agent_versions"}:
        with as_app(pool, "alpha") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission"):
            conn.execute(f"UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = 'alpha'")
        assert owner_rows(pool, table, "alpha"), "alpha's own rows are there, and stay"


def test_every_table_with_a_tenant_is_under_forced_row_level_security(pool: Pool) -> None:
    with pool.connection() as conn:
        rows = conn.execute(
            """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                      (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
               WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND a.attname = 'tenant_id'
               ORDER BY c.relname"""
        ).fetchall()
    assert sorted(r["relname"] for r in rows) == sorted(TENANT_TABLES)
    assert all(r["relrowsecurity"] and r["relforcerowsecurity"] and r["policies"] >= 1 for r in rows), rows


def test_the_app_role_is_no_superuser_and_cannot_bypass_row_security(pool: Pool) -> None:
    with pool.connection() as conn:
        role = conn.execute("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'vao_app'")
        assert role.fetchone() == {"rolsuper": False, "rolbypassrls": False, "rolcanlogin": False}


# The pool: a borrower never inherits the previous borrower's tenant or role.


def test_a_pooled_connection_does_not_leak_its_tenant_or_role_to_the_next_borrower(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    apply_migrations(url)
    single = open_pool(url, 1)
    try:
        with single.connection() as conn:
            session_user = conn.execute("SELECT current_user AS role").fetchone()["role"]  # type: ignore[index]
        with tenant_scope("demo"):
            with tenant_connection(single) as conn:
                first = conn.execute("SELECT pg_backend_pid() AS pid, current_user AS role").fetchone()
                assert first is not None
                assert first["role"] == "vao_app"
            with pytest.raises(psycopg.errors.DivisionByZero), tenant_connection(single) as conn:
                conn.execute("SELECT 1 / 0")
        with single.connection() as conn:
            after = conn.execute(
                """SELECT pg_backend_pid() AS pid, current_user AS role,
                          current_setting('app.tenant', true) AS tenant"""
            ).fetchone()
        assert after is not None
        assert after["pid"] == first["pid"], "the same connection came back"
        assert (after["role"], after["tenant"]) == (session_user, "")
        with single.connection() as conn, conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL ROLE vao_app")
            assert conn.execute("SELECT count(*) FROM tenants").fetchone() == {"count": 0}
    finally:
        single.close()


# Verifying an API key: the one lookup across tenants.


def test_the_key_lookup_finds_one_key_by_its_id_before_any_tenant_is_known(
    pool: Pool, seeded: dict[str, Seeded]
) -> None:
    repository = ApiKeyRepository(pool)
    for tenant, made in seeded.items():
        found = outside_any_tenant(functools.partial(repository.find, made.key_id))
        assert found is not None
        assert found.record.tenant_id == tenant
    assert outside_any_tenant(functools.partial(repository.find, "ffffffffffff")) is None
    with as_app(pool, None) as conn:
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone() == {"count": 0}
        for pattern in ["%", "", seeded["alpha"].key_id.upper()]:
            assert conn.execute("SELECT * FROM api_key_by_id(%s)", (pattern,)).fetchall() == []
        one = conn.execute("SELECT id, tenant_id FROM api_key_by_id(%s)", (seeded["beta"].key_id,)).fetchall()
        assert one == [{"id": seeded["beta"].key_id, "tenant_id": "beta"}]
        assert conn.execute("UPDATE api_keys SET revoked_at = now()").rowcount == 0, "no tenant: no row to change"


# Routing an inbound call: the one lookup of a phone number across tenants.


def test_the_number_route_finds_one_numbers_tenant_agent_and_provider_before_any_tenant_is_known(
    pool: Pool, seeded: dict[str, Seeded]
) -> None:
    repository = PhoneNumberRepository(pool)
    for tenant, number in NUMBERS.items():
        route = outside_any_tenant(functools.partial(repository.route, number))
        assert route == NumberRoute(tenant_id=tenant, agent="shop", provider="twilio")
    assert outside_any_tenant(functools.partial(repository.route, "+15005550006")) is None
    with as_app(pool, None) as conn:
        assert conn.execute("SELECT count(*) FROM phone_numbers").fetchone() == {"count": 0}
        for pattern in ["%", "", "+1%", NUMBERS["alpha"] + " "]:
            assert conn.execute("SELECT * FROM phone_number_route(%s)", (pattern,)).fetchall() == []
        one = conn.execute("SELECT * FROM phone_number_route(%s)", (NUMBERS["beta"],)).fetchall()
        assert one == [{"tenant_id": "beta", "agent": "shop", "provider": "twilio"}], "those three columns only"
        assert conn.execute("UPDATE phone_numbers SET agent = agent").rowcount == 0, "no tenant: no row to change"
