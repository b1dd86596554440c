"""Bearer tokens from Microsoft Entra External ID (or Azure AD B2C): validated, then mapped to a `Principal`.

(`tokens`, not `jwt`: a module named `jwt` in this package would shadow PyJWT's.)

What is checked, in this order, before any claim is believed:

- the header says `alg: RS256` (nothing else, so `none` and HS256 forged with the public key as the HMAC
  secret are refused before any key is looked at) and names a `kid`;
- the key with that `kid` comes from the provider's JWKS, whose address, like the issuer, comes from the
  OpenID discovery document at AUTH_OIDC_CONFIG_URL (fetched once per process, never derived from the
  URL: External ID's issuer host differs from the discovery host). Keys are cached for
  AUTH_JWKS_CACHE_SECONDS; a `kid` not in the cache makes PyJWT's `PyJWKClient` fetch the set once more,
  at most once per AUTH_JWKS_REFRESH_COOLDOWN_SECONDS (a forged `kid` cannot make every request fetch,
  and a key rotated in within the cooldown of the last fetch is refused until it passes);
- the RS256 signature, with that key only; `exp`, `nbf`, `iss`, `aud` and `sub` are required (PyJWT
  checks `exp`/`nbf` only when present unless told to require them); `iss` must equal the discovery
  document's `issuer`, `aud` one of AUTH_AUDIENCE; AUTH_LEEWAY_SECONDS of clock skew.

Claims → `Principal(kind="user")`:

- `subject` ← `sub`: required, a string (in External ID: per application, immutable).
- `tenant` ← the claim AUTH_TENANT_CLAIM names (default `extension_tenant`): required, a tenant id of
  ours (lower-case letters, digits and `-`, at most 63 characters; anything else is refused, not
  rewritten). External ID names custom attributes `extension_<app-id-without-dashes>_<name>`: set the
  setting to that exact name. `tid` fits where each Entra tenant is one of ours.
- `roles` ← `roles` (Entra app roles): a list of strings; `owner`, `admin`, `builder`, `viewer` are
  kept and any other value is dropped. No known role is a principal that may do nothing.

Every refusal is an `InvalidToken` (401) whose message is one of a few fixed sentences: never the
token, nor a claim or header value from it (PyJWT's own messages may quote the `kid`, so they are not
passed on). `reason` says which check failed, for logs. A provider that cannot be reached is an
`IdentityProviderUnavailable` (503): the caller's token may be fine.

The fetches are blocking (PyJWT's client uses urllib): async callers run `principal` in a thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import jwt

from shared.config import Settings
from shared.errors import ServiceUnavailable, Unauthorized
from shared.security.roles import Principal, Role
from shared.tenancy import TENANT_ID

ALGORITHM = "RS256"
REQUIRED_CLAIMS = ("exp", "nbf", "iss", "aud", "sub")
MAX_TOKEN_CHARACTERS = 16_384
"""Entra tokens are 1-3 KB; anything far larger is refused before it is parsed."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_MESSAGES = {
    "missing": "This needs an Authorization: Bearer token.",
    "expired": "The bearer token has expired.",
    "not_configured": "Sign-in with bearer tokens is not configured.",
}
_INVALID = "The bearer token is not valid."


class InvalidToken(Unauthorized):
    """A token we refuse. `reason` (for logs) is one of a fixed set of words, never text from the token."""

    code = "invalid_token"

    def __init__(self, reason: str) -> None:
        super().__init__(_MESSAGES.get(reason, _INVALID))
        self.reason = reason


class IdentityProviderUnavailable(ServiceUnavailable):
    code = "identity_provider_unavailable"

    def __init__(self) -> None:
        super().__init__("The sign-in provider could not be reached; try again shortly.")


@dataclass(frozen=True)
class Provider:
    """What the discovery document says: who issues tokens and where its keys are."""

    issuer: str
    jwks_uri: str


