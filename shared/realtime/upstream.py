"""The hub's events, authenticated by Microsoft Entra instead of the access key (Web PubSub with local auth
off): each request carries `Authorization: Bearer <token>` that the service got for its own managed
identity, for the audience the hub's event handler names (learn.microsoft.com azure-web-pubsub
howto-use-managed-identity: "the application ID will become the `aud` claim").

The token is a Microsoft identity platform access token: v1.0 (issuer `https://sts.windows.net/{tenant}/`)
unless the audience's app registration asks for v2.0 (issuer `{authority}/{tenant}/v2.0`), so both
issuers of AZURE_TENANT_ID are accepted, its signature checked against the tenant's published keys
(shared/security/tokens.py: RS256 only, `exp`/`nbf`/`iss`/`aud`/`sub` required), and its `oid` must be
WEB_PUBSUB_UPSTREAM_PRINCIPAL_ID, the service's identity (required with the audience: any principal of the
tenant may ask for a token for an Azure service's audience).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Settings
from shared.security.tokens import InvalidToken, TokenValidator


def authority(settings: Settings) -> str:
    """AZURE_AUTHORITY_HOST as a URL (azure-identity accepts it with or without `https://`)."""
    host = settings.azure_authority_host.rstrip("/")
    return host if host.startswith(("http://", "https://")) else f"https://{host}"


def audiences_of(audience: str) -> tuple[str, str]:
    """Entra writes `aud` as the resource was asked for, so `https://management.azure.com` and the same with
    a trailing slash both name the configured audience."""
    bare = audience.rstrip("/")
    return bare, f"{bare}/"


@dataclass(frozen=True)
class UpstreamAuth:
    """Checks the service's token on each upstream request; one per process (it caches the tenant's keys)."""

    tokens: TokenValidator
    principal_id: str

    @classmethod
    def from_settings(cls, settings: Settings) -> UpstreamAuth | None:
        """None unless WEB_PUBSUB_UPSTREAM_AUDIENCE is set (then `ce-signature` checks the events instead)."""
        if not settings.web_pubsub_upstream_audience:
            return None
        tenant = settings.azure_tenant_id
        validator = TokenValidator(
            f"{authority(settings)}/{tenant}/v2.0/.well-known/openid-configuration",
            audiences_of(settings.web_pubsub_upstream_audience),
            "tid",
            leeway_seconds=settings.auth_leeway_seconds,
            jwks_cache_seconds=settings.auth_jwks_cache_seconds,
            refresh_cooldown_seconds=settings.auth_jwks_refresh_cooldown_seconds,
            timeout_seconds=settings.auth_http_timeout_seconds,
            issuers=(f"https://sts.windows.net/{tenant}/",),
        )
        return cls(validator, settings.web_pubsub_upstream_principal_id.strip().lower())

    def check(self, authorization: str | None) -> None:
        """Raises InvalidToken (401) unless the header carries a valid token of the service's identity."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("missing")
        claims = self.tokens.claims(token.strip())
        if str(claims.get("oid", "")).lower() != self.principal_id:
            raise InvalidToken("principal")
