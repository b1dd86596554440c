"""The devhost's web server: the app's HTTP functions, the Durable management API, a debug view.

Middleware keeps every answer of the devhost's own routes JSON: bad ids, bad methods and unhandled
exceptions get a JSON 4xx/5xx, never aiohttp's text page or a crash. Instance ids follow the Durable
extension's rule (at most 256 characters, no control characters: `DurableClient` validation).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web
from aiohttp.typedefs import Middleware
from azure.durable_functions.models.utils.http_utils import _close_session
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from devhost import access, hostjson, management, web_page
from devhost.engine import Engine
from devhost.faults import Faults
from devhost.http_triggers import HttpFunctions, HttpLimits
from devhost.registry import Registry

log = logging.getLogger("devhost")

MAX_BODY_BYTES = 100 * 1024 * 1024
"""The Functions host's own request limit; the app enforces its smaller one with a JSON 413."""

DEVHOST_LOCK_ID = 70710001
"""Postgres advisory lock held while a devhost owns a database, so two never share one."""

MAX_ID_CHARS = 256
"""The Durable extension refuses instance ids longer than this."""

MAX_QUERY_CHARS = 4096
"""Azure Functions' query string limit."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class HostOptions:
    """How this devhost presents itself; the defaults are a loopback devhost with the repo's host.json."""

    route_prefix: str = "api"
    limits: HttpLimits = field(
        default_factory=lambda: HttpLimits(
            hostjson.DEFAULT_FUNCTION_TIMEOUT_SECONDS, hostjson.HTTP_RESPONSE_LIMIT_SECONDS
        )
    )
    system_key: str | None = None
    """Asked on the devhost's own routes when set (bound beyond loopback)."""
    rpc_port: int | None = None
    """The loopback listener the SDK client uses (`rpcBaseUrl`); needed with a system key."""


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _input_problem(request: web.Request) -> str | None:
    """Why a request to a devhost route cannot be served (ids, query), before any work starts."""
    raw_path, _, raw_query = request.raw_path.partition("?")
    try:
        path = unquote(raw_path, errors="strict")
        query = parse_qsl(raw_query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return "The URL holds percent-escapes that are not UTF-8."
    if len(raw_query) > MAX_QUERY_CHARS:
        return f"The query string is longer than {MAX_QUERY_CHARS} characters."
    texts = [path, *(part for pair in query for part in pair)]
    if any(ord(c) < 32 or ord(c) == 127 for text in texts for c in text):
        return "The URL holds control characters (NUL included)."
    if any(len(segment) > MAX_ID_CHARS for segment in path.split("/")):
        return f"An id in the path is longer than {MAX_ID_CHARS} characters."
    return None


def _holds_nul(body: bytes) -> bool:
    """A NUL in the body or in any string its JSON decodes to (`\\u0000`), not merely the text `\\u0000`."""
    if b"\x00" in body:
        return True
    if b"\\u0000" not in body:
        return False
    try:
        pending: list[Any] = [json.loads(body)]
    except (ValueError, RecursionError):
        return False
    while pending:
        value = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            return True
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


@web.middleware
async def devhost_input(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad ids, queries and bodies on the devhost's routes get a JSON 400 before any work starts."""
    if not access.is_devhost_path(request.path):
        return await handler(request)
    problem = _input_problem(request)
    if problem is None and request.can_read_body and _holds_nul(await request.read()):
        problem = "The body holds a NUL character, which the task hub's store refuses."
    if problem is not None:
        return error_response(400, "bad_request", problem)
    return await handler(request)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HTTP errors and unhandled exceptions as JSON; a client's malformed body is a 400, not a 500."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = error.reason.lower().replace(" ", "_")
        return error_response(error.status, code, f"{error.reason}: {request.method} {request.path}")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        if not access.is_devhost_path(request.path):
            raise
        return error_response(400, "bad_request", f"The body is not valid JSON text: {error}")
    except Exception:
        log.exception("%s %s: unhandled", request.method, request.path)
        return error_response(500, "internal_error", "The devhost failed on this request; see its log.")


def build_app(
    registry: Registry,
    database_url: str,
    base_url: str,
    faults: Faults | None = None,
    options: HostOptions | None = None,
) -> web.Application:
    options = options or HostOptions()
    pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
        database_url, min_size=2, max_size=10, kwargs={"row_factory": dict_row, "autocommit": True}, open=False
    )
    engine = Engine(pool, registry, faults, options.limits.function_timeout_seconds)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        owner = await AsyncConnection.connect(database_url, autocommit=True)
        row = await (await owner.execute("SELECT pg_try_advisory_lock(%s)", (DEVHOST_LOCK_ID,))).fetchone()
        if row is None or not row[0]:
            await owner.close()
            raise RuntimeError("another devhost is already running on this database")
        await pool.open(wait=True)
        await engine.start()
        yield
        await engine.stop()
        await _close_session()
        await pool.close()
        await owner.close()

    async def instance(request: web.Request) -> web.Response:
        row = await engine.status(request.match_info["instance_id"])
        if row is None:
            return error_response(404, "not_found", "No such instance.")
        return web.json_response(management.status_payload(row, show_input=True, show_history=True))

    binding = management.client_binding(base_url)
    middlewares: list[Middleware] = [json_errors, web_page.page_headers]
    if options.system_key is not None:
        if options.rpc_port is None:
            raise ValueError("a devhost with a system key needs its loopback RPC port")
        rpc_base = f"http://127.0.0.1:{options.rpc_port}{management.PREFIX}/"
        binding = access.with_system_key(binding, options.system_key, rpc_base)
        middlewares.append(access.system_key_middleware(options.system_key, options.rpc_port))
    middlewares.append(devhost_input)
    http_functions = HttpFunctions(registry.http, options.route_prefix, binding, options.limits)

    async def everything_else(request: web.Request) -> web.StreamResponse:
        if access.is_devhost_path(request.path):
            return error_response(404, "not_found", f"The devhost has no route for {request.method} {request.path}.")
        return await http_functions.handle(request)

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
    app.cleanup_ctx.append(lifecycle)
    app.add_routes(management.routes(engine))
    app.add_routes([web.get("/devhost/instances/{instance_id}", instance, allow_head=False)])
    app.add_routes(web_page.routes())
    app.add_routes([web.route("*", "/{path:.*}", everything_else)])
    return app
