"""The audit log in Postgres: the tenant's entries (`shared.audit.AuditEntry`), newest first (migration 0012).

A write records its entry with `append(conn, entry)` on the connection of its own transaction, so the
entry commits with the write or not at all; `AuditLog.record` is for a write that cannot share its
transaction (the entry then follows it). The app's role may insert and read entries, never change or
remove one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from shared.audit import AuditAction, AuditEntry
from shared.storage.postgres import Pool, tenant_connection


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    action: AuditAction | None = None


def append(conn: Connection[DictRow], entry: AuditEntry) -> None:
    """Record `entry` in the transaction of `conn` (a `tenant_connection`): it is the tenant's."""
    conn.execute(
        "INSERT INTO audit_log (actor, action, target, details) VALUES (%s, %s, %s, %s)",
        (entry.actor, entry.action.value, entry.target, Jsonb(dict(entry.details))),
    )


class AuditLog:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def record(self, entry: AuditEntry) -> None:
        """`append` in a transaction of its own."""
        with tenant_connection(self._pool) as conn:
            append(conn, entry)

    def page(self, where: AuditFilter, limit: int, after: tuple[datetime, int] | None = None) -> list[AuditRecord]:
        """Up to `limit` entries matching `where`, newest first, after the position `after` (keyset paging)."""
        after_at, after_id = after or (None, None)
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                """SELECT id, at, actor, action, target, details FROM audit_log
                   WHERE (%(since)s::timestamptz IS NULL OR at >= %(since)s)
                     AND (%(until)s::timestamptz IS NULL OR at < %(until)s)
                     AND (%(action)s::text IS NULL OR action = %(action)s)
                     AND (%(after_at)s::timestamptz IS NULL OR (at, id) < (%(after_at)s, %(after_id)s))
                   ORDER BY at DESC, id DESC LIMIT %(limit)s""",
                {
                    "since": where.since,
                    "until": where.until,
                    "action": None if where.action is None else where.action.value,
                    "after_at": after_at,
                    "after_id": after_id,
                    "limit": limit,
                },
            ).fetchall()
        return [AuditRecord(**row) for row in rows]
