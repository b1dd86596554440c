"""Who is calling: every guarded route names one scope, and this is the only place that checks it.

A request presents either `X-API-Key` (services) or `Authorization: Bearer <JWT>` (people signed in
with Entra External ID or B2C); both at once is refused rather than guessed at. The principal must
hold the route's scope (`shared.security.roles.allows`), and the handler then runs inside the
principal's tenant, so storage sees that tenant's rows only. `current_principal()` tells a handler who
it is serving, `current_actor()` names it for audit entries and `created_by`.

Provider webhooks do not come through here: they carry their vendor's signature instead, and count
against their own per-address limit (`check_webhook_address`).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, ParamSpec

import azure.functions as func

from functions.http import request_of
from shared.errors import BadRequest, Forbidden, Unauthorized
from shared.security.client_ip import client_ip
from shared.security.roles import Principal, Scope, require
from shared.tenancy import tenant_scope

if TYPE_CHECKING:
    from shared.services import Services

P = ParamSpec("P")
Handler = Callable[P, Awaitable[func.HttpResponse]]

_NUMBER = re.compile(r"[0-9]{1,9}")
API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"


def services() -> Services:
    from shared.services import services

    return services()


_principal: ContextVar[Principal | None] = ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The caller of the guarded handler running now."""
    principal = _principal.get()
    if principal is None:
        raise RuntimeError("current_principal() outside a guarded handler")
    return principal


def current_actor() -> str:
    """The caller as `created_by` columns and audit entries name it: `api_key:<id>` or `user:<sub>`."""
    principal = current_principal()
    return f"{principal.kind}:{principal.subject}"


async def authenticate(req: func.HttpRequest) -> Principal:
    """The principal of the request's credentials, or `Unauthorized` (401) / `ServiceUnavailable` (503)."""
    svc = services()
    api_key = req.headers.get(API_KEY_HEADER)
    authorization = req.headers.get(AUTHORIZATION_HEADER)
    if api_key is not None and authorization is not None:
        raise BadRequest("Send either X-API-Key or Authorization, not both.", code="ambiguous_credentials")
    if api_key is not None:
        return await asyncio.to_thread(svc.api_keys.verify, api_key)
    if authorization is None:
        raise Unauthorized("This needs an X-API-Key header or an Authorization: Bearer token.", code="unauthenticated")
    principal = await asyncio.to_thread(svc.tokens.principal, authorization)
    with tenant_scope(principal.tenant):
        known = await asyncio.to_thread(svc.tenants.current_exists)
    if not known:
        raise Forbidden("Your organisation has no account here.", code="unknown_tenant")
    return principal


def guarded(scope: Scope) -> Callable[[Handler[P]], Handler[P]]:
    """Count the request against its client address's rate limit, authenticate, count it against the
    key's and the tenant's, require `scope`, then run the handler as the caller in the caller's tenant.

    Goes under `json_errors`, so a refusal is the usual JSON error (401 with a `WWW-Authenticate`
    challenge, 403 naming the missing permission). The handler keeps `required_scope`, which the
    OpenAPI catalogue's test checks against what the document says.
    """

    def decorate(handler: Handler[P]) -> Handler[P]:
        @functools.wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
            req = request_of(args, kwargs)
            limiter = services().rate_limits
            await _check_address(req)
            principal = await authenticate(req)
            key_id = principal.subject if principal.kind == "api_key" else None
            await limiter.check(key_id=key_id, tenant=principal.tenant)
            require(principal, scope)
            token = _principal.set(principal)
            try:
                with tenant_scope(principal.tenant):
                    return await handler(*args, **kwargs)
            finally:
                _principal.reset(token)

        wrapper.required_scope = scope  # type: ignore[attr-defined]
        return wrapper

    return decorate


def guarded_or_signed(scope: Scope) -> Callable[[Handler[P]], Handler[P]]:
    """`guarded(scope)`, or a `token` query parameter signed for exactly this audio (route parameters
    `conversation_id`, `turn` and optionally `sentence`): a browser's `<audio>` and a phone provider's
    `<Play>` fetch links and cannot send our headers. A signed fetch counts against its client address
    and its conversation's audio, never against the tenant's own limit (a leaked link cannot spend it)."""

    def decorate(handler: Handler[P]) -> Handler[P]:
        with_credentials = guarded(scope)(handler)

        @functools.wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
            req = request_of(args, kwargs)
            token = req.params.get("token")
            if token is None:
                return await with_credentials(*args, **kwargs)
            await _check_address(req)
            tenant = _signed_tenant(token, req.route_params)
            await services().rate_limits.check(audio_link=f"{tenant}/{req.route_params.get('conversation_id', '')}")
            with tenant_scope(tenant):
                return await handler(*args, **kwargs)

        wrapper.required_scope = scope  # type: ignore[attr-defined]
        return wrapper

    return decorate


async def _check_address(req: func.HttpRequest, *, webhook: bool = False) -> None:
    address = client_ip(req.headers, services().settings.trusted_proxy_hops)
    await services().rate_limits.check(ip=address, unknown_address=address is None, webhook=webhook)


async def check_webhook_address(req: func.HttpRequest) -> None:
    """Count a phone provider's webhook against its sending address (RATE_LIMIT_PER_WEBHOOK_IP) before
    its signature is checked: a flood is refused (429 with Retry-After) at the cost of one Redis call."""
    await _check_address(req, webhook=True)


def _signed_tenant(token: str, route: Mapping[str, str]) -> str:
    from shared.security.signed_urls import InvalidAudioUrl

    signer = services().audio_urls
    turn, sentence = route.get("turn", ""), route.get("sentence")
    if signer is None or not _NUMBER.fullmatch(turn) or not (sentence is None or _NUMBER.fullmatch(sentence)):
        raise InvalidAudioUrl
    return signer.verify(
        token,
        conversation_id=route.get("conversation_id", ""),
        turn=int(turn),
        sentence=None if sentence is None else int(sentence),
    )
