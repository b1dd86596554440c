"""Serves the app's HTTP-triggered functions at /api/<route>, the way the Functions host does.

Each request becomes an `azure.functions.HttpRequest`; functions with a durable client binding
get the binding JSON the real host would pass, pointing at this devhost's management API.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from typing import Any

import azure.functions as func
from aiohttp import web

from devhost.registry import HttpFunction

log = logging.getLogger("devhost.http")


def _to_aiohttp(response: func.HttpResponse) -> web.Response:
    headers = dict(response.headers)
    if not any(k.lower() == "content-type" for k in headers):
        charset = (
            f"; charset={response.charset}"
            if response.mimetype.startswith("text/") or response.mimetype.endswith("json")
            else ""
        )
        headers["Content-Type"] = f"{response.mimetype}{charset}"
    return web.Response(status=response.status_code, body=response.get_body(), headers=headers)


def handler_for(function: HttpFunction, client_binding: str) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        body = await request.read()
        http_request = func.HttpRequest(
            request.method,
            str(request.url),
            headers=dict(request.headers),
            params=dict(request.query),
            route_params=dict(request.match_info),
            body=body,
        )
        kwargs: dict[str, Any] = {function.request_arg: http_request}
        if function.client_arg is not None:
            kwargs[function.client_arg] = client_binding
        try:
            if inspect.iscoroutinefunction(function.handler):
                result = await function.handler(**kwargs)
            else:
                result = await asyncio.get_running_loop().run_in_executor(
                    None, functools.partial(function.handler, **kwargs)
                )
            response = _to_aiohttp(result)
        except Exception:
            log.exception("%s %s: function %s raised", request.method, request.path, function.name)
            response = web.json_response(
                {"error": {"code": "internal_error", "message": "The function raised an exception."}}, status=500
            )
        log.info(
            "%s %s -> %d (%s, %.0f ms)",
            request.method,
            request.path_qs,
            response.status,
            function.name,
            (time.perf_counter() - started) * 1000,
        )
        return response

    return handle


def routes(functions: list[HttpFunction], client_binding: str) -> list[web.RouteDef]:
    return [
        web.route(method, function.aiohttp_path(), handler_for(function, client_binding))
        for function in functions
        for method in function.methods
    ]
