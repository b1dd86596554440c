"""Phone numbers: which of the tenant's agents answers calls to a number, through which provider.

A number belongs to one tenant at most (unique across all of them), so an inbound call routes to exactly
one agent; a number another tenant holds is `NumberTaken`, saying nothing of whose it is. `route` finds
a number's tenant before any tenant is known, through the owner-run `phone_number_route` (migration
0012), the one reading of phone_numbers across tenants. Each write has its audit entry in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import Connection
from psycopg.rows import DictRow

from shared.audit import AuditAction, AuditEntry
from shared.errors import Conflict, NotFound, Unprocessable
from shared.models import PhoneProvider
from shared.storage import audit
from shared.storage.postgres import Pool, tenant_connection, tenantless_connection

_COLUMNS = "number, agent, provider, created_by, created_at, updated_at"


class NumberTaken(Conflict):
    code = "number_taken"

    def __init__(self) -> None:
        super().__init__("This number is taken: a number can answer for one account only.")


@dataclass(frozen=True)
class PhoneNumberRecord:
    number: str
    agent: str
    provider: PhoneProvider
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NumberRoute:
    """Where a call to a number goes: whose it is, which agent answers, which provider carries it."""

    tenant_id: str
    agent: str
    provider: PhoneProvider


class PhoneNumberRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def page(self, limit: int, after: tuple[datetime, str] | None = None) -> list[PhoneNumberRecord]:
        """Up to `limit` of the tenant's numbers, newest first, after the position `after` (keyset paging)."""
        after_time, after_number = after or (None, None)
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                f"""SELECT {_COLUMNS} FROM phone_numbers
                    WHERE %(after_time)s::timestamptz IS NULL OR (created_at, number) < (%(after_time)s, %(after)s)
                    ORDER BY created_at DESC, number DESC LIMIT %(limit)s""",
                {"after_time": after_time, "after": after_number, "limit": limit},
            ).fetchall()
        return [PhoneNumberRecord(**row) for row in rows]

    def create(self, number: str, agent: str, provider: PhoneProvider, actor: str) -> PhoneNumberRecord:
        """`Conflict` (`number_exists`) when the tenant has it, `NumberTaken` when another tenant does."""
        with tenant_connection(self._pool) as conn:
            _require_live_agent(conn, agent)
            if conn.execute("SELECT 1 FROM phone_numbers WHERE number = %s", (number,)).fetchone() is not None:
                raise Conflict(f"You have {number} already: PUT changes it.", code="number_exists")
            try:
                with conn.transaction():
                    row = conn.execute(
                        f"""INSERT INTO phone_numbers (number, agent, provider, created_by) VALUES (%s, %s, %s, %s)
                            RETURNING {_COLUMNS}""",
                        (number, agent, provider, actor),
                    ).fetchone()
            except psycopg.errors.UniqueViolation:
                raise NumberTaken() from None
            assert row is not None
            details = {"agent": agent, "provider": provider}
            audit.append(conn, AuditEntry(actor, AuditAction.PHONE_NUMBER_CREATE, number, details))
        return PhoneNumberRecord(**row)

    def update(self, number: str, agent: str, provider: PhoneProvider, actor: str) -> PhoneNumberRecord:
        with tenant_connection(self._pool) as conn:
            if conn.execute("SELECT 1 FROM phone_numbers WHERE number = %s FOR UPDATE", (number,)).fetchone() is None:
                raise NotFound("No such phone number.")
            _require_live_agent(conn, agent)
            row = conn.execute(
                f"""UPDATE phone_numbers SET agent = %s, provider = %s, updated_at = now() WHERE number = %s
                    RETURNING {_COLUMNS}""",
                (agent, provider, number),
            ).fetchone()
            assert row is not None  # locked above
            details = {"agent": agent, "provider": provider}
            audit.append(conn, AuditEntry(actor, AuditAction.PHONE_NUMBER_UPDATE, number, details))
        return PhoneNumberRecord(**row)

    def delete(self, number: str, actor: str) -> None:
        with tenant_connection(self._pool) as conn:
            row = conn.execute("DELETE FROM phone_numbers WHERE number = %s RETURNING agent", (number,)).fetchone()
            if row is None:
                raise NotFound("No such phone number.")
            audit.append(conn, AuditEntry(actor, AuditAction.PHONE_NUMBER_DELETE, number, {"agent": row["agent"]}))

    def caller_id(self, provider: PhoneProvider, agent: str) -> str | None:
        """A number of the tenant's that `provider` carries, to call from: one routed to `agent` if there is
        one (a callback then reaches the same agent), else the oldest; None when the tenant holds none."""
        with tenant_connection(self._pool) as conn:
            row = conn.execute(
                """SELECT number FROM phone_numbers WHERE provider = %s
                   ORDER BY (agent = %s) DESC, created_at, number LIMIT 1""",
                (provider, agent),
            ).fetchone()
        return None if row is None else str(row["number"])

    def route(self, number: str) -> NumberRoute | None:
        """Whose number this is and where its calls go, whichever tenant's (before any tenant is known)."""
        with tenantless_connection(self._pool) as conn:
            row = conn.execute("SELECT tenant_id, agent, provider FROM phone_number_route(%s)", (number,)).fetchone()
        return None if row is None else NumberRoute(**row)


def _require_live_agent(conn: Connection[DictRow], agent: str) -> None:
    """The agent exists and is not deleted, and stays so until this transaction ends (a share lock, which
    an agent's delete waits for)."""
    row = conn.execute("SELECT 1 FROM agents WHERE name = %s AND deleted_at IS NULL FOR SHARE", (agent,)).fetchone()
    if row is None:
        raise Unprocessable(f"agent: no agent {agent!r}.", code="unknown_agent")
