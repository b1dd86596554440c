"""The devhost's Durable engine and management API, driven by the real SDK client against real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df
import pytest
from aiohttp import web
from azure.durable_functions.models.utils.http_utils import _close_session

from devhost.__main__ import DEVHOST_MIGRATIONS
from devhost.management import client_binding
from devhost.process import free_port
from devhost.registry import discover
from devhost.server import build_app
from shared.storage.migrations import apply_migrations


def _app() -> df.DFApp:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def doubler(context: df.DurableOrchestrationContext) -> Any:
        context.set_custom_status({"waiting_for": "go"})
        value = yield context.wait_for_external_event("go")
        if value < 0:
            raise ValueError("negative numbers are refused")
        results = yield context.task_all([context.call_activity("double", value), context.call_activity("double", 1)])
        context.set_custom_status({"done": True})
        return results

    @app.orchestration_trigger(context_name="context")
    def delegator(context: df.DurableOrchestrationContext) -> Any:
        return (yield context.call_sub_orchestrator("doubler"))

    @app.activity_trigger(input_name="number")
    def double(number: int) -> int:
        return number * 2

    return app


async def _with_devhost(database_url: str, scenario: Callable[[df.DurableOrchestrationClient], Any]) -> Any:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runner = web.AppRunner(build_app(discover(_app()), database_url, base))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        return await scenario(df.DurableOrchestrationClient(client_binding(base)))
    finally:
        await _close_session()
        await runner.cleanup()


async def _until(client: df.DurableOrchestrationClient, instance_id: str, status: str) -> Any:
    for _ in range(200):
        state = await client.get_status(instance_id)
        if state and state.runtime_status and state.runtime_status.value == status:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{instance_id} never reached {status}: {state.to_json() if state else None}")


def test_start_event_fan_out_status_and_purge(new_database: Callable[[], str]) -> None:
    database_url = new_database()
    apply_migrations(database_url, DEVHOST_MIGRATIONS)

    async def scenario(client: df.DurableOrchestrationClient) -> None:
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

    async def scenario(client: df.DurableOrchestrationClient) -> None:
        failing = await client.start_new("doubler", None, None)
        await _until(client, failing, "Running")
        await client.raise_event(failing, "go", -1)
        failed = await _until(client, failing, "Failed")
        assert "negative numbers are refused" in str(failed.output)

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
