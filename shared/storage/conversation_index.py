"""The conversation list: a filtered, newest-first page of conversations with their turn counts.

Keyset paging on `(created_at, id)`: a page starts strictly after the last row of the one before, so
rows added meanwhile never shift a page. No tenant filter here: row-level security scopes the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.api_models import ConversationStatus
from shared.storage.postgres import Pool, tenant_connection


@dataclass(frozen=True)
class ConversationFilter:
    agent: str | None = None
    status: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class ListedConversation:
    id: str
    agent: str
    channel: str
    language: str
    status: ConversationStatus
    outcome: str | None
    created_at: datetime
    ended_at: datetime | None
    turns: int


class ConversationIndex:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def page(
        self, where: ConversationFilter, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[ListedConversation]:
        """Up to `limit` conversations matching `where`, newest first, after the position `after`."""
        conditions, values = ["TRUE"], dict[str, Any]()
        for column in ("agent", "status", "outcome"):
            if getattr(where, column) is not None:
                conditions.append(f"c.{column} = %({column})s")
                values[column] = getattr(where, column)
        if where.since is not None:
            conditions.append("c.created_at >= %(since)s")
            values["since"] = where.since
        if where.until is not None:
            conditions.append("c.created_at < %(until)s")
            values["until"] = where.until
        if after is not None:
            conditions.append("(c.created_at, c.id) < (%(after_time)s, %(after_id)s::uuid)")
            values["after_time"], values["after_id"] = after
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                f"""SELECT c.id::text AS id, c.agent, c.channel, c.language, c.status, c.outcome, c.created_at,
                           c.ended_at, (SELECT count(*) FROM turns t WHERE t.conversation_id = c.id)::int AS turns
                    FROM conversations c
                    WHERE {" AND ".join(conditions)}
                    ORDER BY c.created_at DESC, c.id DESC
                    LIMIT %(limit)s""",
                values | {"limit": limit},
            ).fetchall()
        return [ListedConversation(**row) for row in rows]
