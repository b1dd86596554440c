"""Which status answers mean an orchestration is gone: only a 404, never an error (review of finding 8).

The SDK client (azure-functions-durable 1.7.0 `get_status`) turns 404 and 500 alike into a falsy
status; a conversation must not be closed because the status query failed once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from functions.conversation_flow import UNSTARTED_GRACE_SECONDS, closing_outcome
from shared.models import Outcome
from shared.storage.conversations import Conversation


def _conversation(age_seconds: float) -> Conversation:
    created = datetime.now(UTC) - timedelta(seconds=age_seconds)
    return Conversation("c1", "demo", "en-US", "api", "active", None, None, created, None)


def _status(body: object) -> DurableOrchestrationStatus:
    """What the SDK client builds from a response body (`DurableOrchestrationStatus.from_json`)."""
    return DurableOrchestrationStatus.from_json(body)


def test_an_old_conversation_whose_instance_answers_404_is_closed_as_terminated() -> None:
    assert closing_outcome(_conversation(UNSTARTED_GRACE_SECONDS + 5), _status("")) is Outcome.TERMINATED


def test_a_young_conversation_whose_instance_is_not_found_yet_is_left_alone() -> None:
    assert closing_outcome(_conversation(1), _status("")) is None


def test_a_failed_status_query_closes_nothing() -> None:
    error = {"error": {"code": "internal_error", "message": "The devhost failed on this request; see its log."}}
    assert closing_outcome(_conversation(UNSTARTED_GRACE_SECONDS + 5), _status(error)) is None


def test_dead_runtime_states_close_with_their_outcome() -> None:
    base = {"name": "conversation", "instanceId": "c1", "createdTime": "2026-11-25T10:00:00Z"}
    for runtime, outcome in (("Failed", Outcome.FAILED), ("Terminated", Outcome.TERMINATED), ("Running", None)):
        assert closing_outcome(_conversation(1), _status({**base, "runtimeStatus": runtime})) is outcome
