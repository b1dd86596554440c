"""Agents as the admin API manages them: list, read, create, replace, soft delete, and every version.

An agent from a file (`source = 'file'`, the demo tenant's `AGENTS_DIR`) is read here like any other but
never changed: the next start would sync the file over the change. A deleted agent keeps its row, since
its conversations point at it, and starts no new conversation; creating its name again makes its next
version. Each write keeps its version in `agent_versions` and its audit entry, in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow

from shared.audit import AuditAction, AuditEntry
from shared.errors import ApiError, Conflict, NotFound
from shared.models import AgentProfile, AgentSource
from shared.storage import audit
from shared.storage.knowledge import store_agent
from shared.storage.postgres import Pool, tenant_connection


class AgentExists(Conflict):
    code = "agent_exists"


class ManagedByFile(Conflict):
    code = "agent_managed_by_file"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Agent {name!r} comes from its file {name}.toml in the agents folder: change the file, since the "
            "next start would overwrite a change made here."
        )


class AgentHasNumbers(Conflict):
    code = "agent_has_phone_numbers"


class VersionMismatch(ApiError):
    """`If-Match` names another version than the current one: someone changed the agent meanwhile."""

    status = 412
    code = "version_mismatch"


class UnknownAgent(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No agent {name!r}.")


@dataclass(frozen=True)
class AgentSummary:
    name: str
    display_name: str
    version: int
    source: AgentSource
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AgentRecord:
    name: str
    version: int
    source: AgentSource
    profile: AgentProfile
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AgentVersion:
    version: int
    profile: dict[str, Any]
    created_by: str
    created_at: datetime


class AgentRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def page(self, limit: int, after: tuple[datetime, str] | None = None) -> list[AgentSummary]:
        """Up to `limit` live agents, newest first, after the position `after` (keyset paging)."""
        after_time, after_name = after or (None, None)
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                """SELECT name, profile->>'display_name' AS display_name, version, source, created_at, updated_at
                   FROM agents
                   WHERE deleted_at IS NULL
                     AND (%(after_time)s::timestamptz IS NULL OR (created_at, name) < (%(after_time)s, %(after)s))
                   ORDER BY created_at DESC, name DESC LIMIT %(limit)s""",
                {"after_time": after_time, "after": after_name, "limit": limit},
            ).fetchall()
        return [AgentSummary(**row) for row in rows]

    def get(self, name: str) -> AgentRecord | None:
        """The live agent `name`, or None (deleted, another tenant's or none)."""
        with tenant_connection(self._pool) as conn:
            return _live(conn, name)

    def create(self, profile: AgentProfile, actor: str) -> AgentRecord:
        """A new agent (or a deleted one's name again, as its next version); `AgentExists` or
        `ManagedByFile` when a live agent has the name."""
        with tenant_connection(self._pool) as conn:
            version = store_agent(conn, profile, source="api", actor=actor, replaces="deleted")
            if version is None:
                taken = conn.execute("SELECT source FROM agents WHERE name = %s", (profile.name,)).fetchone()
                if taken is not None and taken["source"] == "file":
                    raise ManagedByFile(profile.name)
                raise AgentExists(f"There is an agent {profile.name!r} already: PUT replaces it.")
            audit.append(conn, AuditEntry(actor, AuditAction.AGENT_CREATE, profile.name, {"version": version}))
            return _written(conn, profile.name)

    def replace(self, profile: AgentProfile, actor: str, expected_version: int | None = None) -> AgentRecord:
        """The agent's next version; `VersionMismatch` when `expected_version` is given and is not current."""
        with tenant_connection(self._pool) as conn:
            current = _locked(conn, profile.name)
            if expected_version is not None and expected_version != current["version"]:
                raise VersionMismatch(
                    f"Agent {profile.name!r} is at version {current['version']}, not {expected_version}: "
                    "read it again and reapply your change."
                )
            version = store_agent(conn, profile, source="api", actor=actor, replaces="live_api")
            assert version is not None  # the row is locked, live and the API's
            audit.append(conn, AuditEntry(actor, AuditAction.AGENT_UPDATE, profile.name, {"version": version}))
            return _written(conn, profile.name)

    def delete(self, name: str, actor: str) -> None:
        """Soft delete: the agent starts no new conversation; `AgentHasNumbers` while numbers route to it."""
        with tenant_connection(self._pool) as conn:
            current = _locked(conn, name)
            numbers = conn.execute(
                "SELECT number FROM phone_numbers WHERE agent = %s ORDER BY number LIMIT 5", (name,)
            ).fetchall()
            if numbers:
                listed = ", ".join(row["number"] for row in numbers)
                raise AgentHasNumbers(f"Phone numbers route to agent {name!r} ({listed}): move or delete them first.")
            conn.execute("UPDATE agents SET deleted_at = now(), updated_at = now() WHERE name = %s", (name,))
            audit.append(conn, AuditEntry(actor, AuditAction.AGENT_DELETE, name, {"version": current["version"]}))

    def versions(self, name: str, limit: int, before: int | None = None) -> list[AgentVersion]:
        """Up to `limit` versions of the live agent `name`, newest first, older than `before`; `UnknownAgent`."""
        with tenant_connection(self._pool) as conn:
            if _live(conn, name) is None:
                raise UnknownAgent(name)
            rows = conn.execute(
                """SELECT version, profile, created_by, created_at FROM agent_versions
                   WHERE name = %(name)s AND (%(before)s::integer IS NULL OR version < %(before)s)
                   ORDER BY version DESC LIMIT %(limit)s""",
                {"name": name, "before": before, "limit": limit},
            ).fetchall()
        return [AgentVersion(**row) for row in rows]


def _live(conn: Connection[DictRow], name: str) -> AgentRecord | None:
    row = conn.execute(
        """SELECT name, version, source, profile, created_at, updated_at FROM agents
           WHERE name = %s AND deleted_at IS NULL""",
        (name,),
    ).fetchone()
    return None if row is None else AgentRecord(**(row | {"profile": AgentProfile.model_validate(row["profile"])}))


def _written(conn: Connection[DictRow], name: str) -> AgentRecord:
    record = _live(conn, name)
    assert record is not None  # written in this transaction
    return record


def _locked(conn: Connection[DictRow], name: str) -> DictRow:
    """The live API agent's row, locked for a change; `UnknownAgent` or `ManagedByFile` otherwise."""
    row = conn.execute(
        "SELECT version, source FROM agents WHERE name = %s AND deleted_at IS NULL FOR UPDATE", (name,)
    ).fetchone()
    if row is None:
        raise UnknownAgent(name)
    if row["source"] == "file":
        raise ManagedByFile(name)
    return row
