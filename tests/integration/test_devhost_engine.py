"""The devhost's Durable engine and management API, driven by the real SDK client against real Postgres."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import azure.durable_functions as df
import psycopg
import pytest
from aiohttp import web
from azure.durable_functions.models.utils.http_utils import _close_session
from psycopg.types.json import Jsonb

from devhost import history
from devhost.__main__ import DEVHOST_MIGRATIONS
from devhost.faults import Faults, Target
from devhost.http_triggers import HttpLimits
from devhost.management import PREFIX, client_binding
from devhost.process import free_port
from devhost.registry import discover
from devhost.server import HostOptions, build_app
from shared.event_data import raised_value
from shared.storage.migrations import apply_migrations

LARGEST_STATUS_CHARS = 8701
"""A string status this long is 8,703 JSON characters, 17,406 bytes in UTF-16: 16 whole KB, the most allowed."""


def _app() -> df.DFApp:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def doubler(context: df.DurableOrchestrationContext) -> Any:
        context.set_custom_status({"waiting_for": "go"})
        value = raised_value((yield context.wait_for_external_event("go")))
        if value < 0:
            raise ValueError("negative numbers are refused")
        results = yield context.task_all([context.call_activity("double", value), context.call_activity("double", 1)])
        context.set_custom_status({"done": True})
        return results

    @app.orchestration_trigger(context_name="context")
    def delegator(context: df.DurableOrchestrationContext) -> Any:
        return (yield context.call_sub_orchestrator("doubler"))

    @app.orchestration_trigger(context_name="context")
    def echo(context: df.DurableOrchestrationContext) -> Any:
        return (yield context.wait_for_external_event("data"))

    @app.orchestration_trigger(context_name="context")
    def relay(context: df.DurableOrchestrationContext) -> Any:
        if context.get_input() is None:
            context.set_custom_status({"generation": 0})
            yield context.wait_for_external_event("go")
            context.continue_as_new({"generation": 1})
            return None
        return raised_value((yield context.wait_for_external_event("late")))

    @app.orchestration_trigger(context_name="context")
    def statuses(context: df.DurableOrchestrationContext) -> Any:
        context.set_custom_status({"phase": "first"})
        size = raised_value((yield context.wait_for_external_event("next")))
        context.set_custom_status(None)
        yield context.wait_for_external_event("next")
        context.set_custom_status("x" * size)
        return (yield context.wait_for_external_event("next"))

    @app.orchestration_trigger(context_name="context")
    def careful(context: df.DurableOrchestrationContext) -> Any:
        try:
            yield context.call_activity("explode", "now")
        except Exception as error:
            caught = str(error)
        retried = yield context.call_activity_with_retry("double", df.RetryOptions(200, 2), 4)
        return [caught, retried]

    @app.orchestration_trigger(context_name="context")
    def busy(context: df.DurableOrchestrationContext) -> Any:
        while True:
            yield context.task_all([context.call_activity("double", n) for n in range(20)])
            yield context.create_timer(context.current_utc_datetime)

    @app.orchestration_trigger(context_name="context")
    def patient(context: df.DurableOrchestrationContext) -> Any:
        try:
            return (yield context.call_activity("sleepy", context.get_input()))
        except Exception as error:
            return str(error)

    @app.activity_trigger(input_name="number")
    def double(number: int) -> int:
        return number * 2

    @app.activity_trigger(input_name="seconds")
    def sleepy(seconds: float) -> str:
        time.sleep(seconds)
        return "awake"

    @app.activity_trigger(input_name="reason")
    def explode(reason: str) -> None:
        raise RuntimeError(f"exploded {reason}")

    return app


Scenario = Callable[[df.DurableOrchestrationClient, str], Any]


async def _with_devhost(
    database_url: str, scenario: Scenario, faults: Faults | None = None, options: HostOptions | None = None
) -> Any:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runner = web.AppRunner(build_app(discover(_app()), database_url, base, faults, options))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        return await scenario(df.DurableOrchestrationClient(client_binding(base)), base)
    finally:
        await _close_session()
        await runner.cleanup()


async def _until(client: df.DurableOrchestrationClient, instance_id: str, status: str) -> Any:
    for _ in range(400):
        state = await client.get_status(instance_id)
        if state and state.runtime_status and state.runtime_status.value == status:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{instance_id} never reached {status}: {state.to_json() if state else None}")


def test_start_event_fan_out_status_and_purge(new_database: Callable[[], str]) -> None:
    database_url = new_database()
    apply_migrations(database_url, DEVHOST_MIGRATIONS)

    async def scenario(client: df.DurableOrchestrationClient, _: str) -> None:
        instance_id = await client.start_new("doubler", "job-1", None)
        assert instance_id == "job-1"
        running = await _until(client, instance_id, "Running")
        assert running.custom_status == {"waiting_for": "go"}
        await client.raise_event(instance_id, "go", 21)
        done = await _until(client, instance_id, "Completed")
        assert done.output == [42, 2]
        assert done.custom_status == {"done": True}
        listed = await client.get_status_by(runtime_status=[df.OrchestrationRuntimeStatus.Completed])
        assert [s.instance_id for s in listed] == ["job-1"]
        purged = await client.purge_instance_history(instance_id)
        assert purged.instances_deleted == 1
        assert not await client.get_status(instance_id)

    asyncio.run(_with_devhost(database_url, scenario))


def test_failure_terminate_and_unknown_names(new_database: Callable[[], str]) -> None:
    database_url = new_database()
    apply_migrations(database_url, DEVHOST_MIGRATIONS)

    async def scenario(client: df.DurableOrchestrationClient, _: str) -> None:
        failing = await client.start_new("doubler", None, None)
        await _until(client, failing, "Running")
        await client.raise_event(failing, "go", -1)
        failed = await _until(client, failing, "Failed")
        assert failed.output == "Orchestrator function 'doubler' failed: negative numbers are refused"

        stopped = await client.start_new("doubler", "job-2", None)
        await _until(client, stopped, "Running")
        await client.terminate(stopped, "caller hung up")
        terminated = await _until(client, stopped, "Terminated")
        assert terminated.output == "caller hung up"
        with pytest.raises(Exception, match="gone"):
            await client.raise_event(stopped, "go", 1)
        with pytest.raises(Exception, match="doesn't exist"):
            await client.start_new("no_such_orchestrator", None, None)
        unsupported = await client.start_new("delegator", None, None)
        refused = await _until(client, unsupported, "Failed")
        assert "does not run action types" in str(refused.output)

    asyncio.run(_with_devhost(database_url, scenario))


def _database(new_database: Callable[[], str]) -> str:
    database_url = new_database()
    apply_migrations(database_url, DEVHOST_MIGRATIONS)
    return database_url


def test_finding_2_event_data_arrives_as_json_text_as_the_extension_delivers_it(
    new_database: Callable[[], str],
) -> None:
    """The SDK client POSTs `json.dumps(data)`; the extension's `HttpApiHandler.HandleRaiseEventRequestAsync`
    parses that body into a JToken (`MessagePayloadDataConverter.ConvertToJToken`) and
    `DurableClient.RaiseEventAsync` -> DTFx `TaskHubClient.RaiseEventAsync` serializes it again, so
    `EventRaised.Input` is one JSON encoding deeper than the data and the orchestrator's task
    result is a str of JSON (Azure/azure-functions-durable-python#295)."""

    async def scenario(client: df.DurableOrchestrationClient, base: str) -> None:
        instance_id = await client.start_new("echo", None, None)
        await _until(client, instance_id, "Running")
        await client.raise_event(instance_id, "data", {"text": "hi", "n": 1})
        done = await _until(client, instance_id, "Completed")
        assert done.output == '{"text": "hi", "n": 1}', "the orchestrator got the client's JSON text, not the object"
        assert raised_value(done.output) == {"text": "hi", "n": 1}
        events = [e for e in (await client.get_status(instance_id, show_history=True)).history if e["EventType"] == 15]
        assert [json.loads(e["Input"]) for e in events] == ['{"text": "hi", "n": 1}']
        other = await client.start_new("echo", None, None)
        await _until(client, other, "Running")
        url = f"{base}{PREFIX}/instances/{other}/raiseEvent/data"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data="{not json", headers={"Content-Type": "application/json"}) as reply:
                assert reply.status == 400
            async with session.post(url, data="1", headers={"Content-Type": "text/plain"}) as reply:
                assert reply.status == 400, "only application/json, as the extension"
            async with session.post(f"{base}{PREFIX}/instances/nobody/raiseEvent/data", json=1) as reply:
                assert reply.status == 404

    asyncio.run(_with_devhost(_database(new_database), scenario))


