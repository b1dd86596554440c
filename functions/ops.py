"""Operations: liveness (health), readiness (every dependency, with its latency) and metrics.

Health and readiness are anonymous, for load balancers and probes that cannot hold a key; they name a
failure's kind (`ConnectionError`), never its text (host names, addresses), which goes to the log.
Readiness also checks that each configured provider answers HTTP at all (no credentials are sent, so
nothing is spent or leaked); those checks are reused for PROVIDER_CHECK_SECONDS, so anonymous callers
cannot make the app call its providers faster than that. Metrics need the `metrics:read` scope and the
operator's tenant (OPERATOR_TENANT): they cover every tenant, so no other tenant may read them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import azure.functions as func

from functions.auth import current_principal, guarded
from functions.http import json_errors, json_response, model_response
from shared.api_models import Readiness
from shared.errors import Forbidden
from shared.security.roles import Scope

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.services import Services

bp = func.Blueprint()
log = logging.getLogger(__name__)

PROVIDER_TIMEOUT_SECONDS = 2.0
PROVIDER_CHECK_SECONDS = 30.0
Check = dict[str, object]


def _postgres(svc: Services) -> None:
    from shared.storage.postgres import ping

    ping(svc.pool)


def _redis(svc: Services) -> None:
    svc.redis.ping()


def _blob(svc: Services) -> None:
    svc.audio.ping()


PROBES: dict[str, Callable[[Services], None]] = {"postgres": _postgres, "redis": _redis, "blob": _blob}


def _check(probe: Callable[[Services], None], svc: Services) -> Check:
    """Run one probe; any failure (even building the client) is reported, never raised."""
    started = time.perf_counter()
    try:
        probe(svc)
    except Exception as error:
        # Anonymous callers see only the kind of failure; its text (host names, addresses) goes to the log.
        log.warning("health: %s failed: %s", getattr(probe, "__name__", "probe"), error)
        return {"ok": False, "error": type(error).__name__, "ms": _ms(started)}
    return {"ok": True, "ms": _ms(started)}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _stores(svc: Services) -> dict[str, Check]:
    results = await asyncio.gather(*(asyncio.to_thread(_check, probe, svc) for probe in PROBES.values()))
    return dict(zip(PROBES, results, strict=True))


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
async def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared.services import services

    checks = await _stores(services())
    healthy = all(check["ok"] for check in checks.values())
    return json_response({"status": "ok" if healthy else "degraded", "checks": checks}, 200 if healthy else 503)


def provider_origins(settings: Settings) -> dict[str, str | None]:
    """Every provider the app can use, and the origin it calls when configured (None when it is not)."""
    openai = bool(settings.openai_api_key.get_secret_value() or settings.openai_base_url)
    azure_openai = bool(settings.azure_openai_endpoint and settings.azure_openai_chat_deployment)
    return {
        "azure_openai": settings.azure_openai_endpoint if azure_openai else None,
        "openai": (settings.openai_base_url or "https://api.openai.com/v1") if openai else None,
        "sarvam": settings.sarvam_base_url if settings.sarvam_api_key.get_secret_value() else None,
        "azure_search": settings.azure_search_endpoint or None,
    }


class _ProviderChecks:
    """The last check of each provider, reused for PROVIDER_CHECK_SECONDS (one event loop per worker)."""

    def __init__(self) -> None:
        self._checked: dict[str, tuple[float, Check]] = {}

    async def check(self, name: str, origin: str | None) -> Check:
        if origin is None:
            return {"configured": False}
        last = self._checked.get(name)
        if last is not None and time.monotonic() - last[0] < PROVIDER_CHECK_SECONDS:
            return last[1]
        result = await _reach(name, origin)
        self._checked[name] = (time.monotonic(), result)
        return result


async def _reach(name: str, origin: str) -> Check:
    """Whether the provider answers HTTP at all (any status: 401 without a key still means reachable)."""
    import httpx

    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT_SECONDS, follow_redirects=False) as client:
            await client.get(origin)
    except Exception as error:
        log.warning("ready: provider %s unreachable: %s", name, error)
        return {"configured": True, "ok": False, "error": type(error).__name__, "ms": _ms(started)}
    return {"configured": True, "ok": True, "ms": _ms(started)}


_providers = _ProviderChecks()


@bp.route(route="ready", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
async def ready(req: func.HttpRequest) -> func.HttpResponse:
    """`ready` (200) when every store answers and every configured provider is reachable; `degraded`
    (200) when a provider is not (a fallback answers); `unavailable` (503) when a store does not."""
    from shared.services import services

    svc = services()
    origins = provider_origins(svc.settings)
    stores, providers = await asyncio.gather(
        _stores(svc), asyncio.gather(*(_providers.check(name, origin) for name, origin in origins.items()))
    )
    checked = dict(zip(origins, providers, strict=True))
    if not all(check["ok"] for check in stores.values()):
        status, code = "unavailable", 503
    elif not all(check.get("ok", True) for check in checked.values()):
        status, code = "degraded", 200
    else:
        status, code = "ready", 200
    return model_response(Readiness.model_validate({"status": status, "checks": stores, "providers": checked}), code)


@bp.route(route="metrics", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.METRICS_READ)
async def metrics(req: func.HttpRequest) -> func.HttpResponse:
    """This worker process's metrics in the Prometheus text format (each worker keeps its own), for the
    operator's tenant only: the figures carry no tenant label (a label per tenant would grow without bound
    in every backend), so they are the whole deployment's and no tenant may see another's."""
    from shared import telemetry
    from shared.services import services

    operator = services().settings.operator_tenant
    if not operator or current_principal().tenant != operator:
        raise Forbidden(
            "Metrics cover every tenant of the deployment: only the operator's tenant (OPERATOR_TENANT) reads them.",
            code="operator_only",
        )

    body, content_type = telemetry.prometheus_text()
    return func.HttpResponse(body, status_code=200, headers={"Content-Type": content_type})
