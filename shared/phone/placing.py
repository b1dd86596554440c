"""What placing an outbound call with a provider gives back, and how its refusals read to our clients:
the same for every provider, so `POST /api/calls` answers Twilio's and Vonage's errors alike."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import ApiError


@dataclass(frozen=True)
class PlacedCall:
    call_id: str
    status: str


class ProviderRefused(ApiError):
    """The provider refused the call for the number or caller id given: 422, its code in the message."""

    status = 422
    code = "call_refused"


class ProviderFailed(ApiError):
    """The provider failed, or refused our credentials: 502, nothing the client can change."""

    status = 502
    code = "provider_error"


class ProviderBusy(ApiError):
    """The provider asks us to slow down (its own 429): 503 with a Retry-After."""

    status = 503
    code = "provider_busy"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}
