"""Outbound calls on the wire: the body `POST /api/calls` takes, what the `twilio` and `vonage-voice` SDKs send
(against the REST fakes), how the providers' errors become ours, and what AMD's verdict leads to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from shared import dialog
from shared.call_models import CallRequest
from shared.errors import ApiError
from shared.models import Answered, Outcome
from shared.phone import twilio
from shared.phone.placing import ProviderBusy, ProviderFailed, ProviderRefused
from shared.phone.twilio_calls import place_call
from shared.phone.vonage_calls import place_call as vonage_place_call
from tests.fakes.twilio_rest import FakeTwilioRest, Refused
from tests.fakes.twilio_rest import _error as twilio_error
from tests.fakes.vonage_rest import FakeVonageRest, rsa_private_key_pem

ACCOUNT_SID = "AC" + "fedcba9876543210" * 2
TOKEN = "unit-twilio-token"
TO, FROM = "+14155550123", "+14155550100"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTwilioRest]:
    with FakeTwilioRest(ACCOUNT_SID, TOKEN, "http://127.0.0.1:9") as server:
        yield server


def placed(fake: FakeTwilioRest, *, to: str = TO, token: str = TOKEN, voicemail: bool = False) -> str:
    return place_call(
        account_sid=ACCOUNT_SID,
        auth_token=token,
        api_base_url=fake.url,
        to=to,
        from_=FROM,
        answer_url="https://app.example/api/voice/twilio/incoming?call=c",
        status_url="https://app.example/api/voice/twilio/status",
        leaves_voicemail=voicemail,
        ringing_seconds=45,
    ).call_id


@pytest.mark.parametrize(
    "body",
    [
        {"to": "+14155550123", "agent": "demo", "provider": "twilio"},
        {"to": "+919876543210", "agent": "sales-1", "provider": "vonage"},
    ],
)
def test_a_call_request_names_a_valid_e164_number_an_agent_and_a_provider(body: dict[str, str]) -> None:
    assert CallRequest.model_validate(body).to == body["to"]


@pytest.mark.parametrize(
    "body",
    [
        {"to": "4155550123", "agent": "demo", "provider": "twilio"},
        {"to": "+1415555012", "agent": "demo", "provider": "twilio"},
        {"to": "+1 415 555 0123", "agent": "demo", "provider": "twilio"},
        {"to": "+14155550123", "agent": "Demo!", "provider": "twilio"},
        {"to": "+14155550123", "agent": "demo", "provider": "amazon_connect"},
        {"to": "+14155550123", "agent": "demo"},
        {"to": "+14155550123", "agent": "demo", "provider": "twilio", "from": "+14155550100"},
    ],
)
def test_anything_else_is_refused(body: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        CallRequest.model_validate(body)


def test_the_sdk_sends_twilio_the_call_with_amd_and_our_webhooks(fake: FakeTwilioRest) -> None:
    sid = placed(fake, to="+14155550111")
    assert twilio.CALL_SID.fullmatch(sid)
    form = fake.calls[sid].form
    assert form["To"] == ["+14155550111"]
    assert form["From"] == [FROM]
    assert form["Url"] == ["https://app.example/api/voice/twilio/incoming?call=c"]
    assert form["Method"] == ["POST"]
    assert form["StatusCallback"] == ["https://app.example/api/voice/twilio/status"]
    assert form["StatusCallbackMethod"] == ["POST"]
    assert form["StatusCallbackEvent"] == ["completed"]
    assert form["MachineDetection"] == ["Enable"]
    assert form["Timeout"] == ["45"]
    assert fake.requests[-1]["path"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"


def test_an_agent_with_a_voicemail_message_waits_for_the_end_of_the_machines_greeting(fake: FakeTwilioRest) -> None:
    sid = placed(fake, to="+14155550112", voicemail=True)
    assert fake.calls[sid].form["MachineDetection"] == ["DetectMessageEnd"]


@pytest.mark.parametrize(
    ("refusal", "error", "code"),
    [
        (Refused(400, 21211, "Invalid 'To' Phone Number"), ProviderRefused, "call_refused"),
        (Refused(400, 21219, "The number is unverified."), ProviderRefused, "call_refused"),
        (Refused(429, 20429, "Too Many Requests"), ProviderBusy, "provider_busy"),
        (Refused(500, 20500, "Internal Server Error"), ProviderFailed, "provider_error"),
    ],
)
def test_twilios_errors_become_clear_4xx_or_5xx_never_500(
    fake: FakeTwilioRest, refusal: Refused, error: type[ApiError], code: str
) -> None:
    number = f"+1415555{refusal.code % 10_000:04d}"
    fake.script(number, refusal)
    with pytest.raises(error) as raised:
        placed(fake, to=number)
    assert raised.value.code == code
    assert raised.value.status in (422, 502, 503)
    assert str(refusal.code) in raised.value.message


def test_other_credentials_are_our_configuration_not_the_clients(fake: FakeTwilioRest) -> None:
    with pytest.raises(ProviderFailed) as raised:
        placed(fake, token="not-the-token")
    assert raised.value.code == "provider_credentials"
    assert "not-the-token" not in raised.value.message


def test_twilio_unreachable_is_a_502() -> None:
    with pytest.raises(ProviderFailed) as raised:
        place_call(
            account_sid=ACCOUNT_SID,
            auth_token=TOKEN,
            api_base_url="http://127.0.0.1:9",
            to=TO,
            from_=FROM,
            answer_url="https://app.example/a",
            status_url="https://app.example/s",
            leaves_voicemail=False,
            ringing_seconds=30,
        )
    assert raised.value.code == "provider_unreachable"


def test_the_fake_speaks_twilios_error_json() -> None:
    body = twilio_error(400, 21211, "Invalid 'To' Phone Number").text
    assert body is not None
    assert '"more_info": "https://www.twilio.com/docs/errors/21211"' in body


@pytest.mark.parametrize(
    ("answered_by", "machine"),
    [
        ("human", False),
        ("unknown", False),
        ("", False),
        ("machine_start", True),
        ("machine_end_beep", True),
        ("machine_end_silence", True),
        ("machine_end_other", True),
        ("fax", True),
    ],
)
def test_amd_verdicts(answered_by: str, machine: bool) -> None:
    assert twilio.answered_by_machine(answered_by) is machine


def test_a_person_is_greeted_a_machine_gets_the_message_or_the_call_hangs_up() -> None:
    assert dialog.on_answer(Answered(machine=False, leave_message=True)).step is dialog.Step.GREET
    assert dialog.on_answer(Answered(machine=True, leave_message=True)) == dialog.Decision(
        dialog.Step.LEAVE_VOICEMAIL, Outcome.VOICEMAIL
    )
    assert dialog.on_answer(Answered(machine=True)) == dialog.Decision(dialog.Step.HANG_UP, Outcome.ANSWERING_MACHINE)


def test_a_call_we_placed_is_told_by_its_direction() -> None:
    inbound = twilio.parse_form(twilio.FORM_TYPE, b"CallSid=CA" + b"0" * 32 + b"&Direction=inbound")
    outbound = twilio.parse_form(twilio.FORM_TYPE, b"CallSid=CA" + b"0" * 32 + b"&Direction=outbound-api")
    assert (twilio.is_outbound(inbound), twilio.is_outbound(outbound)) == (False, True)


VONAGE_APPLICATION = "0b8f4a52-3c1e-4d5f-8a9b-1c2d3e4f5a6b"


@pytest.fixture(scope="module")
def vonage_key() -> str:
    return rsa_private_key_pem()


@pytest.fixture
def vonage_fake(vonage_key: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVonageRest]:
    """The Vonage fake, its certificate trusted the way `requests` lets a deployment trust one."""
    with FakeVonageRest(
        VONAGE_APPLICATION, vonage_key, "unit-vonage-signature-secret-of-32-bytes", "http://127.0.0.1:9"
    ) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.certificate_file))
        yield server


def vonage_placed(fake: FakeVonageRest, key: str, *, to: str = TO, voicemail: bool = False) -> str:
    return vonage_place_call(
        application_id=VONAGE_APPLICATION,
        private_key=key,
        api_host=fake.api_host,
        to=to,
        from_=FROM,
        answer_url="https://app.example/api/voice/vonage/answer?call=c",
        event_url="https://app.example/api/voice/vonage/event",
        leaves_voicemail=voicemail,
        ringing_seconds=300,
    ).call_id


def test_the_vonage_sdk_sends_the_call_signed_as_the_application(vonage_fake: FakeVonageRest, vonage_key: str) -> None:
    call_uuid = vonage_placed(vonage_fake, vonage_key, voicemail=True)
    body = vonage_fake.legs[call_uuid].body
    assert body == {
        "to": [{"number": "14155550123", "type": "phone"}],
        "from": {"number": "14155550100", "type": "phone"},
        "answer_url": ["https://app.example/api/voice/vonage/answer?call=c"],
        "answer_method": "POST",
        "event_url": ["https://app.example/api/voice/vonage/event"],
        "event_method": "POST",
        "advanced_machine_detection": {"behavior": "continue", "mode": "detect_beep"},
        "ringing_timer": 120,
    }


def test_vonages_refusals_become_clear_errors(vonage_fake: FakeVonageRest, vonage_key: str) -> None:
    vonage_fake.script("+14155550140", Refused(400, 0, "Invalid to number"))
    with pytest.raises(ProviderRefused) as refused:
        vonage_placed(vonage_fake, vonage_key, to="+14155550140")
    assert "Invalid to number" in refused.value.message
    with pytest.raises(ProviderFailed) as credentials:
        vonage_placed(vonage_fake, rsa_private_key_pem())
    assert credentials.value.code == "provider_credentials"


def test_only_recordings_of_twilios_api_are_fetched() -> None:
    base = "https://api.twilio.com"
    recording = f"{base}/2010-04-01/Accounts/AC{'a' * 32}/Recordings/RE{'b' * 32}"
    assert twilio.recording_media_url(recording, base) == recording + ".wav"
    for elsewhere in (
        "http://169.254.169.254/latest/meta-data",
        f"https://api.twilio.com.evil.example/2010-04-01/Accounts/AC{'a' * 32}/Recordings/RE{'b' * 32}",
        recording + "/../../Calls",
        recording.replace("https://", "http://"),
    ):
        with pytest.raises(ApiError):
            twilio.recording_media_url(elsewhere, base)


def test_a_recorded_calls_twiml_says_the_consent_line_before_recording_starts() -> None:
    twiml = twilio.recorded(
        twilio.listen("https://app.example/g?turn=1", "en-US", "https://app.example/a.wav"),
        twilio.Recording(consent="This call is recorded.", callback="https://app.example/r"),
        "en-US",
    )
    assert twiml.index("<Say") < twiml.index("<Start><Recording") < twiml.index("<Gather")
    assert 'recordingStatusCallback="https://app.example/r"' in twiml
    assert 'recordingStatusCallbackEvent="completed"' in twiml


def test_an_agent_that_records_must_say_so() -> None:
    from shared.models import AgentProfile

    with pytest.raises(ValidationError, match="recording_consent"):
        AgentProfile(name="a", display_name="A", greeting="Hi", recording=True)
    assert AgentProfile(name="a", display_name="A", greeting="Hi", recording=True, recording_consent="Recorded.")


def test_only_files_of_the_vonage_api_host_are_fetched() -> None:
    from shared.phone.vonage_calls import recording_url

    good = "https://api.nexmo.com/v1/files/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert recording_url(good, "api.nexmo.com") == good
    for elsewhere in (
        good.replace("api.nexmo.com", "api.nexmo.com.evil.example"),
        good.replace("https://", "http://"),
        good + "/../../v1/calls",
        "https://169.254.169.254/v1/files/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    ):
        with pytest.raises(ApiError):
            recording_url(elsewhere, "api.nexmo.com")


def test_a_recorded_vonage_call_says_the_consent_line_then_records_the_whole_call() -> None:
    from shared.phone import vonage

    ncco = vonage.recorded([{"action": "stream", "streamUrl": ["https://a/x.wav"]}], "Recorded.", "en-US", "https://r")
    assert ncco[0] == {"action": "talk", "text": "Recorded.", "language": "en-US"}
    assert ncco[1] == {"action": "record", "format": "wav", "eventUrl": ["https://r"], "eventMethod": "POST"}
    assert ncco[2]["action"] == "stream"