def test_finding_2_events_after_continue_as_new_in_the_same_batch_carry_over(
    new_database: Callable[[], str],
) -> None:
    """Azure Storage: `EventBehaviourForContinueAsNew = Carryover` (AzureStorageOrchestrationServiceSettings);
    DTFx `TaskOrchestrationContext.HandleEventRaisedEvent` keeps events raised after ContinueAsNew for
    the next generation and `TaskOrchestrationDispatcher` starts its history with them, keeping the
    old generation's status (`carryOverStatus`). Events before the restart point are dropped."""
    database_url = _database(new_database)

    async def scenario(client: df.DurableOrchestrationClient, _: str) -> None:
        instance_id = await client.start_new("relay", "relay-1", None)
        await _until(client, instance_id, "Running")
        encoded = [
            history.event_raised(_utc(), name, json.dumps(json.dumps(v))) for name, v in [("early", "x"), ("go", "a")]
        ]

        def deliver() -> None:
            with psycopg.connect(database_url) as conn:
                for event in encoded:
                    conn.execute(
                        "INSERT INTO durable_inbox (instance_id, generation, event) VALUES (%s, NULL, %s)",
                        (instance_id, Jsonb(event)),
                    )

        # Off the event loop: the devhost runs on it, and may hold the instance's row lock across an await
        # (a blocking insert waiting for that lock would wait forever: it hung once, 300 s).
        await asyncio.to_thread(deliver)
        await client.raise_event(instance_id, "late", "b")
        done = await _until(client, instance_id, "Completed")
        assert done.output == "b", "the event after the restart point reached the next generation"
        assert done.custom_status == {"generation": 0}, "the status carried over with it"
        final = await client.get_status(instance_id, show_history=True)
        assert [e["Name"] for e in final.history if e["EventType"] == 15] == ["late"], "the early event was dropped"

    asyncio.run(_with_devhost(database_url, scenario))


