"""One episode of an orchestration through the SDK's own executor, and what it asks the host to run.

The devhost drives `Orchestrator(fn).handle(context)` itself instead of calling the registered
handler, so that it can read the SDK's open tasks afterwards: they carry the ids the SDK expects
completions under. The action list cannot give them: with `call_activity_with_retry` every failure
makes the SDK allocate a timer id and a re-attempt id (`RetryAbleTask.try_set_value`) that no
action names. Retries are timed as DTFx's `RetryInterceptor` times them for the extension.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.actions.CreateTimerAction import CreateTimerAction
from azure.durable_functions.models.actions.NoOpAction import NoOpAction
from azure.durable_functions.models.DurableOrchestrationContext import DurableOrchestrationContext
from azure.durable_functions.models.Task import RetryAbleTask
from azure.durable_functions.orchestrator import Orchestrator

from devhost import history

OUT_OF_PROC_MARKER = "$OutOfProcData$:"
SCHEMA_VERSION = 2
SUPPORTED_ACTIONS = frozenset(
    {
        ActionType.CALL_ACTIVITY,
        ActionType.CALL_ACTIVITY_WITH_RETRY,
        ActionType.CREATE_TIMER,
        ActionType.WAIT_FOR_EXTERNAL_EVENT,
        ActionType.CONTINUE_AS_NEW,
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """A `retryOptions` object as the extension reads it (`RetryOptionsConverter`; unset = DTFx default)."""

    first_interval_ms: float
    max_attempts: int
    backoff: float = 1.0
    max_interval_ms: float | None = None
    timeout_ms: float | None = None

    @classmethod
    def from_json(cls, options: dict[str, Any]) -> RetryPolicy:
        return cls(
            first_interval_ms=float(options["firstRetryIntervalInMilliseconds"]),
            max_attempts=int(options["maxNumberOfAttempts"]),
            backoff=float(options.get("backoffCoefficient", 1.0)),
            max_interval_ms=options.get("maxRetryIntervalInMilliseconds"),
            timeout_ms=options.get("retryTimeoutInMilliseconds"),
        )

    def retry_at(self, failed_attempt: int, first_attempt_at: datetime, now: datetime) -> datetime | None:
        """When the timer after a failed attempt fires (DTFx `RetryInterceptor.Invoke`/`ComputeNextDelay`).

        After the last attempt DTFx still creates a timer, due at once ("dummy timer for
        back-compat"), and the SDK waits for it before raising. Past the retry timeout DTFx creates
        no timer at all (None): the Python SDK then waits forever, on Azure as here.
        """
        if failed_attempt >= self.max_attempts:
            return now
        if self.timeout_ms is not None and now >= first_attempt_at + timedelta(milliseconds=self.timeout_ms):
            return None
        delay = self.first_interval_ms * self.backoff ** (failed_attempt - 1)
        if self.max_interval_ms is not None:
            delay = min(delay, float(self.max_interval_ms))
        return now + timedelta(milliseconds=delay)


@dataclass(frozen=True)
class ActivityCall:
    task_id: int
    name: str
    input: str | None
    attempt: int


@dataclass(frozen=True)
class TimerCall:
    timer_id: int
    fire_at: datetime


@dataclass
class Episode:
    """The SDK's answer to one history: its state, and the work not yet scheduled in this generation."""

    state: dict[str, Any]
    error: str | None = None
    activities: list[ActivityCall] = field(default_factory=list)
    timers: list[TimerCall] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)
    stalled_retries: list[int] = field(default_factory=list)

    @property
    def leaves(self) -> list[dict[str, Any]]:
        return history.leaf_actions(self.state.get("actions") or [])

    @property
    def unsupported(self) -> list[int]:
        return sorted({int(a["actionType"]) for a in self.leaves if a["actionType"] not in SUPPORTED_ACTIONS})

    @property
    def continue_as_new(self) -> dict[str, Any] | None:
        return next((a for a in self.leaves if a["actionType"] == ActionType.CONTINUE_AS_NEW), None)

    @property
    def custom_status(self) -> Any:
        """The status this episode leaves; the SDK omits a falsy one, which the extension reads as none."""
        return self.state.get("customStatus")


def run(handler: Any, instance_id: str, input_json: str | None, events: list[history.Event]) -> Episode:
    """Replay `events` (ending with this episode's OrchestratorStarted and new events) through the SDK.

    `handler` is the registered orchestrator: the SDK's `handle`, which carries the user's generator
    function as `orchestrator_function`.
    """
    context = DurableOrchestrationContext.from_json(
        json.dumps(
            {
                "history": events,
                "instanceId": instance_id,
                "isReplaying": False,
                "parentInstanceId": None,
                "input": input_json,
                "upperSchemaVersion": SCHEMA_VERSION,
            }
        )
    )
    context._input_expected_type = getattr(handler, "_df_input_type", None)
    try:
        episode = Episode(json.loads(Orchestrator(handler.orchestrator_function).handle(context)))
    except Exception as failure:
        message, marker, state = str(failure).partition(OUT_OF_PROC_MARKER)
        parsed: dict[str, Any] = json.loads(state) if marker else {}
        return Episode(parsed, error=str(parsed.get("error") or message.strip()))
    if not episode.state.get("isDone"):
        _collect_work(episode, context, events)
    return episode


def _collect_work(episode: Episode, context: Any, events: list[history.Event]) -> None:
    """Fill in the activities and timers the SDK waits on that this generation has not scheduled yet."""
    scheduled = history.scheduled_ids(events)
    now: datetime = context.current_utc_datetime
    for task_id, task in sorted((k, t) for k, t in context.open_tasks.items() if isinstance(k, int)):
        action = task._get_action()
        if isinstance(action, CreateTimerAction):
            if action.is_cancelled and task_id in scheduled:
                episode.cancelled_timers.append(task_id)
            elif not action.is_cancelled and task_id not in scheduled:
                episode.timers.append(TimerCall(task_id, _utc(action.fire_at)))
        elif task_id in scheduled:
            continue
        elif isinstance(action, NoOpAction) and isinstance(task.parent, RetryAbleTask):
            _retry_work(episode, task_id, task.parent, scheduled, now)
        elif action.action_type in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
            call = action.to_json()
            episode.activities.append(ActivityCall(task_id, call["functionName"], call.get("input"), attempt=1))


def _retry_work(episode: Episode, task_id: int, retry: Any, scheduled: dict[int, str], now: datetime) -> None:
    """The SDK's anonymous retry tasks: the timer after a failure, or the next attempt once it fired."""
    call = retry.actions.to_json()
    if not retry.is_waiting_on_timer:
        episode.activities.append(ActivityCall(task_id, call["functionName"], call.get("input"), retry.num_attempts))
        return
    first_attempt_at = datetime.fromisoformat(scheduled[retry.children[0].id])
    fire_at = RetryPolicy.from_json(call["retryOptions"]).retry_at(retry.num_attempts, first_attempt_at, now)
    if fire_at is None:
        episode.stalled_retries.append(task_id)
    else:
        episode.timers.append(TimerCall(task_id, fire_at))


def _utc(moment: datetime) -> datetime:
    """A timer's due time; the SDK writes a naive one as UTC (`fireAt` ends in Z), and so does the devhost."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
