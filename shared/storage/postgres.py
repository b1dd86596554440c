"""The Postgres connection pool (one per worker process, opened on first use) and the tenant's transactions.

The pool logs in as the login that owns the tables (it runs the migrations). Every unit of app work
borrows a connection through `tenant_connection`, whose transaction switches to the role `vao_app` and
sets `app.tenant`, so row-level security (migration 0011) keeps it to the current tenant's rows. Both
settings are transaction-local: they end with the transaction and never reach the next borrower.

With DATABASE_ENTRA_AUTH the login is the app's managed identity, which owns nothing: it may only become
`vao_app` (the post-provision step grants it), and each new connection logs in with a fresh Entra token
(`shared/storage/entra.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import psycopg
from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from shared import telemetry
from shared.storage import entra
from shared.tenancy import current_tenant

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

APP_ROLE = "vao_app"
"""The role every app transaction runs as: no superuser, no BYPASSRLS, not the tables' owner."""

Pool = ConnectionPool[Connection[DictRow]]


def open_pool(
    database_url: str, max_size: int, *, entra_auth: bool = False, credential: TokenCredential | None = None
) -> Pool:
    """A pool whose connections return rows as dicts, are checked before use and, in a database with
    pgvector, send and receive `pgvector.Vector` values as `vector`; with `entra_auth`, each logs in with
    an Entra token (from `credential`, else DefaultAzureCredential) as its password."""
    kwargs: dict[str, Any] = {"row_factory": dict_row, "autocommit": True}
    connection_class: type[Connection[Any]] = Connection
    if entra_auth:
        from azure_postgresql_auth.psycopg3 import EntraConnection

        connection_class = EntraConnection
        kwargs |= entra.postgres_connect_kwargs(database_url, credential or entra.credential())
    pool: Pool = ConnectionPool(
        database_url,
        connection_class=cast("type[Connection[DictRow]]", connection_class),
        min_size=1,
        max_size=max_size,
        kwargs=kwargs,
        check=_check,
        configure=_configure,
        open=False,
    )
    pool.open(wait=True, timeout=30)
    return pool


def _check(conn: Connection[DictRow]) -> None:
    """The pool's own liveness check before each loan, untraced (it is no work of the app's)."""
    with telemetry.untraced():
        ConnectionPool.check_connection(conn)


def _configure(conn: Connection[DictRow]) -> None:
    """pgvector's types on each new connection, where the database has them (migration 0009), and its
    statements traced when telemetry exports spans."""
    from pgvector.psycopg import register_vector

    telemetry.instrument_postgres(conn)

    # ProgrammingError: no `vector` type in this database, whose knowledge retrieval is full-text only.
    with contextlib.suppress(psycopg.ProgrammingError):
        register_vector(conn)


@contextlib.contextmanager
def tenant_connection(pool: Pool) -> Iterator[Connection[DictRow]]:
    """A pooled connection inside one transaction that runs as `vao_app` for the current tenant
    (`NoTenant` outside any `tenant_scope`, before a connection is taken); committed on success."""
    with _app_transaction(pool, current_tenant()) as conn:
        yield conn


@contextlib.contextmanager
def tenantless_connection(pool: Pool) -> Iterator[Connection[DictRow]]:
    """As `vao_app` with no tenant, so no tenant's rows: for what runs before the tenant is known (the API
    key lookup, through its owner-run function)."""
    with _app_transaction(pool, "") as conn:
        yield conn


@contextlib.contextmanager
def _app_transaction(pool: Pool, tenant: str) -> Iterator[Connection[DictRow]]:
    with pool.connection() as conn, conn.transaction():
        with telemetry.untraced():  # the same statement on every loan: a span would say nothing
            conn.execute("SELECT set_config('role', %s, true), set_config('app.tenant', %s, true)", (APP_ROLE, tenant))
        yield conn


def ping(pool: Pool) -> None:
    """Reachability only: touches no table, so it needs no tenant."""
    with pool.connection() as conn:
        conn.execute("SELECT 1")
