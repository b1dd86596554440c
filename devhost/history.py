"""History events and orchestrator actions in the JSON shapes the Durable Python SDK reads and writes.

The devhost keeps a history per generation in DTFx's shape, minus the markers the SDK does not
read: one OrchestratorStarted per episode, ExecutionStarted, the completion events, and a
TaskScheduled or TimerCreated for every id it scheduled (so a step knows what is already in flight
and when a retried call started). Facts behind this: the team's notes on driving the SDK without
the host.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType

Event = dict[str, Any]

COMPOUND_ACTIONS = frozenset({ActionType.WHEN_ANY, ActionType.WHEN_ALL})
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def _event(kind: HistoryEventType, moment: datetime, **fields: Any) -> Event:
    return {"EventType": int(kind), "EventId": -1, "IsPlayed": False, "Timestamp": timestamp(moment), **fields}


def orchestrator_started(moment: datetime) -> Event:
    return _event(HistoryEventType.ORCHESTRATOR_STARTED, moment)


def execution_started(moment: datetime, name: str, input_json: str | None) -> Event:
    return _event(HistoryEventType.EXECUTION_STARTED, moment, Name=name, Input=input_json, Version="")


def task_completed(moment: datetime, task_id: int, result_json: str) -> Event:
    return _event(HistoryEventType.TASK_COMPLETED, moment, TaskScheduledId=task_id, Result=result_json)


def task_failed(moment: datetime, task_id: int, reason: str, details: str) -> Event:
    return _event(HistoryEventType.TASK_FAILED, moment, TaskScheduledId=task_id, Reason=reason, Details=details)


def activity_failed(moment: datetime, task_id: int, activity: str, error: BaseException) -> Event:
    """TaskFailed as the extension records a failed Python activity, minus the worker's stack trace.

    The worker reports `{type}: {message}` (`Dispatcher._serialize_exception`); the extension takes the
    text between `Exception:` and `Stack:` of the host's RpcException (`OutOfProcExceptionHelpers`),
    leading space included, and fails the task with `Activity function '<name>' failed: <that>`
    (`TaskActivityShim.RunAsync`). Details is the serialized .NET exception; on Azure its inner
    exception also holds the Python traceback, which the devhost leaves out: errors are stored as
    messages, never as stack traces with file paths.
    """
    friendly = f" {type(error).__name__}: {error}"
    details = {
        "$type": "System.Exception, System.Private.CoreLib",
        "ClassName": "System.Exception",
        "Message": friendly,
        "InnerException": None,
    }
    reason = f"Activity function '{activity}' failed: {friendly}"
    return task_failed(moment, task_id, reason, json.dumps(details, separators=(",", ":")))


def timer_fired(moment: datetime, timer_id: int, fire_at: datetime) -> Event:
    return _event(HistoryEventType.TIMER_FIRED, moment, TimerId=timer_id, FireAt=timestamp(fire_at))


def event_raised(moment: datetime, name: str, input_json: str | None) -> Event:
    return _event(HistoryEventType.EVENT_RAISED, moment, Name=name, Input=input_json)


def task_scheduled(moment: datetime, task_id: int, name: str, input_json: str | None) -> Event:
    return _event(HistoryEventType.TASK_SCHEDULED, moment, EventId=task_id, Name=name, Input=input_json, Version="")


def timer_created(moment: datetime, timer_id: int, fire_at: datetime) -> Event:
    return _event(HistoryEventType.TIMER_CREATED, moment, EventId=timer_id, FireAt=timestamp(fire_at))


def scheduled_ids(events: list[Event]) -> dict[int, str]:
    """Task and timer ids already scheduled in this generation, with when they were scheduled."""
    kinds = (HistoryEventType.TASK_SCHEDULED, HistoryEventType.TIMER_CREATED)
    return {int(e["EventId"]): str(e["Timestamp"]) for e in events if e["EventType"] in kinds}


def leaf_actions(actions: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every action the SDK emitted, depth-first through WhenAny/WhenAll (cumulative for the generation)."""
    leaves: list[dict[str, Any]] = []

    def visit(action: dict[str, Any]) -> None:
        if action["actionType"] in COMPOUND_ACTIONS:
            for child in action["compoundActions"]:
                visit(child)
        else:
            leaves.append(action)

    for group in actions:
        for action in group:
            visit(action)
    return leaves