def trusted_url(url: str) -> bool:
    """HTTPS, or plain HTTP to loopback only (the tests' provider): keys must not travel unprotected."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


class TokenValidator:
    """One per process (its caches are the point): `principal(authorization_header)` or `validate(token)`."""

    def __init__(
        self,
        config_url: str,
        audiences: tuple[str, ...],
        tenant_claim: str,
        *,
        leeway_seconds: float = 60,
        jwks_cache_seconds: float = 3600,
        refresh_cooldown_seconds: float = 30,
        timeout_seconds: float = 5,
        issuers: tuple[str, ...] = (),
    ) -> None:
        if config_url and not trusted_url(config_url):
            raise ValueError("AUTH_OIDC_CONFIG_URL must be https (or http on loopback)")
        self._config_url = config_url
        self._audiences = audiences
        self._tenant_claim = tenant_claim
        self._leeway = leeway_seconds
        self._jwks_cache_seconds = jwks_cache_seconds
        self._cooldown = refresh_cooldown_seconds
        self._timeout = timeout_seconds
        self._issuers = issuers
        self._lock = threading.Lock()
        self._provider: Provider | None = None
        self._keys: jwt.PyJWKClient | None = None
        self._discovery_failed_at: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenValidator:
        return cls(
            settings.auth_oidc_config_url,
            tuple(a.strip() for a in settings.auth_audience.split(",") if a.strip()),
            settings.auth_tenant_claim,
            leeway_seconds=settings.auth_leeway_seconds,
            jwks_cache_seconds=settings.auth_jwks_cache_seconds,
            refresh_cooldown_seconds=settings.auth_jwks_refresh_cooldown_seconds,
            timeout_seconds=settings.auth_http_timeout_seconds,
        )

    def principal(self, authorization: str | None) -> Principal:
        """The principal of an `Authorization` header value: `Bearer <token>` (scheme case-insensitive)."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("missing")
        return self.validate(token.strip())

    def validate(self, token: str) -> Principal:
        return self._principal(self.claims(token))

    def claims(self, token: str) -> dict[str, object]:
        """The token's claims once every check above holds (`iss`: the discovery document's issuer, or one of
        `issuers`, for a provider that issues more than one kind of token); no mapping to a principal."""
        if not self._config_url or not self._audiences:
            raise InvalidToken("not_configured")
        if len(token) > MAX_TOKEN_CHARACTERS:
            raise InvalidToken("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise InvalidToken("no_kid")

        provider, keys = self._discovered()
        try:
            key = keys.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise IdentityProviderUnavailable() from None
        except jwt.PyJWKClientError:
            raise InvalidToken("unknown_key") from None
        except jwt.PyJWKSetError:
            # The endpoint answered a set with no usable keys: the provider's fault, not the caller's.
            raise IdentityProviderUnavailable() from None

        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=list(self._audiences),
                issuer=[provider.issuer, *self._issuers],
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS), "enforce_minimum_key_length": True},
            )
        except (jwt.InvalidTokenError, jwt.InvalidKeyError) as error:
            raise InvalidToken(_refusal(error)) from None
        return dict(claims)

    def _principal(self, claims: dict[str, object]) -> Principal:
        subject = claims["sub"]
        tenant = claims.get(self._tenant_claim)
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("missing_claim")
        if not isinstance(tenant, str) or not TENANT_ID.fullmatch(tenant):
            raise InvalidToken("no_tenant")
        listed = claims.get("roles")
        names = {r for r in listed if isinstance(r, str)} if isinstance(listed, list) else set()
        roles = frozenset(role for role in Role if role.value in names)
        return Principal(kind="user", subject=subject, tenant=tenant, roles=roles)

    def _discovered(self) -> tuple[Provider, jwt.PyJWKClient]:
        """The provider and its key client, from the discovery document fetched once (a failed fetch is
        retried, but not sooner than the refresh cooldown)."""
        with self._lock:
            if self._provider is not None and self._keys is not None:
                return self._provider, self._keys
            failed = self._discovery_failed_at
            if failed is not None and time.monotonic() - failed < self._cooldown:
                raise IdentityProviderUnavailable()
            try:
                provider = self._fetch_provider()
            except IdentityProviderUnavailable:
                self._discovery_failed_at = time.monotonic()
                raise
            self._provider = provider
            self._keys = jwt.PyJWKClient(
                provider.jwks_uri,
                cache_jwk_set=True,
                lifespan=self._jwks_cache_seconds,
                timeout=self._timeout,
                cooldown_duration=self._cooldown,
            )
            return self._provider, self._keys

    def _fetch_provider(self) -> Provider:
        try:
            response = httpx.get(self._config_url, timeout=self._timeout, follow_redirects=False)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError):
            raise IdentityProviderUnavailable() from None
        issuer = document.get("issuer") if isinstance(document, dict) else None
        jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(issuer, str) or not issuer or not isinstance(jwks_uri, str) or not trusted_url(jwks_uri):
            raise IdentityProviderUnavailable()
        return Provider(issuer=issuer, jwks_uri=jwks_uri)


_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidSignatureError, "signature"),
    (jwt.InvalidAlgorithmError, "algorithm"),
)
"""Why PyJWT refused a token, in our words (its own messages may quote the token's contents)."""


def _refusal(error: Exception) -> str:
    return next((reason for kind, reason in _REFUSALS if isinstance(error, kind)), "malformed")
