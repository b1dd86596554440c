"""Agents and their knowledge in Postgres, with full-text search as the local retriever."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from shared.models import AgentProfile
from shared.storage.postgres import Pool


@dataclass(frozen=True)
class KnowledgeHit:
    title: str
    body: str
    rank: float


def profile_hash(profile: AgentProfile) -> str:
    return hashlib.sha256(profile.model_dump_json().encode()).hexdigest()


class KnowledgeRepository:
    """Reads and writes agents and knowledge chunks."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def upsert_agent(self, profile: AgentProfile) -> bool:
        """Store the agent and replace its knowledge; a no-op (False) when nothing changed."""
        digest = profile_hash(profile)
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute("SELECT content_hash FROM agents WHERE name = %s FOR UPDATE", (profile.name,)).fetchone()
            if row is not None and row["content_hash"] == digest:
                return False
            conn.execute(
                """INSERT INTO agents (name, profile, content_hash) VALUES (%s, %s, %s)
                   ON CONFLICT (name) DO UPDATE
                   SET profile = EXCLUDED.profile, content_hash = EXCLUDED.content_hash, updated_at = now()""",
                (profile.name, Jsonb(profile.model_dump(mode="json")), digest),
            )
            conn.execute("DELETE FROM knowledge_chunks WHERE agent = %s", (profile.name,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO knowledge_chunks (agent, title, body) VALUES (%s, %s, %s)",
                    [(profile.name, doc.title, doc.text) for doc in profile.knowledge],
                )
        return True

    def get_agent(self, name: str) -> AgentProfile | None:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT profile FROM agents WHERE name = %s", (name,)).fetchone()
        return None if row is None else AgentProfile.model_validate(row["profile"])

    def search(self, agent: str, query: str, limit: int = 3) -> list[KnowledgeHit]:
        """Chunks matching any meaningful word of the query, best first.

        Words are OR-ed (not AND-ed as plainto_tsquery would) so a spoken question with extra
        words still finds its passage; ranking rewards chunks that match more of them.
        """
        with self._pool.connection() as conn:
            rows: list[dict[str, Any]] = conn.execute(
                """WITH q AS (
                       SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) AS query
                       FROM unnest(to_tsvector('english', %(text)s))
                   )
                   SELECT title, body, ts_rank_cd(search, q.query) AS rank
                   FROM knowledge_chunks, q
                   WHERE agent = %(agent)s AND q.query IS NOT NULL AND search @@ q.query
                   ORDER BY rank DESC, id
                   LIMIT %(limit)s""",
                {"text": query, "agent": agent, "limit": limit},
            ).fetchall()
        return [KnowledgeHit(r["title"], r["body"], float(r["rank"])) for r in rows]
