"""Typed errors the HTTP adapters map to JSON responses in one place.

Every client mistake is an `ApiError` with a stable machine-readable code and the HTTP
status it deserves; anything else reaching an adapter is a bug and becomes a 500.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error that is the client's to fix (or to retry), never a 500."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        """Response headers the error's status calls for (a 401's challenge, a 429's Retry-After)."""
        return {}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    """No credentials, or credentials we refuse (a bad token, an unknown or revoked key): 401."""

    status = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        # RFC 6750 §3: a 401 names the scheme; API-key clients ignore it.
        return {"WWW-Authenticate": 'Bearer realm="api"'}


class Forbidden(ApiError):
    """Known credentials that may not do this: 403."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(ApiError):
    status = 422
    code = "unprocessable"


class InvalidAudio(Unprocessable):
    code = "invalid_audio"


class InvalidText(Unprocessable):
    """Text no store or provider can take: control characters, unpaired surrogates."""

    code = "invalid_text"


class GatewayTimeout(ApiError):
    status = 504
    code = "turn_timeout"


class ServiceUnavailable(ApiError):
    """A service we depend on to answer at all did not (e.g. the identity provider's keys): 503, retry later."""

    status = 503
    code = "service_unavailable"


class TurnFailed(ApiError):
    """The conversation failed on our side before this turn was answered: retrying cannot help."""

    status = 502
    code = "turn_failed"


class TooManyRequests(ApiError):
    """A rate limit is spent: 429, with the whole seconds to wait in `Retry-After` (RFC 9110 §10.2.3)."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
