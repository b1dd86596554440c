"""The Postgres connection pool: one per worker process, opened on first use."""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

Pool = ConnectionPool[Connection[DictRow]]


def open_pool(database_url: str, max_size: int) -> Pool:
    """A pool whose connections return rows as dicts, are checked before use and, in a database with
    pgvector, send and receive `pgvector.Vector` values as `vector`."""
    pool: Pool = ConnectionPool(
        database_url,
        connection_class=Connection[DictRow],
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        check=ConnectionPool.check_connection,
        configure=_register_vector,
        open=False,
    )
    pool.open(wait=True, timeout=30)
    return pool


def _register_vector(conn: Connection[DictRow]) -> None:
    """pgvector's types on each new connection, where the database has them (migration 0009)."""
    from pgvector.psycopg import register_vector

    # ProgrammingError: no `vector` type in this database, whose knowledge retrieval is full-text only.
    with contextlib.suppress(psycopg.ProgrammingError):
        register_vector(conn)


def ping(pool: Pool) -> None:
    with pool.connection() as conn:
        conn.execute("SELECT 1")
