"""Serves the app's HTTP-triggered functions under the route prefix, the way the Functions host does.

Routing follows `devhost.routing`. The request reaches the function as the host hands it to the
Python worker (team notes, durable-local-host.md §12; azure-functions-host `ToRpcHttp`):
- `req.url` is `{scheme}://{host}{path}{query}`, scheme and host taken from `X-Forwarded-Proto` /
  `X-Forwarded-Host` when a proxy sets them (App Service terminates TLS in front of the host);
- header keys are lowercased; repeated headers and repeated query keys are joined with "," with
  empty values dropped (`StringValues.ToString()`), and a key left empty is dropped;
- the body is passed only when `Content-Length` > 0: a chunked upload arrives empty;
- `X-Forwarded-For` gets the peer's address appended (`ip:port`, `[ipv6]:port`), as App Service's
  front end does, so the client-address rate limit works here as on Azure;
- a response gets `; charset=...` only for `text/*` (azure-functions `http.py`).
Unmatched routes and methods get the host's empty 404; a NUL in the path gets Kestrel's empty 400.
A function is cut at host.json's functionTimeout (500) and the caller at Azure's 230 s front-end
limit (504), whichever comes first; past 230 s the function runs on until functionTimeout, as on Azure.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions.http import HttpResponseConverter
from multidict import CIMultiDict

from devhost import invocation
from devhost.registry import HttpFunction
from devhost.routing import RouteTable, path_segments

log = logging.getLogger("devhost.http")

_SCHEME = re.compile(r"https?", re.IGNORECASE)
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")


@dataclass(frozen=True)
class HttpLimits:
    function_timeout_seconds: float
    """host.json's functionTimeout: the function is cancelled there (the host answers 500)."""
    response_limit_seconds: float
    """Azure's front end answers 504 there, whatever the function still does."""


def joined(pairs: Iterable[tuple[str, str]], lower_keys: bool) -> dict[str, str]:
    """Repeated keys joined with "," as ASP.NET `StringValues.ToString()` does: empty values skipped,
    keys left with nothing dropped (the host adds only non-empty values to the worker's request)."""
    values: dict[str, list[str]] = defaultdict(list)
    for key, value in pairs:
        values[key.lower() if lower_keys else key].append(value)
    return {key: ",".join(v for v in vs if v) for key, vs in values.items() if any(vs)}


def _forwarded(request: web.Request, header: str, valid: re.Pattern[str], default: str) -> str:
    """The first value a proxy put in `header`, if it is well formed."""
    value = request.headers.get(header, "").split(",")[0].strip()
    return value if valid.fullmatch(value) else default


def request_url(request: web.Request) -> str:
    """The URL the caller used, as the host rebuilds it behind App Service's TLS-terminating front end."""
    scheme = _forwarded(request, "X-Forwarded-Proto", _SCHEME, request.scheme)
    host = _forwarded(request, "X-Forwarded-Host", _HOST, request.host)
    return f"{scheme}://{host}{request.raw_path}"


def to_aiohttp(response: func.HttpResponse) -> web.Response:
    """The response as the worker encodes it for the host (`HttpResponseConverter`): charset added to
    text/* only, every Set-Cookie kept."""
    datum = HttpResponseConverter.encode(response, expected_type=None)
    headers: CIMultiDict[str] = CIMultiDict((name, value.value) for name, value in datum.value["headers"].items())
    for cookie in datum.value["cookies"] or []:
        for morsel in cookie.values():
            headers.add("Set-Cookie", morsel.OutputString())
    status = int(datum.value["status_code"].value)
    return web.Response(status=status, body=datum.value["body"].value, headers=headers)


def _timeout_response(limits: HttpLimits) -> web.Response:
    if limits.response_limit_seconds <= limits.function_timeout_seconds:
        return web.json_response(
            {
                "error": {
                    "code": "gateway_timeout",
                    "message": f"No response within {limits.response_limit_seconds:g} s: Azure's front end "
                    "ends every HTTP request there.",
                }
            },
            status=504,
        )
    return web.json_response(
        {
            "error": {
                "code": "function_timeout",
                "message": "The function ran past host.json's functionTimeout "
                f"({limits.function_timeout_seconds:g} s).",
            }
        },
        status=500,
    )


