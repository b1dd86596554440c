"""History events and orchestrator actions in the JSON shapes the Durable Python SDK reads and writes.

The devhost keeps a minimal history per generation (what the SDK needs to replay: one
OrchestratorStarted per episode, ExecutionStarted, and the completion events) and reads the
actions the SDK emits to learn what to schedule. Facts behind this: the team's notes on driving
the SDK without the host.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def timer_fired(moment: datetime, timer_id: int, fire_at: datetime) -> Event:
    return _event(HistoryEventType.TIMER_FIRED, moment, TimerId=timer_id, FireAt=timestamp(fire_at))


def event_raised(moment: datetime, name: str, input_json: str | None) -> Event:
    return _event(HistoryEventType.EVENT_RAISED, moment, Name=name, Input=input_json)


@dataclass(frozen=True)
class ScheduledAction:
    """A leaf action with the task id the SDK gave it (None for external-event waits)."""

    action: dict[str, Any]
    task_id: int | None

    @property
    def type(self) -> int:
        return int(self.action["actionType"])


def scheduled_actions(actions: list[list[dict[str, Any]]]) -> list[ScheduledAction]:
    """Leaf actions in the order the SDK numbers them: depth-first through WhenAny/WhenAll.

    Every leaf except an external-event wait consumes the next sequence number; the SDK re-emits
    all actions of the generation on every replay, so the result is cumulative too.
    """
    leaves: list[ScheduledAction] = []
    next_id = 0

    def visit(action: dict[str, Any]) -> None:
        nonlocal next_id
        if action["actionType"] in COMPOUND_ACTIONS:
            for child in action["compoundActions"]:
                visit(child)
        elif action["actionType"] == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            leaves.append(ScheduledAction(action, None))
        else:
            leaves.append(ScheduledAction(action, next_id))
            next_id += 1

    for group in actions:
        for action in group:
            visit(action)
    return leaves
