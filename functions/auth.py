"""Who is calling: every guarded route names one scope, and this is the only place that checks it.

A request presents either `X-API-Key` (services) or `Authorization: Bearer <JWT>` (people signed in
with Entra External ID or B2C); both at once is refused rather than guessed at. The principal must
hold the route's scope (`shared.security.roles.allows`), and the handler then runs inside the
principal's tenant, so storage sees that tenant's rows only. `current_principal()` tells a handler who
it is serving (audit, `created_by`).

Provider webhooks do not come through here: they carry their vendor's signature instead.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import ParamSpec

import azure.functions as func

from shared.errors import BadRequest, Unauthorized
from shared.security.roles import Principal, Scope, require
from shared.tenancy import tenant_scope

P = ParamSpec("P")
Handler = Callable[P, Awaitable[func.HttpResponse]]

API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"

_principal: ContextVar[Principal | None] = ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The caller of the guarded handler running now."""
    principal = _principal.get()
    if principal is None:
        raise RuntimeError("current_principal() outside a guarded handler")
    return principal


async def authenticate(req: func.HttpRequest) -> Principal:
    """The principal of the request's credentials, or `Unauthorized` (401) / `ServiceUnavailable` (503)."""
    from shared.services import services

    svc = services()
    api_key = req.headers.get(API_KEY_HEADER)
    authorization = req.headers.get(AUTHORIZATION_HEADER)
    if api_key is not None and authorization is not None:
        raise BadRequest("Send either X-API-Key or Authorization, not both.", code="ambiguous_credentials")
    if api_key is not None:
        return await asyncio.to_thread(svc.api_keys.verify, api_key)
    if authorization is None:
        raise Unauthorized("This needs an X-API-Key header or an Authorization: Bearer token.", code="unauthenticated")
    return await asyncio.to_thread(svc.tokens.principal, authorization)


def _request(args: tuple[object, ...], kwargs: dict[str, object]) -> func.HttpRequest:
    """The trigger's request among the handler's arguments (the worker passes bindings by name)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, func.HttpRequest):
            return value
    raise TypeError("a guarded handler needs an HTTP request argument")


def guarded(scope: Scope) -> Callable[[Handler[P]], Handler[P]]:
    """Authenticate, require `scope`, then run the handler as the caller in the caller's tenant.

    Goes under `json_errors`, so a refusal is the usual JSON error (401 with a `WWW-Authenticate`
    challenge, 403 naming the missing permission). The handler keeps `required_scope`, which the
    OpenAPI catalogue's test checks against what the document says.
    """

    def decorate(handler: Handler[P]) -> Handler[P]:
        @functools.wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
            principal = await authenticate(_request(args, kwargs))
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
