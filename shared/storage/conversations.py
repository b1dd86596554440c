"""Conversations and their turns in Postgres.

Turn writes are idempotent: a turn is unique per (conversation, turn number) and per
(conversation, request id), so a retried activity or a provider's retried webhook never
produces a second row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from shared.audit import AuditEntry
from shared.models import ExtractedValue, ModelUsage, Outcome, TurnRecord
from shared.storage import audit
from shared.storage.postgres import Pool, tenant_connection

TURN_COLUMNS = (
    "conversation_id::text AS conversation_id, turn, kind, request_id, user_text, intent,"
    " reply_text, audio_blob, stt_ms, agent_ms, tts_ms, llm_provider, llm_model, input_tokens, output_tokens,"
    " cost_usd::double precision AS cost_usd, action, transfer_to, tool_calls, stt_engine, tts_engine,"
    " first_audio_ms, citations, language, written_reply"
)
_LLM_COLUMNS = {
    "llm_provider": "provider",
    "llm_model": "model",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cost_usd": "cost_usd",
}


@dataclass(frozen=True)
class Conversation:
    id: str
    agent: str
    language: str
    channel: str
    status: str
    outcome: str | None
    summary: str | None
    created_at: datetime
    ended_at: datetime | None
    extraction: dict[str, ExtractedValue] | None = None
    """The agent's extraction fields as the call ended (None until it has)."""
    aftercall_llm: ModelUsage | None = None
    """The model that wrote the summary and extraction (None if none did, or the call has not ended)."""
    call_duration_seconds: int | None = None
    """A phone call's length as its provider reported it at the end (None for other channels, or until then)."""
    recording_blob: str | None = None
    """The call's recording (its agent records calls), once the provider has delivered it."""
    recording_seconds: int | None = None


def _turn(row: dict[str, Any]) -> TurnRecord:
    """A turn from its row; the model-usage columns become its `llm` (None when no model answered)."""
    turn = {k: v for k, v in row.items() if k not in _LLM_COLUMNS}
    llm = {field: row[column] for column, field in _LLM_COLUMNS.items()}
    return TurnRecord.model_validate(turn | {"llm": llm if llm["provider"] is not None else None})


class ConversationRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def create(self, conversation_id: str, agent: str, language: str, channel: str) -> None:
        with tenant_connection(self._pool) as conn:
            conn.execute(
                "INSERT INTO conversations (id, agent, language, channel) VALUES (%s, %s, %s, %s)",
                (conversation_id, agent, language, channel),
            )

    def get(self, conversation_id: str) -> Conversation | None:
        with tenant_connection(self._pool) as conn:
            row = conn.execute(
                """SELECT id::text AS id, agent, language, channel, status, outcome, summary,
                          created_at, ended_at, extraction, aftercall_llm, call_duration_seconds,
                          recording_blob, recording_seconds
                   FROM conversations WHERE id = %s""",
                (conversation_id,),
            ).fetchone()
        if row is None:
            return None
        usage = row.pop("aftercall_llm")
        return Conversation(**row, aftercall_llm=None if usage is None else ModelUsage.model_validate(usage))

    def record_recording(self, conversation_id: str, blob: str, seconds: int | None) -> bool:
        """The call's recording, stored in `blob`; False when it had one already (a provider's retry)."""
        with tenant_connection(self._pool) as conn:
            row = conn.execute(
                """UPDATE conversations SET recording_blob = %s, recording_seconds = %s
                   WHERE id = %s AND recording_blob IS NULL RETURNING id""",
                (blob, seconds, conversation_id),
            ).fetchone()
        return row is not None

    def record_call_duration(self, conversation_id: str, seconds: int) -> None:
        """The phone call's length, from the provider's end-of-call status (a repeat writes the same)."""
        with tenant_connection(self._pool) as conn:
            conn.execute(
                "UPDATE conversations SET call_duration_seconds = %s WHERE id = %s", (seconds, conversation_id)
            )

    def delete(self, conversation_id: str, entry: AuditEntry) -> bool:
        """Delete the conversation with its turns and callbacks (their keys cascade), and record `entry` in
        the same transaction; False when there was none (deleted before, or another tenant's)."""
        with tenant_connection(self._pool) as conn:
            deleted = conn.execute("DELETE FROM conversations WHERE id = %s", (conversation_id,)).rowcount == 1
            if deleted:
                audit.append(conn, entry)
        return deleted

    def record_call_length(self, conversation_id: str) -> None:
        """The phone call's length for a provider that reports none (Amazon Connect): from the conversation's
        start to now, both by the database's clock, in whole seconds; the first end counts, a repeat keeps it."""
        with tenant_connection(self._pool) as conn:
            conn.execute(
                """UPDATE conversations
                   SET call_duration_seconds = greatest(0, round(extract(epoch FROM now() - created_at)))::integer
                   WHERE id = %s AND call_duration_seconds IS NULL""",
                (conversation_id,),
            )

    def mark_ending(self, conversation_id: str) -> bool:
        """Stop accepting turns; False if the conversation was not active."""
        with tenant_connection(self._pool) as conn:
            cur = conn.execute(
                "UPDATE conversations SET status = 'ending' WHERE id = %s AND status = 'active'",
                (conversation_id,),
            )
            return cur.rowcount == 1

    def complete(
        self,
        conversation_id: str,
        outcome: Outcome,
        summary: str,
        extraction: dict[str, ExtractedValue] | None = None,
        aftercall_llm: ModelUsage | None = None,
    ) -> bool:
        """Close the conversation with its outcome, summary, extraction fields and the usage of the model
        that wrote them; False if it was already closed (the first outcome and all of these stay)."""
        with tenant_connection(self._pool) as conn:
            cur = conn.execute(
                """UPDATE conversations
                   SET status = 'completed', outcome = %s, summary = %s, extraction = %s, aftercall_llm = %s,
                       ended_at = coalesce(ended_at, now())
                   WHERE id = %s AND status <> 'completed'""",
                (
                    outcome.value,
                    summary,
                    None if extraction is None else Jsonb(extraction),
                    None if aftercall_llm is None else Jsonb(aftercall_llm.model_dump(mode="json")),
                    conversation_id,
                ),
            )
            return cur.rowcount == 1

    def record_turn(self, turn: TurnRecord) -> TurnRecord:
        """Insert the turn, whole (its reply audio included), unless it exists; return what is stored either way."""
        llm = turn.llm
        values = {
            "conversation_id": turn.conversation_id,
            "turn": turn.turn,
            "kind": turn.kind.value,
            "request_id": turn.request_id,
            "user_text": turn.user_text,
            "intent": str(turn.intent) if turn.intent else None,
            "reply_text": turn.reply_text,
            "audio_blob": turn.audio_blob,
            "stt_ms": turn.stt_ms,
            "agent_ms": turn.agent_ms,
            "tts_ms": turn.tts_ms,
            "llm_provider": llm.provider if llm else None,
            "llm_model": llm.model if llm else None,
            "input_tokens": llm.input_tokens if llm else None,
            "output_tokens": llm.output_tokens if llm else None,
            "cost_usd": llm.cost_usd if llm else None,
            "action": turn.action.value,
            "transfer_to": turn.transfer_to,
            "tool_calls": Jsonb([call.model_dump(mode="json") for call in turn.tool_calls]),
            "stt_engine": turn.stt_engine,
            "tts_engine": turn.tts_engine,
            "first_audio_ms": turn.first_audio_ms,
            "citations": Jsonb([citation.model_dump(mode="json") for citation in turn.citations]),
            "language": turn.language,
            "written_reply": turn.written_reply,
        }
        columns = ", ".join(values)
        placeholders = ", ".join(f"%({name})s" for name in values)
        with tenant_connection(self._pool) as conn:
            conn.execute(f"INSERT INTO turns ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING", values)
        stored = self.get_turn(turn.conversation_id, turn.turn)
        if stored is None:
            raise LookupError(f"turn {turn.turn} of {turn.conversation_id} vanished after insert")
        return stored

    def cut_reply(self, conversation_id: str, turn: int, heard: str, audio_blob: str | None) -> TurnRecord | None:
        """Keep as the turn's reply only what the listener heard (a barge-in after the reply was stored), and
        the whole reply the agent wrote as `written_reply`; None, and nothing changed, when a later turn
        exists: what was heard of an older turn no longer matters to the conversation. Writing the same cut
        again changes nothing (the first reply written is the one kept)."""
        with tenant_connection(self._pool) as conn:
            row = conn.execute(
                """UPDATE turns
                   SET written_reply = COALESCE(written_reply, reply_text), reply_text = %s, audio_blob = %s
                   WHERE conversation_id = %s AND turn = %s
                     AND NOT EXISTS (SELECT 1 FROM turns later WHERE later.conversation_id = %s AND later.turn > %s)
                   RETURNING turn""",
                (heard, audio_blob, conversation_id, turn, conversation_id, turn),
            ).fetchone()
        return None if row is None else self.get_turn(conversation_id, turn)

    def get_turn(self, conversation_id: str, turn: int) -> TurnRecord | None:
        with tenant_connection(self._pool) as conn:
            row = conn.execute(
                f"SELECT {TURN_COLUMNS} FROM turns WHERE conversation_id = %s AND turn = %s",
                (conversation_id, turn),
            ).fetchone()
        return None if row is None else _turn(row)

    def get_turn_by_request(self, conversation_id: str, request_id: str) -> TurnRecord | None:
        with tenant_connection(self._pool) as conn:
            row = conn.execute(
                f"SELECT {TURN_COLUMNS} FROM turns WHERE conversation_id = %s AND request_id = %s",
                (conversation_id, request_id),
            ).fetchone()
        return None if row is None else _turn(row)

    def list_turns(self, conversation_id: str, last: int | None = None) -> list[TurnRecord]:
        """Every turn in order, or only the `last` few (still in order)."""
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                f"""SELECT * FROM (
                        SELECT {TURN_COLUMNS} FROM turns WHERE conversation_id = %s
                        ORDER BY turn DESC LIMIT %s
                    ) recent ORDER BY turn""",
                (conversation_id, last),
            ).fetchall()
        return [_turn(r) for r in rows]