def test_finding_2_custom_status_clears_and_is_limited_as_in_the_extension(new_database: Callable[[], str]) -> None:
    """An episode that sets no status clears it (DTFx `TaskOrchestrationDispatcher`: `runtimeState.Status =
    result.CustomStatus`); over 16 KB of UTF-16 the orchestration fails with the extension's message
    (`DurableOrchestrationContext.SetCustomStatus` -> `MessagePayloadDataConverter.Serialize(value, 16)`)."""

    async def scenario(client: df.DurableOrchestrationClient, _: str) -> None:
        largest = await client.start_new("statuses", "largest", None)
        too_large = await client.start_new("statuses", "too-large", None)
        for instance_id, size in ((largest, LARGEST_STATUS_CHARS), (too_large, LARGEST_STATUS_CHARS + 1)):
            assert (await _until(client, instance_id, "Running")).custom_status == {"phase": "first"}
            await client.raise_event(instance_id, "next", size)
            cleared = await _until_status(client, instance_id, lambda s: s.custom_status is None)
            assert cleared.runtime_status.value == "Running"
            await client.raise_event(instance_id, "next", None)
        kept = await _until_status(client, largest, lambda s: s.custom_status is not None)
        assert kept.custom_status == "x" * LARGEST_STATUS_CHARS
        failed = await _until(client, too_large, "Failed")
        assert failed.output == (
            "Orchestrator function 'statuses' failed: The UTF-16 size of the JSON-serialized payload must not "
            "exceed 16 KB. The current payload size is 17 KB."
        )
        assert failed.custom_status is None

    asyncio.run(_with_devhost(_database(new_database), scenario))


