"""The Postgres connection pool: one per worker process, opened on first use."""

from __future__ import annotations

from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

Pool = ConnectionPool[Connection[DictRow]]


def open_pool(database_url: str, max_size: int) -> Pool:
    """A pool whose connections return rows as dicts and are checked before use."""
    pool: Pool = ConnectionPool(
        database_url,
        connection_class=Connection[DictRow],
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        check=ConnectionPool.check_connection,
        open=False,
    )
    pool.open(wait=True, timeout=30)
    return pool


def ping(pool: Pool) -> None:
    with pool.connection() as conn:
        conn.execute("SELECT 1")