def forwarded_for(request: web.Request) -> list[tuple[str, str]]:
    """The peer as App Service's front end appends it to `X-Forwarded-For` (nothing on a unix socket)."""
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    if not isinstance(peer, tuple) or len(peer) < 2:
        return []
    host, port = str(peer[0]), int(peer[1])
    return [("X-Forwarded-For", f"[{host}]:{port}" if ":" in host else f"{host}:{port}")]


class HttpFunctions:
    """The app's HTTP functions behind one catch-all aiohttp route."""

    def __init__(self, functions: list[HttpFunction], route_prefix: str, client_binding: str, limits: HttpLimits):
        self._table: RouteTable[HttpFunction] = RouteTable()
        for function in functions:
            self._table.add(f"{route_prefix}/{function.route}", function.methods, function)
        self._client_binding = client_binding
        self._limits = limits
        self._running: set[asyncio.Task[Any]] = set()

    async def _call(self, function: HttpFunction, request: func.HttpRequest) -> func.HttpResponse:
        kwargs: dict[str, Any] = {function.request_arg: request}
        if function.client_arg is not None:
            kwargs[function.client_arg] = self._client_binding
        context = invocation.context(function.name, request.headers)
        if function.takes_context:
            kwargs["context"] = context
        if inspect.iscoroutinefunction(function.handler):
            invocation.attach_when_enabled(context)  # this task's context only, as the worker's
        if inspect.iscoroutinefunction(function.handler):
            result = await function.handler(**kwargs)
        else:
            result = await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(function.handler, **kwargs)
            )
        if not isinstance(result, func.HttpResponse):
            raise TypeError(f"function {function.name} returned {type(result).__name__}, not an HttpResponse")
        return result

    def _cancel_at_function_timeout(self, task: asyncio.Task[Any], started: float) -> None:
        """Past the front end's limit the function runs on, until functionTimeout, as on Azure."""
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        remaining = self._limits.function_timeout_seconds - (time.monotonic() - started)
        if remaining == float("inf"):
            return
        asyncio.get_running_loop().call_later(max(0.0, remaining), task.cancel)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        segments = path_segments(request.raw_path)
        if any("\x00" in segment for segment in segments):
            return web.Response(status=400)  # Kestrel: "The path contains null characters", an empty 400
        found = self._table.find(request.method, segments)
        if found is None:
            return web.Response(status=404)
        function, route_params = found
        body = await request.read() if (request.content_length or 0) > 0 else b""
        http_request = func.HttpRequest(
            request.method,
            request_url(request),
            headers=joined([*request.headers.items(), *forwarded_for(request)], lower_keys=True),
            params=joined(request.query.items(), lower_keys=False),
            route_params=route_params,
            body=body,
        )
        task = asyncio.ensure_future(self._call(function, http_request))
        limit = min(self._limits.function_timeout_seconds, self._limits.response_limit_seconds)
        try:
            done, _ = await asyncio.wait({task}, timeout=None if limit == float("inf") else limit)
        except asyncio.CancelledError:
            task.cancel()  # the caller went away
            raise
        if task in done:
            try:
                response = to_aiohttp(task.result())
            except Exception:
                log.exception("%s %s: function %s raised", request.method, request.path, function.name)
                response = web.json_response(
                    {"error": {"code": "internal_error", "message": "The function raised an exception."}}, status=500
                )
        else:
            log.warning("%s %s: function %s timed out after %.0f s", request.method, request.path, function.name, limit)
            if self._limits.function_timeout_seconds <= self._limits.response_limit_seconds:
                task.cancel()
            else:
                self._cancel_at_function_timeout(task, started)
            response = _timeout_response(self._limits)
        log.info(
            "%s %s -> %d (%s, %.0f ms)",
            request.method,
            request.path_qs,
            response.status,
            function.name,
            (time.monotonic() - started) * 1000,
        )
        return response
