"""A fake managed identity endpoint, as Azure App Service and Azure Functions serve it to the app.

The platform sets IDENTITY_ENDPOINT and IDENTITY_HEADER; azure-identity (through MSAL) then asks
`GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<audience>&client_id=<id>` with the header
`X-IDENTITY-HEADER`, and reads `{"access_token", "expires_on" (epoch seconds, a string), "resource",
"token_type", "client_id"}` (learn.microsoft.com/azure/app-service/overview-managed-identity, "REST
endpoint reference"; msal's `_obtain_token_on_app_service`). A wrong header or client id is refused with
the platform's `{"statusCode", "message"}` body.

Tokens are real JWTs carrying the claims the clients read: `oid` (Redis's user name), `xms_mirid` (the
identity's resource id, whose last segment is its name: azure-postgresql-auth's user name), `aud`, `iat`
and `exp` (redis-entraid renews at 70 % of exp - iat). `on_issue(audience, token)` runs before a token is
answered: tests make it the password of a Postgres role or a Redis ACL user, so only the latest token the
endpoint issued logs in.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
from aiohttp import web

from tests.fakes.loopback import LoopbackFake

IDENTITY_RESOURCE_GROUP = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-test"


@dataclass
class FakeManagedIdentity(LoopbackFake):
    """`with FakeManagedIdentity() as identity:`; `identity.environment()` is what the platform would set."""

    _thread_name = "fake-managed-identity"

    name: str = "id-voice-test"
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    lifetime_seconds: int = 60
    on_issue: Callable[[str, str], None] | None = None
    issued: list[tuple[str, str]] = field(default_factory=list)
    """(audience, token) of every token answered, in order."""
    _header: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    _signing_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def environment(self) -> dict[str, str]:
        return {
            "IDENTITY_ENDPOINT": f"{self.url}/msi/token",
            "IDENTITY_HEADER": self._header,
            "AZURE_CLIENT_ID": self.client_id,
        }

    def tokens_for(self, audience: str) -> list[str]:
        with self._lock:
            return [token for issued_for, token in self.issued if issued_for == audience]

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/msi/token", self._token)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        query = request.query
        if request.headers.get("X-IDENTITY-HEADER") != self._header:
            return _refused(400, "the X-IDENTITY-HEADER header is missing or wrong")
        if query.get("api-version") != "2019-08-01" or not query.get("resource"):
            return _refused(400, "api-version 2019-08-01 and resource are required")
        if query.get("client_id", self.client_id) != self.client_id:
            return _refused(400, "no user-assigned identity with that client id is assigned to this app")
        audience = query["resource"]
        now = int(time.time())
        expires_on = now + self.lifetime_seconds
        claims = {
            "aud": audience,
            "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000001/",
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "oid": self.object_id,
            "appid": self.client_id,
            "jti": secrets.token_urlsafe(8),
            "xms_mirid": f"{IDENTITY_RESOURCE_GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
            f"{self.name}",
        }
        token = jwt.encode(claims, self._signing_key, algorithm="HS256")
        if self.on_issue is not None:
            self.on_issue(audience, token)
        with self._lock:
            self.issued.append((audience, token))
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": audience,
                "token_type": "Bearer",
                "client_id": self.client_id,
            }
        )


def _refused(status: int, message: str) -> web.Response:
    return web.json_response({"statusCode": status, "message": message}, status=status)
