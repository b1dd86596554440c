"""HTTP helpers shared by the blueprints: JSON responses and the one place errors become responses."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec

import azure.functions as func

from shared import telemetry
from shared.errors import ApiError

if TYPE_CHECKING:
    from pydantic import BaseModel

log = logging.getLogger(__name__)

P = ParamSpec("P")

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
"""On every response of every route: no page here loads anything, frames or leaks its address, and a
browser never guesses a type the response did not say (OWASP secure headers)."""


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(payload),
        status_code=status,
        headers=headers,
        mimetype="application/json",
    )


def model_response(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    """The model as the JSON body: what the OpenAPI document says the route answers is what it sends."""
    return json_response(model.model_dump(mode="json", by_alias=True), status, headers)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


def json_errors(
    handler: Callable[P, Awaitable[func.HttpResponse]],
) -> Callable[P, Awaitable[func.HttpResponse]]:
    """Map ApiError to its JSON 4xx/504 and anything unexpected to a logged JSON 500; every response,
    errors included, carries the security headers (and JSON is never cached). Each request is a server
    span (joining the caller's `traceparent`) and each error counts by kind."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
        req = request_of(args, kwargs)
        name = handler.__name__
        with telemetry.span(name, {"http.request.method": req.method}, kind="SERVER", headers=req.headers) as span:
            try:
                response = await handler(*args, **kwargs)
            except ApiError as error:
                telemetry.error(error.code, name)
                response = error_response(error.status, error.code, error.message, error.headers())
            except Exception as error:
                log.exception("unhandled error in %s", name)
                telemetry.error(type(error).__name__, name)
                response = error_response(500, "internal_error", "Something went wrong on our side.")
            telemetry.annotate(span, {"http.response.status_code": response.status_code})
        return with_cors(secured(response), req)

    return wrapper


def request_of(args: tuple[object, ...], kwargs: dict[str, object]) -> func.HttpRequest:
    """The trigger's request among a handler's arguments (the worker passes bindings by name)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, func.HttpRequest):
            return value
    raise TypeError("an HTTP handler needs its request argument")


def with_cors(response: func.HttpResponse, req: func.HttpRequest) -> func.HttpResponse:
    """The CORS headers for the request's `Origin` (ALLOWED_ORIGINS), errors included: a browser shows a
    script nothing of a response without them, not even a 429's Retry-After."""
    from shared.services import services

    for name, value in services().cors.response_headers(req.headers.get("origin")).items():
        response.headers[name] = value
    return response


def secured(response: func.HttpResponse) -> func.HttpResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "application/json":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def origin(req: func.HttpRequest, public_base_url: str) -> str:
    """Scheme and host the client used (or the configured public one), for absolute URLs."""
    if public_base_url:
        return public_base_url.rstrip("/")
    scheme, _, rest = req.url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