def test_finding_10_retries_run_as_dtfx_runs_them_and_failures_read_as_there(
    new_database: Callable[[], str],
) -> None:
    """History shape of a retried call (notes §4): attempt, TimerCreated, re-attempt, each its own id;
    a failed activity's reason is `Activity function '<name>' failed:  <Type>: <message>`
    (extension `TaskActivityShim.RunAsync` + `OutOfProcExceptionHelpers`), with no traceback stored."""

    async def scenario(client: df.DurableOrchestrationClient, _: str) -> None:
        instance_id = await client.start_new("careful", None, None)
        done = await _until(client, instance_id, "Completed")
        caught, doubled = done.output
        assert caught.startswith("Activity function 'explode' failed:  RuntimeError: exploded now \n {")
        assert doubled == 8, "the second attempt succeeded"
        events = (await client.get_status(instance_id, show_history=True)).history
        scheduled = [(e["EventType"], e["EventId"]) for e in events if e["EventType"] in (4, 10)]
        assert scheduled == [(4, 0), (4, 1), (10, 2), (4, 3)]
        failures = [e["Reason"] for e in events if e["EventType"] == 6]
        assert failures == [
            "Activity function 'explode' failed:  RuntimeError: exploded now",
            "Activity function 'double' failed:  InjectedFault: double failed on purpose "
            "(DEVHOST_FAILING_ACTIVITIES, attempt 1)",
        ]
        assert "Traceback" not in json.dumps(events)

    asyncio.run(_with_devhost(_database(new_database), scenario, Faults(failures={Target("double"): 1})))


def test_finding_8_terminate_is_safe_at_any_moment(new_database: Callable[[], str]) -> None:
    """Terminate while activities report and timers fire: always 202 (or 410 once it ended), never a 5xx."""
    moments = random.Random(8)

    async def scenario(client: df.DurableOrchestrationClient, base: str) -> None:
        async with aiohttp.ClientSession() as session:
            for attempt in range(12):
                instance_id = await client.start_new("busy", f"busy-{attempt}", None)
                await asyncio.sleep(moments.uniform(0, 0.4))
                url = f"{base}{PREFIX}/instances/{instance_id}/terminate?reason=now"
                async with session.post(url) as reply:
                    assert reply.status == 202, await reply.text()
                async with session.post(url) as again:
                    assert again.status == 410
                stopped = await _until(client, instance_id, "Terminated")
                assert stopped.output == "now"
            async with session.post(f"{base}{PREFIX}/instances/nobody/terminate") as unknown:
                assert unknown.status == 404
            async with session.delete(f"{base}{PREFIX}/instances/nobody") as purge_unknown:
                assert purge_unknown.status == 404

    asyncio.run(_with_devhost(_database(new_database), scenario))


def _utc() -> datetime:
    return datetime.now(UTC)


async def _until_status(client: df.DurableOrchestrationClient, instance_id: str, done: Callable[[Any], bool]) -> Any:
    for _ in range(400):
        state = await client.get_status(instance_id)
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{instance_id} never got there: {state.to_json()}")


def test_finding_3_an_activity_past_function_timeout_fails_as_on_azure(new_database: Callable[[], str]) -> None:
    """host.json's functionTimeout bounds activities too (the host's FunctionTimeoutException), so a
    poison input cannot hold an activity slot forever; a quick activity is unaffected."""
    options = HostOptions(limits=HttpLimits(function_timeout_seconds=0.5, response_limit_seconds=230))

    async def scenario(client: df.DurableOrchestrationClient, _: str) -> None:
        slow = await client.start_new("patient", None, 3)
        quick = await client.start_new("patient", None, 0)
        assert (
            "Timeout value of 0.5 s was exceeded by function: Functions.sleepy"
            in (await _until(client, slow, "Completed")).output
        )
        assert (await _until(client, quick, "Completed")).output == "awake"

    asyncio.run(_with_devhost(_database(new_database), scenario, options=options))
