"""Reading a conversation back through the API, as the phone e2e tests check what a call left behind."""

from __future__ import annotations

from typing import Any

from devhost.process import DevHost
from tests.e2e.polling import wait_until

QUESTIONS = ["what are your opening hours", "how much does delivery cost", "what is on the menu"]
"""A whole call's three questions: the first answered from the demo agent's documents (opening hours)."""


def transcript(host: DevHost, conversation_id: str) -> dict[str, Any]:
    response = host.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def ended(host: DevHost, conversation_id: str) -> dict[str, Any]:
    """The conversation once it has completed."""
    return wait_until(lambda: transcript(host, conversation_id), lambda c: c["status"] == "completed")


def conversation_count(host: DevHost) -> int:
    response = host.get("/api/conversations", params={"limit": "100"})
    assert response.status_code == 200, response.text
    return len(response.json()["items"])
