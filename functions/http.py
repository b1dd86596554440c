"""HTTP helpers shared by the blueprints: JSON responses and the one place errors become responses."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

import azure.functions as func

from shared.errors import ApiError

log = logging.getLogger(__name__)

P = ParamSpec("P")


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
    """Map ApiError to its JSON 4xx/504 and anything unexpected to a logged JSON 500."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
        try:
            return await handler(*args, **kwargs)
        except ApiError as error:
            return error_response(error.status, error.code, error.message)
        except Exception:
            log.exception("unhandled error in %s", handler.__name__)
            return error_response(500, "internal_error", "Something went wrong on our side.")

    return wrapper


def origin(req: func.HttpRequest, public_base_url: str) -> str:
    """Scheme and host the client used (or the configured public one), for absolute URLs."""
    if public_base_url:
        return public_base_url.rstrip("/")
    scheme, _, rest = req.url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
