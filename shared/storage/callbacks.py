"""Callbacks callers asked for (the `schedule_callback` tool), for the agent's owner to make."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.storage.postgres import Pool, tenant_connection


@dataclass(frozen=True)
class CallbackRequest:
    conversation_id: str
    turn: int
    call_index: int
    agent: str
    phone_number: str
    requested_time: str
    note: str


@dataclass(frozen=True)
class StoredCallback(CallbackRequest):
    created_at: datetime


class CallbackRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def schedule(self, request: CallbackRequest) -> None:
        """Store the callback once: a retried turn calls the tool again and finds its row (same turn, same call)."""
        with tenant_connection(self._pool) as conn:
            conn.execute(
                """INSERT INTO callbacks (conversation_id, turn, call_index, agent, phone_number, requested_time, note)
                   VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                (
                    request.conversation_id,
                    request.turn,
                    request.call_index,
                    request.agent,
                    request.phone_number,
                    request.requested_time,
                    request.note,
                ),
            )

    def list_for(self, conversation_id: str) -> list[StoredCallback]:
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                """SELECT conversation_id::text AS conversation_id, turn, call_index, agent, phone_number,
                          requested_time, note, created_at
                   FROM callbacks WHERE conversation_id = %s ORDER BY turn, call_index""",
                (conversation_id,),
            ).fetchall()
        return [StoredCallback(**row) for row in rows]
