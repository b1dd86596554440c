"""Which browser pages may call the API from another origin (CORS), decided in the app, not the platform.

The browser app and the API live on different origins, and every call carries a credential
(`Authorization` or `X-API-Key`), so every call is preflighted. Only the origins in ALLOWED_ORIGINS
get CORS headers: the request's `Origin` is echoed back (one origin, never `*` and never `null`),
with `Vary: Origin` so no cache serves one origin's answer to another. `*` is refused at startup
(OWASP: "be as specific as possible"): which pages may hold our credentials is a decision.

Azure's platform CORS (the function app's `siteConfig.cors` allowed origins, which the portal may
fill with its own origin; `Host.CORS` in `local.settings.json` under Core Tools) must stay empty:
"When used together, App Service CORS takes precedence and your own CORS code has no effect"
(learn.microsoft.com/azure/app-service/app-service-web-tutorial-rest-api).

Pure functions of the request's headers; the HTTP layer answers `OPTIONS` with `preflight` and adds
`response_headers` to every other response, errors included (a browser hides a 429's
`Retry-After` from a page that got no CORS headers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ALLOWED_METHODS = ("GET", "POST", "PUT", "DELETE")
"""The methods the API's routes take; a route with another method adds it here."""
ALLOWED_HEADERS = ("Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "If-Match")
EXPOSED_HEADERS = ("Location", "Retry-After", "ETag")
"""Response headers a page's script may read besides the CORS-safelisted ones."""
MAX_AGE_SECONDS = 7200
"""How long a browser may reuse a preflight answer: Chromium's ceiling (Firefox allows a day)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\]")


def parse_origins(setting: str) -> frozenset[str]:
    """The origins of ALLOWED_ORIGINS as browsers write them (lower case, no default port), or ValueError."""
    origins = set()
    for text in (part.strip() for part in setting.split(",")):
        if text:
            origins.add(_origin(text))
    return frozenset(origins)


def _origin(text: str) -> str:
    if text == "*":
        raise ValueError("ALLOWED_ORIGINS may not be `*`: the API takes credentials, so name each origin")
    parts = urlsplit(text.lower())
    hostname = parts.hostname or ""
    host = f"[{hostname}]" if ":" in hostname else hostname
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in _DEFAULT_PORTS or not _HOST.fullmatch(host) or port == -1:
        raise ValueError(f"not an origin (scheme://host[:port]): {text!r}")
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    if origin != text.lower():
        raise ValueError(f"an origin is scheme://host[:port], without path, query or user: {text!r}")
    return f"{parts.scheme}://{host}" if port == _DEFAULT_PORTS[parts.scheme] else origin


@dataclass(frozen=True)
class Preflight:
    """The answer to an `OPTIONS` preflight: 204 with the CORS headers, or 403 without them."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CorsPolicy:
    allowed_origins: frozenset[str]

    @classmethod
    def from_setting(cls, allowed_origins: str) -> CorsPolicy:
        return cls(parse_origins(allowed_origins))

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """Headers for the response to an actual (non-preflight) request carrying `origin`."""
        headers = {"Vary": "Origin"}
        if origin is not None and origin in self.allowed_origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        return headers

    def preflight(self, origin: str | None, request_method: str | None) -> Preflight:
        """The answer to `OPTIONS` with these `Origin` and `Access-Control-Request-Method` headers.

        An unknown origin, a method no route takes, or an `OPTIONS` that is no preflight (no
        requested method) gets no CORS headers, so the browser refuses the actual request.
        """
        vary = {"Vary": "Origin, Access-Control-Request-Method"}
        if origin is None or origin not in self.allowed_origins or request_method not in ALLOWED_METHODS:
            return Preflight(403, vary)
        return Preflight(
            204,
            vary
            | {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
                "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
                "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
            },
        )
