"""HTTP helpers shared by the blueprints: JSON responses and the one place errors become responses."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

import azure.functions as func

from shared.errors import ApiError
from shared.tenancy import DEMO_TENANT, tenant_scope

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


def error_response(status: int, code: str, message: str) -> func.HttpResponse:
    return json_response({"error": {"code": code, "message": message}}, status)


def json_errors(
    handler: Callable[P, Awaitable[func.HttpResponse]],
) -> Callable[P, Awaitable[func.HttpResponse]]:
    """Map ApiError to its JSON 4xx/504 and anything unexpected to a logged JSON 500; every response,
    errors included, carries the security headers (and JSON is never cached)."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
        try:
            with tenant_scope(DEMO_TENANT):  # interim, until authentication sets the caller's tenant
                response = await handler(*args, **kwargs)
        except ApiError as error:
            response = error_response(error.status, error.code, error.message)
        except Exception:
            log.exception("unhandled error in %s", handler.__name__)
            response = error_response(500, "internal_error", "Something went wrong on our side.")
        return secured(response)

    return wrapper


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
