"""The Durable HTTP management API, as `DurableOrchestrationClient` calls it.

Function code uses the real SDK client unchanged; its binding JSON points the client here.
Request and response shapes follow the Durable extension's webhooks (see the team's notes).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from aiohttp import web

from devhost.engine import ACTIVE_STATES, Engine, InstanceExists, InstanceGone

PREFIX = "/runtime/webhooks/durabletask"
TASK_HUB = "DevHostHub"
CONNECTION = "Storage"


def client_binding(base_url: str) -> str:
    """The JSON the Functions host passes for a durableClient input binding."""
    webhooks = f"{base_url}{PREFIX}"
    query = f"taskHub={TASK_HUB}&connection={CONNECTION}"
    instance = f"{webhooks}/instances/INSTANCEID"
    create = f"{webhooks}/orchestrators/{{functionName}}[/{{instanceId}}]"
    wait = "timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}"
    return json.dumps(
        {
            "taskHubName": TASK_HUB,
            "creationUrls": {
                "createNewInstancePostUri": f"{create}?{query}",
                "createAndWaitOnNewInstancePostUri": f"{create}?{wait}&{query}",
            },
            "managementUrls": {
                "id": "INSTANCEID",
                "statusQueryGetUri": f"{instance}?{query}",
                "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
                "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
                "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
                "purgeHistoryDeleteUri": f"{instance}?{query}",
                "restartPostUri": f"{instance}/restart?{query}",
                "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
                "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
            },
            "baseUrl": webhooks,
            "requiredQueryStringParameters": query,
            "rpcBaseUrl": f"{webhooks}/",
            "httpBaseUrl": "",
            "connectionName": CONNECTION,
        }
    )


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def status_payload(row: dict[str, Any], show_input: bool, show_history: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": row["name"],
        "instanceId": row["instance_id"],
        "createdTime": row["created_at"].isoformat().replace("+00:00", "Z"),
        "lastUpdatedTime": row["updated_at"].isoformat().replace("+00:00", "Z"),
        "runtimeStatus": row["status"],
        "customStatus": _loads(row["custom_status"]),
        "output": _loads(row["output"]),
        "input": _loads(row["input"]) if show_input else None,
    }
    if show_history:
        payload["history"] = row["history"]
        payload["generation"] = row["generation"]
    return payload


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() == "true"


async def _body_text(request: web.Request) -> str | None:
    """The client double-encodes: the body is a JSON string literal holding the JSON payload."""
    raw = await request.text()
    if not raw:
        return None
    decoded = json.loads(raw)
    return decoded if isinstance(decoded, str) else json.dumps(decoded)


async def _event_data(request: web.Request) -> str | None:
    """EventRaised.Input as the extension stores it: the request's JSON value, serialized once more.

    `HttpApiHandler.HandleRaiseEventRequestAsync` parses the body into a JToken and
    `TaskHubClient.RaiseEventAsync` serializes that again. The SDK client already sends
    `json.dumps(data)`, so the orchestrator receives the JSON *text* of what was raised, not the
    value (Azure/azure-functions-durable-python#295).
    """
    raw = await request.text()
    return json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False) if raw else None


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": {"code": "bad_request", "message": message}}, status=400)


async def _accepted(operation: Awaitable[None]) -> web.Response:
    """202 when done; 404 for an unknown instance, 410 for a finished one (what the SDK client expects)."""
    try:
        await operation
    except KeyError:
        return web.Response(status=404)
    except InstanceGone:
        return web.Response(status=410)
    return web.Response(status=202)


def routes(engine: Engine) -> list[web.RouteDef]:
    async def start(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        instance_id = request.match_info.get("instance_id") or uuid.uuid4().hex
        try:
            await engine.start_new(name, instance_id, await _body_text(request))
        except KeyError:
            return web.json_response({"ExceptionMessage": f"The function '{name}' doesn't exist."}, status=400)
        except InstanceExists as error:
            return web.json_response({"ExceptionMessage": str(error)}, status=409)
        return web.json_response({"id": instance_id}, status=202)

    async def raise_event(request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        # The extension answers 404/410 before it looks at the body; the engine checks again under its lock.
        row = await engine.status(instance_id)
        if row is None:
            return web.Response(status=404)
        if row["status"] not in ACTIVE_STATES:
            return web.Response(status=410)
        if request.content_type != "application/json":
            return _bad_request("Only application/json request content is supported")
        try:
            data = await _event_data(request)
        except (ValueError, RecursionError):
            return _bad_request("Invalid JSON content")
        return await _accepted(engine.raise_event(instance_id, request.match_info["event"], data))

    async def terminate(request: web.Request) -> web.Response:
        reason = request.query.get("reason", "")
        return await _accepted(engine.terminate(request.match_info["instance_id"], reason))

    async def status(request: web.Request) -> web.Response:
        row = await engine.status(request.match_info["instance_id"])
        if row is None:
            return web.Response(status=404)
        return web.json_response(status_payload(row, _flag(request, "showInput"), _flag(request, "showHistory")))

    async def list_statuses(request: web.Request) -> web.Response:
        clauses: list[str] = ["TRUE"]
        params: list[Any] = []
        for name, clause in (("createdTimeFrom", "created_at >= %s"), ("createdTimeTo", "created_at <= %s")):
            if name in request.query:
                try:
                    params.append(datetime.fromisoformat(request.query[name]))
                except ValueError:
                    return _bad_request(f"{name} is not a date and time.")
                clauses.append(clause)
        if "runtimeStatus" in request.query:
            clauses.append("status = ANY(%s)")
            params.append(request.query["runtimeStatus"].split(","))
        if "instanceIdPrefix" in request.query:
            clauses.append("starts_with(instance_id, %s)")
            params.append(request.query["instanceIdPrefix"])
        rows = await engine.statuses(" AND ".join(clauses), tuple(params))
        return web.json_response([status_payload(r, _flag(request, "showInput"), False) for r in rows])

    async def purge(request: web.Request) -> web.Response:
        deleted = await engine.purge(request.match_info["instance_id"])
        if not deleted:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": deleted})

    return [
        web.post(PREFIX + "/orchestrators/{name}", start),
        web.post(PREFIX + "/orchestrators/{name}/{instance_id}", start),
        web.post(PREFIX + "/instances/{instance_id}/raiseEvent/{event}", raise_event),
        web.post(PREFIX + "/instances/{instance_id}/terminate", terminate),
        web.get(PREFIX + "/instances/", list_statuses),
        web.get(PREFIX + "/instances", list_statuses),
        web.get(PREFIX + "/instances/{instance_id}", status),
        web.delete(PREFIX + "/instances/{instance_id}", purge),
    ]
