"""How the devhost reads the SDK's actions: task ids must match the SDK's own numbering."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from devhost import history
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

    @app.activity_trigger(input_name="text")
    def say(text: str) -> str:
        return text

    @app.route(route="things/{thing_id:guid}", methods=["GET"])
    def things(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    return app


def _run(orchestrator: Any, events: list[history.Event]) -> dict[str, Any]:
    context = {
        "history": [history.orchestrator_started(T0), history.execution_started(T0, "fan", "null"), *events],
        "instanceId": "i1",
        "isReplaying": False,
        "parentInstanceId": None,
        "input": "null",
        "upperSchemaVersion": 2,
    }
    return dict(json.loads(orchestrator(json.dumps(context))))


def test_task_ids_follow_the_sdk_numbering_through_compound_actions() -> None:
    registry = discover(_app())
    orchestrator = registry.orchestrators["fan"]
    events = [history.task_completed(T0, 0, '"one"'), history.event_raised(T0, "utterance", '"hi"')]
    state = _run(orchestrator, events)
    leaves = history.scheduled_actions(state["actions"])
    assert [(leaf.type, leaf.task_id) for leaf in leaves] == [(0, 0), (6, None), (5, 1), (0, 2), (0, 3), (0, 4)]
    assert leaves[2].action["isCanceled"] is True
    done = _run(
        orchestrator,
        [*events, *(history.task_completed(T0, task_id, f'"r{task_id}"') for task_id in (4, 2, 3))],
    )
    assert done["isDone"] is True
    assert done["output"] == ["one", "hi", ["r2", "r3", "r4"]]


def test_registry_finds_every_kind_of_function() -> None:
    registry = discover(_app())
    assert set(registry.orchestrators) == {"fan"}
    assert registry.activities["say"].input_arg == "text"
    (route,) = registry.http
    assert isinstance(route, HttpFunction)
    assert (route.route, route.methods) == ("things/{thing_id:guid}", ("GET",))
