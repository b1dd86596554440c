"""A fake OpenID provider on loopback, shaped like Entra External ID: discovery document, JWKS, real tokens.

`GET /{tenant-id}/v2.0/.well-known/openid-configuration` answers `issuer` and `jwks_uri` (on purpose
not derived from each other the way a client might guess), `GET /{tenant-id}/discovery/v2.0/keys`
the published public keys (RSA, `use: sig`, no `alg`, as Microsoft publishes them). `GET /msi/token` is
an App Service managed identity endpoint (IDENTITY_ENDPOINT, protocol 2019-08-01, as azure-identity
calls it): with the right `X-IDENTITY-HEADER` it answers a v1.0 access token of the identity for the
`resource` asked, signed by the published key, as Entra issues managed identities' tokens. `issue()` signs real
RS256 tokens with keys generated here (`cryptography`); `rotate()` publishes a new key; `forge_*` build
the classic attacks by hand, since PyJWT refuses to make them. Every fetch is counted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.fakes.loopback import LoopbackFake

TENANT_ID = "7f3c2a41-0000-4000-8000-000000000001"
AUDIENCE = "api://voice-agent-tests"
V1_ISSUER = f"https://sts.windows.net/{TENANT_ID}/"
"""The issuer of Entra's v1.0 access tokens, managed identities' included (the tenant's, whatever the host)."""
IDENTITY_HEADER = "fake-identity-header-0123456789"
SYSTEM_IDENTITY = "5a1d0c9e-0000-4000-8000-00000000c0de"
"""The object id of the identity the managed identity endpoint answers for when no client id is asked."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeOpenIdProvider(LoopbackFake):
    """`with FakeOpenIdProvider() as idp:`; `idp.config_url` is AUTH_OIDC_CONFIG_URL."""

    _thread_name = "fake-oidc"

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    """Published keys by kid; the last one added signs by default."""
    discovery_fetches: int = 0
    jwks_fetches: int = 0
    identities: dict[str, str] = field(default_factory=dict)
    """User-assigned identities the managed identity endpoint knows: client id → object id."""
    identity_tokens: list[tuple[str, str]] = field(default_factory=list)
    """(resource, object id) of every token the managed identity endpoint issued."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys["key-1"] = new_rsa_key()

    @property
    def config_url(self) -> str:
        return f"{self.url}/{TENANT_ID}/v2.0/.well-known/openid-configuration"

    @property
    def issuer(self) -> str:
        # External ID's issuer host is the tenant id, not the host the discovery document is served from.
        return f"http://{TENANT_ID}.ciamlogin.invalid/{TENANT_ID}/v2.0"

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/{TENANT_ID}/discovery/v2.0/keys"

    @property
    def signing_kid(self) -> str:
        return list(self.keys)[-1]

    def rotate(self, kid: str, *, retire: str | None = None) -> None:
        """Publish a new key (it signs from now on); optionally stop publishing an old one."""
        with self._lock:
            self.keys[kid] = new_rsa_key()
            if retire is not None:
                del self.keys[retire]

    def public_pem(self, kid: str) -> bytes:
        return (
            self.keys[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A valid access token's claims for user `user-1` of tenant `acme`; an override of None drops it."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "extension_tenant": "acme",
            "roles": ["builder"],
            "ver": "2.0",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def issue(self, *, kid: str | None = None, signing_key: rsa.RSAPrivateKey | None = None, **overrides: Any) -> str:
        """A real RS256 token: signed by the published key `kid` (default: the newest), or by `signing_key`
        while its header still names `kid`."""
        kid = kid or self.signing_kid
        key = signing_key or self.keys[kid]
        return jwt.encode(self.claims(**overrides), key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})

    @property
    def identity_endpoint(self) -> str:
        """IDENTITY_ENDPOINT for azure-identity (with IDENTITY_HEADER)."""
        return f"{self.url}/msi/token"

    def identity_token(self, resource: str, object_id: str = SYSTEM_IDENTITY, **overrides: Any) -> str:
        """A managed identity's v1.0 access token for `resource`, as Entra issues it."""
        claims: dict[str, Any] = {
            "iss": V1_ISSUER,
            "aud": resource,
            "sub": object_id,
            "oid": object_id,
            "tid": TENANT_ID,
            "appid": object_id,
            "idtyp": "app",
            "ver": "1.0",
            "extension_tenant": None,
            "roles": None,
        }
        return self.issue(**(claims | overrides))

    def forge_none(self, **overrides: Any) -> str:
        """`alg: none` and no signature."""
        header = {"alg": "none", "typ": "JWT", "kid": self.signing_kid}
        return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(self.claims(**overrides)).encode())}."

    def forge_hs256_with_public_key(self, **overrides: Any) -> str:
        """HS256 whose HMAC secret is the published public key's PEM: accepted by a verifier that lets
        the header choose the algorithm."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.signing_kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(self.claims(**overrides)).encode())}"
        mac = hmac.new(self.public_pem(self.signing_kid), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"/{TENANT_ID}/v2.0/.well-known/openid-configuration", self._discovery)
        app.router.add_get(f"/{TENANT_ID}/discovery/v2.0/keys", self._jwks)
        app.router.add_get("/msi/token", self._managed_identity_token)
        return app

    async def _managed_identity_token(self, request: web.Request) -> web.Response:
        if request.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
            return web.json_response(
                {"error": "invalid_request", "error_description": "no identity header"}, status=400
            )
        resource = request.query.get("resource", "").removesuffix("/.default")
        client_id = request.query.get("client_id")
        object_id = self.identities.get(client_id, "") if client_id else SYSTEM_IDENTITY
        if not resource or not object_id:
            return web.json_response({"error": "invalid_request", "error_description": "unknown identity"}, status=400)
        with self._lock:
            self.identity_tokens.append((resource, object_id))
        expires_on = int(time.time()) + 3600
        return web.json_response(
            {
                "access_token": self.identity_token(resource, object_id),
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id or object_id,
            }
        )

    async def _discovery(self, _: web.Request) -> web.Response:
        with self._lock:
            self.discovery_fetches += 1
        return web.json_response(
            {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_uri,
                "authorization_endpoint": f"{self.url}/{TENANT_ID}/oauth2/v2.0/authorize",
                "token_endpoint": f"{self.url}/{TENANT_ID}/oauth2/v2.0/token",
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "subject_types_supported": ["pairwise"],
            }
        )

    async def _jwks(self, _: web.Request) -> web.Response:
        with self._lock:
            self.jwks_fetches += 1
            keys = []
            for kid, private in self.keys.items():
                jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
                keys.append({"kty": "RSA", "use": "sig", "kid": kid, "n": jwk["n"], "e": jwk["e"]})
        return web.json_response({"keys": keys})
