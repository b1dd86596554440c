"""How the devhost reads the SDK: task ids and retries must match what the SDK and DTFx expect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from devhost import history, replay
from devhost.registry import HttpFunction, discover

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _app() -> df.DFApp:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def fan(context: df.DurableOrchestrationContext) -> Any:
        first = yield context.call_activity("say", "one")
        heard = context.wait_for_external_event("utterance")
        timer = context.create_timer(context.current_utc_datetime.replace(minute=5))
        winner = yield context.task_any([heard, timer])
        if winner is not timer:
            timer.cancel()
        results = yield context.task_all([context.call_activity("say", str(i)) for i in range(3)])
        return [first, heard.result, results]

    @app.orchestration_trigger(context_name="context")
    def flaky_pair(context: df.DurableOrchestrationContext) -> Any:
        retried = context.call_activity_with_retry("flaky", df.RetryOptions(1000, 3), "in")
        return (yield context.task_all([retried, context.call_activity("say", "x")]))

    @app.activity_trigger(input_name="text")
    def say(text: str) -> str:
        return text

    @app.route(route="things/{thing_id:guid}", methods=["GET"])
    def things(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    return app


ORCHESTRATORS = discover(_app()).orchestrators


class Instance:
    """A generation's history, grown as the engine grows it: each step's events, then what it scheduled."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[history.Event] = [history.execution_started(T0, name, "null")]

    def step(self, at: datetime, *new: history.Event) -> replay.Episode:
        self.events = [*self.events, history.orchestrator_started(at), *new]
        episode = replay.run(ORCHESTRATORS[self.name], "i1", "null", self.events)
        for call in episode.activities:
            self.events.append(history.task_scheduled(at, call.task_id, call.name, call.input))
        for timer in episode.timers:
            self.events.append(history.timer_created(at, timer.timer_id, timer.fire_at))
        return episode


def _calls(episode: replay.Episode) -> list[tuple[int, str, int]]:
    return [(call.task_id, call.name, call.attempt) for call in episode.activities]


def test_task_ids_follow_the_sdk_numbering_through_compound_actions() -> None:
    instance = Instance("fan")
    assert _calls(instance.step(T0)) == [(0, "say", 1)]
    waiting = instance.step(T0, history.task_completed(T0, 0, '"one"'))
    assert waiting.timers == [replay.TimerCall(1, T0.replace(minute=5))]
    fanned = instance.step(T0, history.event_raised(T0, "utterance", '"hi"'))
    assert _calls(fanned) == [(2, "say", 1), (3, "say", 1), (4, "say", 1)]
    assert fanned.cancelled_timers == [1], "the losing timer is withdrawn"
    done = instance.step(T0, *(history.task_completed(T0, task_id, f'"r{task_id}"') for task_id in (4, 2, 3)))
    assert done.state["isDone"] is True
    assert done.state["output"] == ["one", "hi", ["r2", "r3", "r4"]]


def test_finding_10_retries_follow_the_id_shape_dtfx_gives_them() -> None:
    """Each failure: a timer id, then a re-attempt id, from the running sequence (notes §4 'Retry').

    The last failure still gets a timer (due at once: DTFx `RetryInterceptor.Invoke`, "dummy timer
    for back-compat"), and only its firing raises the failure in the orchestrator.
    """
    instance = Instance("flaky_pair")
    boom = RuntimeError("boom")
    assert _calls(instance.step(T0)) == [(0, "flaky", 1), (1, "say", 1)]
    t1 = T0 + timedelta(seconds=3)
    first_failure = instance.step(t1, history.activity_failed(t1, 0, "flaky", boom))
    assert first_failure.timers == [replay.TimerCall(2, t1 + timedelta(seconds=1))]
    assert _calls(instance.step(t1, history.timer_fired(t1, 2, t1))) == [(3, "flaky", 2)]
    t2 = t1 + timedelta(seconds=5)
    second_failure = instance.step(
        t2, history.task_completed(t2, 1, '"x"'), history.activity_failed(t2, 3, "flaky", boom)
    )
    assert second_failure.timers == [replay.TimerCall(4, t2 + timedelta(seconds=1))]
    assert _calls(instance.step(t2, history.timer_fired(t2, 4, t2))) == [(5, "flaky", 3)]
    t3 = t2 + timedelta(seconds=7)
    last_failure = instance.step(t3, history.activity_failed(t3, 5, "flaky", boom))
    assert last_failure.timers == [replay.TimerCall(6, t3)]
    assert last_failure.error is None, "the failure waits for the last timer"
    failed = instance.step(t3, history.timer_fired(t3, 6, t3))
    assert failed.error is not None
    assert failed.error.startswith("Activity function 'flaky' failed:  RuntimeError: boom")
    assert "Traceback" not in failed.error


def test_finding_10_a_success_after_a_retry_completes_the_call() -> None:
    instance = Instance("flaky_pair")
    instance.step(T0)
    instance.step(T0, history.activity_failed(T0, 0, "flaky", RuntimeError("once")))
    instance.step(T0, history.timer_fired(T0, 2, T0))
    done = instance.step(T0, history.task_completed(T0, 3, '"ok"'), history.task_completed(T0, 1, '"x"'))
    assert done.state["output"] == ["ok", "x"]


def test_finding_10_retry_delays_honour_backoff_cap_and_timeout() -> None:
    """DTFx `RetryInterceptor.ComputeNextDelay`: first * backoff^(n-1), capped, none past the timeout."""
    policy = replay.RetryPolicy.from_json(
        {
            "firstRetryIntervalInMilliseconds": 1000,
            "maxNumberOfAttempts": 5,
            "backoffCoefficient": 2,
            "maxRetryIntervalInMilliseconds": 3000,
            "retryTimeoutInMilliseconds": 60_000,
        }
    )
    delays = [policy.retry_at(attempt, T0, T0) for attempt in (1, 2, 3, 4, 5)]
    assert delays == [T0 + timedelta(milliseconds=ms) for ms in (1000, 2000, 3000, 3000, 0)]
    assert policy.retry_at(2, T0, T0 + timedelta(minutes=1)) is None, "past the retry timeout: no timer"
    assert policy.retry_at(5, T0, T0 + timedelta(minutes=1)) == T0 + timedelta(minutes=1), "the last one fires"
    plain = replay.RetryPolicy.from_json({"firstRetryIntervalInMilliseconds": 500, "maxNumberOfAttempts": 3})
    assert plain.retry_at(2, T0, T0) == T0 + timedelta(milliseconds=500), "no backoff unless asked"


def test_finding_2_activity_failures_read_as_the_extension_writes_them() -> None:
    """`TaskActivityShim.RunAsync`: `Activity function '<name>' failed: ` + the worker's ` Type: message`."""
    event = history.activity_failed(T0, 7, "respond", ValueError("no reply"))
    assert event["Reason"] == "Activity function 'respond' failed:  ValueError: no reply"
    assert event["TaskScheduledId"] == 7
    assert '"Message":" ValueError: no reply"' in event["Details"]
    assert "File " not in event["Details"], "a message, never a traceback"


def test_registry_finds_every_kind_of_function() -> None:
    registry = discover(_app())
    assert set(registry.orchestrators) == {"fan", "flaky_pair"}
    assert registry.activities["say"].input_arg == "text"
    (route,) = registry.http
    assert isinstance(route, HttpFunction)
    assert (route.route, route.methods) == ("things/{thing_id:guid}", ("GET",))
