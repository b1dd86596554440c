"""Usage per day: conversations, minutes, turns, tokens, spoken characters and estimated cost.

A conversation and all its turns count on the UTC day it started, so a day's figures are the sums of
its conversations' own (what `GET /api/conversations/{id}` shows) and do not move at midnight. Minutes
count ended conversations only: an active one has no length yet, and counts once it ends. No tenant
filter here: row-level security scopes the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.storage.postgres import Pool, tenant_connection

_PER_DAY = """
WITH range AS (
    SELECT (%(first)s::date)::timestamp AT TIME ZONE 'UTC' AS start,
           (%(last)s::date + 1)::timestamp AT TIME ZONE 'UTC' AS stop
), calls AS (
    SELECT (c.created_at AT TIME ZONE 'UTC')::date AS day, count(*)::int AS conversations,
           coalesce(sum(extract(epoch FROM c.ended_at - c.created_at)), 0)::double precision / 60 AS minutes
    FROM conversations c, range
    WHERE c.created_at >= range.start AND c.created_at < range.stop
    GROUP BY 1
), spoken AS (
    SELECT (c.created_at AT TIME ZONE 'UTC')::date AS day, count(*)::int AS turns,
           coalesce(sum(t.input_tokens), 0)::bigint AS input_tokens,
           coalesce(sum(t.output_tokens), 0)::bigint AS output_tokens,
           coalesce(sum(length(t.reply_text)) FILTER (WHERE t.audio_blob IS NOT NULL), 0)::bigint AS tts_characters,
           coalesce(sum(t.cost_usd), 0)::double precision AS cost_usd
    FROM turns t JOIN conversations c ON c.id = t.conversation_id, range
    WHERE c.created_at >= range.start AND c.created_at < range.stop
    GROUP BY 1
)
SELECT d.day::date AS day, coalesce(calls.conversations, 0) AS conversations, coalesce(calls.minutes, 0) AS minutes,
       coalesce(spoken.turns, 0) AS turns, coalesce(spoken.input_tokens, 0) AS input_tokens,
       coalesce(spoken.output_tokens, 0) AS output_tokens, coalesce(spoken.tts_characters, 0) AS tts_characters,
       coalesce(spoken.cost_usd, 0) AS cost_usd
FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS d (day)
LEFT JOIN calls ON calls.day = d.day::date
LEFT JOIN spoken ON spoken.day = d.day::date
ORDER BY d.day
"""


@dataclass(frozen=True)
class DayUsage:
    day: date
    conversations: int
    minutes: float
    turns: int
    input_tokens: int
    output_tokens: int
    tts_characters: int
    cost_usd: float


class UsageRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def per_day(self, first: date, last: date) -> list[DayUsage]:
        """Every day from `first` to `last` (inclusive, UTC), days without conversations as zeros."""
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(_PER_DAY, {"first": first, "last": last}).fetchall()
        return [DayUsage(**row) for row in rows]
