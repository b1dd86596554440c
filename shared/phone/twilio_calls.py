"""Placing an outbound call through Twilio's REST API (`calls.create` of the `twilio` SDK), and what
Twilio's answering-machine detection says about who picked up.

The SDK is pointed at TWILIO_API_BASE_URL by its own `Domain.base_url` (the `api` domain's origin),
so tests drive the real SDK against a local fake of the Calls resource. Twilio's errors keep their
code in our message (21211 invalid number, 21219 unverified on a trial account, …: twilio.com/docs/errors)
and become a clear 4xx or 502, never a 500. The SDK loads on the first call placed, not at import.

AMD (twilio.com/docs/voice/answering-machine-detection): `MachineDetection=Enable` answers as soon as
it tells a person from a machine; `DetectMessageEnd` waits for a machine's greeting to end (usually
the beep), the moment to leave a message. An agent with a voicemail message asks for the second,
others the first (`AnsweredBy` is read in `shared.phone.twilio`).
"""

from __future__ import annotations

from shared.errors import ApiError
from shared.phone.placing import PlacedCall, ProviderBusy, ProviderFailed, ProviderRefused

REST_TIMEOUT_SECONDS = 10.0
REFUSED_NUMBER_CODES = frozenset({21210, 21211, 21212, 21214, 21215, 21216, 21217, 21219, 21401, 21402, 13223, 13224})
"""Twilio error codes that mean this `To` or `From` cannot be called (invalid, unverified, not allowed
by the account's geographic permissions, blocked): the request's fault, a 422."""


def machine_detection(leaves_voicemail: bool) -> str:
    """`DetectMessageEnd` when the agent leaves a message (after the beep), else `Enable` (fastest)."""
    return "DetectMessageEnd" if leaves_voicemail else "Enable"


def place_call(
    *,
    account_sid: str,
    auth_token: str,
    api_base_url: str,
    to: str,
    from_: str,
    answer_url: str,
    status_url: str,
    leaves_voicemail: bool,
    ringing_seconds: int,
) -> PlacedCall:
    """Ask Twilio to call `to` from `from_`; once answered (and AMD has decided) Twilio fetches TwiML from
    `answer_url`, and posts the call's end (completed, busy, no-answer, failed, canceled) to `status_url`."""
    from twilio.base.exceptions import TwilioException, TwilioRestException
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=REST_TIMEOUT_SECONDS))
    client.api.base_url = api_base_url
    try:
        call = client.calls.create(
            to=to,
            from_=from_,
            url=answer_url,
            method="POST",
            status_callback=status_url,
            status_callback_method="POST",
            status_callback_event=["completed"],
            machine_detection=machine_detection(leaves_voicemail),
            timeout=ringing_seconds,
        )
    except TwilioRestException as error:
        raise provider_error(error.status, error.code, error.msg) from None
    except (TwilioException, OSError) as error:
        raise ProviderFailed(
            f"Twilio could not be reached ({type(error).__name__}).", code="provider_unreachable"
        ) from None
    return PlacedCall(call_id=str(call.sid), status=str(call.status))


def provider_error(status: int, code: int | None, message: str) -> ApiError:
    """Our answer to Twilio's error `status` (HTTP) and `code` (Twilio's own)."""
    said = f"Twilio refused the call: {message} (Twilio error {code})."
    if code in REFUSED_NUMBER_CODES or (status == 400 and code is not None and 21200 <= code < 21300):
        return ProviderRefused(said)
    if status == 429:
        return ProviderBusy(f"Twilio asks to slow down: {message} (Twilio error {code}).")
    if status in (401, 403):
        return ProviderFailed(
            f"Twilio refused our credentials (Twilio error {code}): check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.",
            code="provider_credentials",
        )
    return ProviderFailed(said)


MAX_RECORDING_BYTES = 128 * 1024 * 1024
"""About two hours of 8 kHz 16-bit WAV: a longer download is refused rather than held in memory."""


def download_recording(*, account_sid: str, auth_token: str, url: str) -> bytes:
    """The recording's WAV, fetched with the account's credentials (Twilio's media is behind them by
    default); bounded by MAX_RECORDING_BYTES. A redirect to Twilio's media store drops the credentials."""
    import httpx

    try:
        with (
            httpx.Client(timeout=REST_TIMEOUT_SECONDS, follow_redirects=True, max_redirects=3) as client,
            client.stream("GET", url, auth=(account_sid, auth_token)) as response,
        ):
            if response.status_code != 200:
                raise ProviderFailed(
                    f"Twilio did not hand over the recording (HTTP {response.status_code}).", code="provider_error"
                )
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_RECORDING_BYTES:
                    raise ProviderFailed("The recording is larger than this app keeps.", code="recording_too_large")
    except httpx.HTTPError as error:
        raise ProviderFailed(
            f"Twilio could not be reached ({type(error).__name__}).", code="provider_unreachable"
        ) from None
    return bytes(data)
