"""Health: is each backing service reachable from this worker, and how fast."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import azure.functions as func

from functions.http import json_errors, json_response

if TYPE_CHECKING:
    from shared.services import Services

bp = func.Blueprint()
log = logging.getLogger(__name__)


def _postgres(svc: Services) -> None:
    from shared.storage.postgres import ping

    ping(svc.pool)


def _redis(svc: Services) -> None:
    svc.redis.ping()


def _blob(svc: Services) -> None:
    svc.audio.ping()


PROBES: dict[str, Callable[[Services], None]] = {"postgres": _postgres, "redis": _redis, "blob": _blob}


def _check(probe: Callable[[Services], None], svc: Services) -> dict[str, object]:
    """Run one probe; any failure (even building the client) is reported, never raised."""
    started = time.perf_counter()
    try:
        probe(svc)
    except Exception as error:
        # Anonymous callers see only the kind of failure; its text (host names, addresses) goes to the log.
        log.warning("health: %s failed: %s", getattr(probe, "__name__", "probe"), error)
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
async def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared.services import services

    svc = services()
    results = await asyncio.gather(*(asyncio.to_thread(_check, probe, svc) for probe in PROBES.values()))
    checks = dict(zip(PROBES, results, strict=True))
    healthy = all(check["ok"] for check in checks.values())
    return json_response({"status": "ok" if healthy else "degraded", "checks": checks}, 200 if healthy else 503)
