"""Health: is each backing service reachable from this worker, and how fast."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import azure.functions as func

from functions.http import json_errors, json_response
from shared.services import services
from shared.storage.postgres import ping as ping_postgres

bp = func.Blueprint()


def _check(probe: Callable[[], object]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        probe()
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
async def health(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    probes: dict[str, Callable[[], object]] = {
        "postgres": lambda: ping_postgres(svc.pool),
        "redis": lambda: svc.redis.ping(),
        "blob": lambda: svc.audio.ping(),
    }
    results = await asyncio.gather(*(asyncio.to_thread(_check, probe) for probe in probes.values()))
    checks = dict(zip(probes, results, strict=True))
    healthy = all(check["ok"] for check in checks.values())
    return json_response({"status": "ok" if healthy else "degraded", "checks": checks}, 200 if healthy else 503)
