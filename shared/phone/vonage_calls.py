"""Placing an outbound call through the Vonage Voice API (`Voice.create_call` of the `vonage-voice` SDK,
over `vonage-http-client`), and what Vonage's machine detection says about who picked up.

The SDK signs each request with the application's JWT (RS256, VONAGE_APPLICATION_ID and
VONAGE_PRIVATE_KEY) and sends it to `https://{VONAGE_API_HOST}/v1/calls`; tests point the host at a
local fake (its certificate trusted through REQUESTS_CA_BUNDLE, which `requests` honours). The SDK
loads on the first call placed, not at import.

Machine detection (developer.vonage.com/en/voice/voice-api/concepts/advanced-machine-detection):
`advanced_machine_detection` in a synchronous mode runs after the call is answered and before Vonage
fetches the answer NCCO, posting the verdict to the event URL (`status` `human` or `machine`). An agent
with a voicemail message asks for `detect_beep` with `behavior: continue` (the NCCO plays after the
beep, a `machine` event with `sub_state: beep_start`); others for `detect` with `behavior: hangup`
(Vonage drops a machine itself).
"""

from __future__ import annotations

import re

from shared.errors import ApiError
from shared.phone.placing import PlacedCall, ProviderBusy, ProviderFailed, ProviderRefused

REST_TIMEOUT_SECONDS = 10
MAX_RINGING_SECONDS = 120
"""Vonage's `ringing_timer` allows at most 120 s."""


def _digits(number: str) -> str:
    """Vonage writes numbers without the `+`."""
    return number.removeprefix("+")


def place_call(
    *,
    application_id: str,
    private_key: str,
    api_host: str,
    to: str,
    from_: str,
    answer_url: str,
    event_url: str,
    leaves_voicemail: bool,
    ringing_seconds: int,
) -> PlacedCall:
    """Ask Vonage to call `to` from `from_`: events (machine detection's verdict among them) go to
    `event_url`, and once answered Vonage POSTs `answer_url` for the NCCO."""
    from requests import RequestException
    from vonage_http_client import Auth, HttpClient, HttpClientOptions
    from vonage_http_client.errors import HttpRequestError, JWTGenerationError
    from vonage_voice import AdvancedMachineDetection, CreateCallRequest, Phone, ToPhone, Voice

    detection = AdvancedMachineDetection(
        behavior="continue" if leaves_voicemail else "hangup", mode="detect_beep" if leaves_voicemail else "detect"
    )
    request = CreateCallRequest(
        to=[ToPhone(number=_digits(to))],
        from_=Phone(number=_digits(from_)),
        answer_url=[answer_url],
        answer_method="POST",
        event_url=[event_url],
        event_method="POST",
        advanced_machine_detection=detection,
        ringing_timer=min(ringing_seconds, MAX_RINGING_SECONDS),
    )
    try:
        client = HttpClient(
            Auth(application_id=application_id, private_key=private_key),
            HttpClientOptions(api_host=api_host, timeout=REST_TIMEOUT_SECONDS, max_retries=0),
        )
        call = Voice(client).create_call(request)
    except HttpRequestError as error:
        raise provider_error(error.response.status_code, _detail(error)) from None
    except JWTGenerationError:
        raise ProviderFailed(
            "VONAGE_PRIVATE_KEY could not sign the application's token.", code="provider_credentials"
        ) from None
    except (RequestException, OSError) as error:
        raise ProviderFailed(
            f"Vonage could not be reached ({type(error).__name__}).", code="provider_unreachable"
        ) from None
    return PlacedCall(call_id=call.uuid, status=call.status)


def _detail(error: object) -> str:
    """What Vonage said was wrong (its problem-details `title` and `detail`), never the request itself."""
    response = getattr(error, "response", None)
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        return ""
    return " ".join(str(body[key])[:300] for key in ("title", "detail") if isinstance(body.get(key), str))


def provider_error(status: int, detail: str) -> ApiError:
    """Our answer to Vonage's HTTP `status` and problem `detail`."""
    said = f"Vonage refused the call: {detail or 'no reason given'} (HTTP {status})."
    if status in (400, 422):
        return ProviderRefused(said)
    if status == 429:
        return ProviderBusy(f"Vonage asks to slow down (HTTP {status}).")
    if status in (401, 403):
        return ProviderFailed(
            f"Vonage refused our credentials (HTTP {status}): check VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY.",
            code="provider_credentials",
        )
    return ProviderFailed(said)


MAX_RECORDING_BYTES = 128 * 1024 * 1024
"""As for Twilio's: about two hours of 8 kHz WAV; a bigger recording is refused, never held in memory."""


def recording_url(url: str, api_host: str) -> str:
    """The recording a `record` event names, if it is a file of VONAGE_API_HOST's media API
    (`https://{host}/v1/files/{uuid}`); anywhere else is a 400, never fetched (stricter than the SDK's
    own check, which only looks for `vonage.com` or `nexmo.com` in the URL)."""
    from shared.errors import BadRequest

    if not re.fullmatch(
        rf"https://{re.escape(api_host)}/v1/files/[0-9a-f]{{8}}(-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}}", url
    ):
        raise BadRequest("recording_url is not a file of the Vonage API.", code="malformed_body")
    return url


def download_recording(*, application_id: str, private_key: str, api_host: str, url: str, size: int | None) -> bytes:
    """The recording's bytes, fetched with the application's JWT (`vonage-http-client`'s streamed
    download, to a temporary file); refused above MAX_RECORDING_BYTES, by its announced and its real size."""
    import tempfile
    from pathlib import Path

    from requests import RequestException
    from vonage_http_client import Auth, HttpClient, HttpClientOptions
    from vonage_http_client.errors import HttpRequestError

    if size is not None and size > MAX_RECORDING_BYTES:
        raise ProviderFailed("The recording is larger than this app keeps.", code="recording_too_large")
    client = HttpClient(
        Auth(application_id=application_id, private_key=private_key),
        HttpClientOptions(api_host=api_host, timeout=REST_TIMEOUT_SECONDS, max_retries=0),
    )
    with tempfile.TemporaryDirectory(prefix="recording-") as folder:
        path = Path(folder) / "recording.wav"
        try:
            client.download_file_stream(url=url, file_path=str(path))
        except HttpRequestError as error:
            raise provider_error(error.response.status_code, _detail(error)) from None
        except (RequestException, OSError) as error:
            raise ProviderFailed(
                f"Vonage could not be reached ({type(error).__name__}).", code="provider_unreachable"
            ) from None
        if path.stat().st_size > MAX_RECORDING_BYTES:
            raise ProviderFailed("The recording is larger than this app keeps.", code="recording_too_large")
        return path.read_bytes()
