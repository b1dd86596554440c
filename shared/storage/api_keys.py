"""API keys in Postgres: each row a key's public id, its SHA-256, its tenant, scopes and lifetime.

The secret itself is never stored (`shared/security/api_keys.py` makes and checks keys). Times that
decide anything (expiry, last use) are the database's `now()`, so app instances with skewed clocks agree.
Every method but `find` works in the current tenant (row-level security): a `tenant_id` argument of
another tenant finds nothing, and inserting a key for one is refused. Creating, rotating and revoking a
key records it in the audit log in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from shared.audit import AuditAction, AuditEntry
from shared.errors import NotFound
from shared.storage import audit
from shared.storage.postgres import Pool, tenant_connection, tenantless_connection

_COLUMNS = "id, tenant_id, name, scopes, created_by, created_at, expires_at, last_used_at, revoked_at, replaced_by"


@dataclass(frozen=True)
class ApiKeyRecord:
    """What may be shown about a key: everything but its hash (and the secret, which nobody has)."""

    id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    replaced_by: str | None


@dataclass(frozen=True)
class NewApiKey:
    id: str
    tenant_id: str
    name: str
    key_hash: bytes
    scopes: tuple[str, ...]
    created_by: str
    expires_at: datetime | None


@dataclass(frozen=True)
class KeyLookup:
    """A key found by its public id, with its hash to compare and the database's time to judge it by."""

    record: ApiKeyRecord
    key_hash: bytes
    now: datetime


class DuplicateKeyId(Exception):
    """The random public id is taken (48 bits: it happens about never); make another."""


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _record(row: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(**(row | {"scopes": tuple(row["scopes"])}))


class ApiKeyRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def insert(self, key: NewApiKey) -> ApiKeyRecord:
        """Store the key; its creator (`created_by`) is the audit entry's actor."""
        with tenant_connection(self._pool) as conn:
            record = self._insert(conn, key)
            details = {"name": key.name, "scopes": list(key.scopes), "expires_at": _iso(key.expires_at)}
            audit.append(conn, AuditEntry(key.created_by, AuditAction.KEY_CREATE, key.id, details))
        return record

    def find(self, key_id: str) -> KeyLookup | None:
        """The key with this public id, whichever tenant's (verification comes before the tenant is known):
        through `api_key_by_id`, the one function that reads api_keys across tenants (migration 0011)."""
        with tenantless_connection(self._pool) as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS}, key_hash, now() AS now FROM api_key_by_id(%s)", (key_id,)
            ).fetchone()
        if row is None:
            return None
        key_hash, now = bytes(row.pop("key_hash")), row.pop("now")
        return KeyLookup(_record(row), key_hash, now)

    def get(self, tenant_id: str, key_id: str) -> ApiKeyRecord | None:
        with tenant_connection(self._pool) as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE id = %s AND tenant_id = %s", (key_id, tenant_id)
            ).fetchone()
        return None if row is None else _record(row)

    def list_for(self, tenant_id: str) -> list[ApiKeyRecord]:
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = %s ORDER BY created_at, id", (tenant_id,)
            ).fetchall()
        return [_record(row) for row in rows]

    def page(self, tenant_id: str, limit: int, after: tuple[datetime, str] | None = None) -> list[ApiKeyRecord]:
        """Up to `limit` of the tenant's keys, newest first, after the position `after` (keyset paging)."""
        after_time, after_id = after or (None, None)
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                f"""SELECT {_COLUMNS} FROM api_keys
                    WHERE tenant_id = %(tenant)s
                      AND (%(after_time)s::timestamptz IS NULL OR (created_at, id) < (%(after_time)s, %(after_id)s))
                    ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",
                {"tenant": tenant_id, "after_time": after_time, "after_id": after_id, "limit": limit},
            ).fetchall()
        return [_record(row) for row in rows]

    def touch(self, key_id: str, resolution: timedelta) -> None:
        """Record a use (in the key's tenant), unless one was recorded less than `resolution` ago (also checked here, so
        concurrent requests write once)."""
        with tenant_connection(self._pool) as conn:
            conn.execute(
                """UPDATE api_keys SET last_used_at = now()
                   WHERE id = %s AND (last_used_at IS NULL OR last_used_at <= now() - %s)""",
                (key_id, resolution),
            )

    def revoke(self, tenant_id: str, key_id: str, revoked_by: str) -> ApiKeyRecord:
        """Revoke the tenant's key (again is a no-op, and no audit entry); a key of another tenant is as
        unknown as none."""
        with tenant_connection(self._pool) as conn:
            live = conn.execute(
                "SELECT revoked_at IS NULL AS live FROM api_keys WHERE id = %s AND tenant_id = %s FOR UPDATE",
                (key_id, tenant_id),
            ).fetchone()
            if live is None:
                raise NotFound("No such API key.")
            row = conn.execute(
                f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s RETURNING {_COLUMNS}",
                (key_id,),
            ).fetchone()
            if live["live"]:
                audit.append(conn, AuditEntry(revoked_by, AuditAction.KEY_REVOKE, key_id))
        assert row is not None  # locked above
        return _record(row)

    def rotate(self, tenant_id: str, old_id: str, new: NewApiKey) -> ApiKeyRecord:
        """In one transaction: insert `new`, revoke the old key and point it at its replacement. The old
        key must be the tenant's and still live (a revoked or expired key cannot be rotated, so two
        concurrent rotations make one key, not two)."""
        with tenant_connection(self._pool) as conn:
            old = conn.execute(
                """SELECT id FROM api_keys
                   WHERE id = %s AND tenant_id = %s AND revoked_at IS NULL
                     AND (expires_at IS NULL OR expires_at > now())
                   FOR UPDATE""",
                (old_id, tenant_id),
            ).fetchone()
            if old is None:
                raise NotFound("No such API key, or it is revoked or expired.")
            record = self._insert(conn, new)
            conn.execute("UPDATE api_keys SET revoked_at = now(), replaced_by = %s WHERE id = %s", (new.id, old_id))
            audit.append(conn, AuditEntry(new.created_by, AuditAction.KEY_ROTATE, old_id, {"replaced_by": new.id}))
        return record

    @staticmethod
    def _insert(conn: psycopg.Connection[Any], key: NewApiKey) -> ApiKeyRecord:
        try:
            with conn.transaction():
                row = conn.execute(
                    f"""INSERT INTO api_keys (id, tenant_id, name, key_hash, scopes, created_by, expires_at)
                        VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
                    (
                        key.id,
                        key.tenant_id,
                        key.name,
                        key.key_hash,
                        list(key.scopes),
                        key.created_by,
                        key.expires_at,
                    ),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise DuplicateKeyId() from None
        except psycopg.errors.ForeignKeyViolation:
            raise NotFound("No such tenant.") from None
        assert row is not None
        return _record(row)
