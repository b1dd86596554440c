"""What the devhost's own tables say about an orchestration instance, for tests that act at a given moment."""

from __future__ import annotations

import json

import psycopg

from devhost.process import DevHost


def running_activities(host: DevHost, conversation_id: str) -> list[str]:
    """Activities the devhost has scheduled and not yet completed for this conversation; a turn activity
    hearing audio is `answer_turn (spoken)` (a typed turn's may still run a moment after its reply)."""
    with psycopg.connect(host.env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT name, input FROM durable_tasks WHERE instance_id = %s", (conversation_id,)
        ).fetchall()
    return [f"{name} (spoken)" if _spoken_turn(name, text) else name for name, text in rows]


def _spoken_turn(name: str, text: str | None) -> bool:
    return name == "answer_turn" and text is not None and json.loads(text).get("audio_blob") is not None
