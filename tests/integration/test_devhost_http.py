# mypy: disallow-untyped-decorators=False
"""The devhost's HTTP side driven in-process over real sockets, against the host's behaviour (issue 13).

Findings 11 (routing and requests as the Functions host has them) and 12 (the host key on the
devhost's own routes, JSON answers to bad ids and methods there). Facts: team notes,
durable-local-host.md §12; the Durable extension's `HttpApiHandler` and `DurableClient` validation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import azure.durable_functions as df
import azure.functions as func
from aiohttp import web
from azure.durable_functions.models.utils.http_utils import _close_session
from yarl import URL

from devhost.__main__ import DEVHOST_MIGRATIONS
from devhost.http_triggers import HttpLimits
from devhost.process import free_port
from devhost.registry import discover
from devhost.server import HostOptions, build_app
from shared.storage.migrations import apply_migrations

DURABLE = "/runtime/webhooks/durabletask"


def _app() -> df.DFApp:
    app = df.DFApp()

    @app.route(route="conversations/{conversation_id}", methods=["GET"])
    def conversation(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"id": req.route_params["conversation_id"]}), mimetype="application/json")

    @app.route(route="conversations/stats", methods=["GET"])
    def stats(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("stats")

    @app.route(route="echo", methods=["GET", "POST"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        seen = {
            "url": req.url,
            "params": dict(req.params),
            "headers": {k: v for k, v in req.headers.items() if k.startswith("x-")},
            "body": req.get_body().decode(),
        }
        return func.HttpResponse(json.dumps(seen), mimetype="application/json")

    @app.route(route="slow", methods=["GET"])
    async def slow(req: func.HttpRequest) -> func.HttpResponse:
        await asyncio.sleep(3)
        return func.HttpResponse("too late")

    @app.route(route="binding", methods=["GET"])
    @app.durable_client_input(client_name="client")
    async def binding(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        listed = await client.get_status_all()
        status_url = client.create_http_management_payload("i1")["statusQueryGetUri"]
        return func.HttpResponse(json.dumps({"instances": len(listed), "status_url": status_url}))

    @app.orchestration_trigger(context_name="context")
    def idle(context: df.DurableOrchestrationContext) -> Any:
        return (yield context.wait_for_external_event("never"))

    return app


@dataclass
class Served:
    base: str
    rpc_base: str
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, str, bytes]:
        """Status, content type and body; `path` is sent exactly as written (percent-escapes kept)."""
        url = URL(self.base + path, encoded=True)
        async with self.session.request(method, url, **kwargs) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.read()


@asynccontextmanager
async def _serving(database_url: str, options: HostOptions | None = None) -> AsyncIterator[Served]:
    port = free_port()
    rpc_port = options.rpc_port if options and options.rpc_port else free_port()
    runner = web.AppRunner(build_app(discover(_app()), database_url, f"http://127.0.0.1:{port}", options=options))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await web.TCPSite(runner, "127.0.0.1", rpc_port).start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Served(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{rpc_port}", session)
    finally:
        await _close_session()
        await runner.cleanup()


def _run(
    new_database: Callable[[], str], scenario: Callable[[Served], Any], options: HostOptions | None = None
) -> None:
    database_url = new_database()
    apply_migrations(database_url, DEVHOST_MIGRATIONS)

    async def main() -> None:
        async with _serving(database_url, options) as served:
            await scenario(served)

    asyncio.run(main())


def test_finding_11_routes_match_as_the_host_matches_them(new_database: Callable[[], str]) -> None:
    """Literal before parameter whatever the order, case-insensitive, trailing slash ignored, method
    mismatch and implicit HEAD are the host's empty 404 (`HttpMethodRouteConstraint`); Kestrel's
    `UrlDecoder` refuses a NUL in the path with an empty 400."""

    async def scenario(host: Served) -> None:
        assert await host.call("GET", "/api/conversations/stats") == (200, "text/plain; charset=utf-8", b"stats")
        status, _, body = await host.call("GET", "/API/Conversations/c-1/")
        assert (status, json.loads(body)) == (200, {"id": "c-1"})
        assert await host.call("POST", "/api/conversations/c-1") == (404, "", b"")
        assert (await host.call("HEAD", "/api/conversations/c-1"))[0] == 404
        assert (await host.call("GET", "/api/nothing/here"))[:3:2] == (404, b"")
        assert await host.call("GET", "/api/conversations/a%00b") == (400, "", b"")  # Kestrel refuses a NUL

    _run(new_database, scenario)


def test_finding_11_requests_reach_the_function_as_the_host_passes_them(new_database: Callable[[], str]) -> None:
    """`ToRpcHttp`: query keys joined with "," (empties dropped), header keys lowercased, repeats joined,
    `req.url` rebuilt from X-Forwarded-Proto/Host; JSON responses get no charset (only text/* does)."""

    async def scenario(host: Served) -> None:
        headers = [
            ("X-Dup", "one"),
            ("X-Dup", "two"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "voice.example.org"),
        ]
        status, content_type, body = await host.call("GET", "/api/echo?a=1&a=&a=2&b=", headers=headers)
        seen = json.loads(body)
        assert (status, content_type) == (200, "application/json")
        assert seen["params"] == {"a": "1,2"}
        assert seen["headers"]["x-dup"] == "one,two"
        assert seen["url"] == "https://voice.example.org/api/echo?a=1&a=&a=2&b="
        forged = [("X-Forwarded-Proto", "javascript"), ("X-Forwarded-Host", "evil.example/x?")]
        _, _, body = await host.call("GET", "/api/echo", headers=forged)
        assert json.loads(body)["url"] == f"{host.base}/api/echo"  # malformed forwarding headers are ignored

    _run(new_database, scenario)


def test_finding_11_a_chunked_body_arrives_empty_as_on_the_host(new_database: Callable[[], str]) -> None:
    """The host passes a body only when Content-Length > 0."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": '
        yield b'"hello"}'

    async def scenario(host: Served) -> None:
        _, _, sized = await host.call("POST", "/api/echo", data=b'{"text": "hello"}')
        assert json.loads(sized)["body"] == '{"text": "hello"}'
        _, _, chunked = await host.call("POST", "/api/echo", data=chunks())
        assert json.loads(chunked)["body"] == ""

    _run(new_database, scenario)


def test_finding_11_a_request_past_azures_230_s_limit_is_cut_with_a_json_504(new_database: Callable[[], str]) -> None:
    """Azure's front end ends any HTTP request at 230 s (here scaled down to 0.5 s)."""

    async def scenario(host: Served) -> None:
        status, content_type, body = await host.call("GET", "/api/slow")
        assert (status, content_type) == (504, "application/json; charset=utf-8")
        assert json.loads(body)["error"]["code"] == "gateway_timeout"

    _run(
        new_database, scenario, HostOptions(limits=HttpLimits(function_timeout_seconds=60, response_limit_seconds=0.5))
    )


def test_function_timeout_from_host_json_ends_an_http_function(new_database: Callable[[], str]) -> None:
    async def scenario(host: Served) -> None:
        status, _, body = await host.call("GET", "/api/slow")
        assert (status, json.loads(body)["error"]["code"]) == (500, "function_timeout")

    _run(
        new_database, scenario, HostOptions(limits=HttpLimits(function_timeout_seconds=0.5, response_limit_seconds=60))
    )


def test_finding_4_and_12_bad_ids_and_methods_on_the_durable_api_get_a_json_4xx(
    new_database: Callable[[], str],
) -> None:
    """NUL, non-UTF-8 escapes and over-long ids (the extension allows 256 characters) are refused
    before any work; a method the API does not serve and an unknown route are JSON 404s."""

    async def scenario(host: Served) -> None:
        cases = [
            ("DELETE", f"{DURABLE}/instances/%00", 400),
            ("GET", f"{DURABLE}/instances/%FF%FE", 400),
            ("GET", f"{DURABLE}/instances/{'x' * 257}", 400),
            ("POST", f"{DURABLE}/instances/abc/terminate?reason=a%00b", 400),
            ("POST", f"{DURABLE}/instances/abc/raiseEvent/go%0A", 400),
            ("PUT", f"{DURABLE}/instances/abc", 404),
            ("GET", "/devhost/nothing", 404),
        ]
        for method, path, expected in cases:
            status, content_type, body = await host.call(method, path)
            assert (status, content_type) == (expected, "application/json; charset=utf-8"), (method, path, body)
            assert set(json.loads(body)["error"]) == {"code", "message"}
        assert (await host.call("GET", f"{DURABLE}/instances/{'x' * 256}"))[0] == 404  # the extension's empty 404
        status, _, body = await host.call("POST", f"{DURABLE}/orchestrators/idle/i-1", data=b"{not json")
        assert (status, json.loads(body)["error"]["code"]) == (400, "bad_request")
        status, _, body = await host.call("POST", f"{DURABLE}/orchestrators/idle/i-2", data=b'"\\u0000"')
        assert (status, json.loads(body)["error"]["code"]) == (400, "bad_request")

    _run(new_database, scenario)


def test_finding_12_beyond_loopback_the_devhosts_routes_need_the_host_key(new_database: Callable[[], str]) -> None:
    """The host requires its system key on the Durable webhooks (`x-functions-key` or `code`); the
    binding's URLs carry `code=`; the SDK client's loopback `rpcBaseUrl` needs none; app routes are open."""
    key = "test-system-key"
    rpc_port = free_port()

    async def scenario(host: Served) -> None:
        for path in (f"{DURABLE}/instances", "/devhost/instances/x"):
            status, _, body = await host.call("GET", path)
            assert (status, json.loads(body)["error"]["code"]) == (401, "unauthorized")
        assert (await host.call("GET", f"{DURABLE}/instances", headers={"x-functions-key": "wrong"}))[0] == 401
        assert (await host.call("GET", f"{DURABLE}/instances", headers={"x-functions-key": key}))[0] == 200
        assert (await host.call("GET", f"{DURABLE}/instances?code={key}"))[0] == 200
        async with host.session.get(f"{host.rpc_base}{DURABLE}/instances") as on_rpc_socket:
            assert on_rpc_socket.status == 200
        status, _, body = await host.call("GET", "/api/binding")
        assert status == 200, body
        assert json.loads(body)["status_url"].endswith(f"&code={key}")

    _run(new_database, scenario, HostOptions(system_key=key, rpc_port=rpc_port))
