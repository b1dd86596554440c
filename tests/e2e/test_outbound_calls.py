"""Outbound calls: `POST /api/calls` places the call through the `twilio` SDK against a fake of Twilio's REST
API, which then rings our webhooks as Twilio does (signed, `Direction=outbound-api`, AMD's `AnsweredBy`);
and through the `vonage-voice` SDK against a fake of the Vonage Voice API, which sends machine
detection's verdict to the event webhook before it asks the answer webhook for the NCCO."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devhost.management import PREFIX
from devhost.process import DevHost
from shared.security.roles import Scope
from tests.e2e.conftest import StartDevHost
from tests.e2e.credentials import key_header
from tests.e2e.polling import wait_until
from tests.e2e.test_agents_api import profile
from tests.e2e.test_twilio_calls import spoken
from tests.e2e.test_vonage_calls import spoken as streamed
from tests.fakes.twilio_rest import FakeTwilioRest, Pickup, Refused, Silent, Unanswered
from tests.fakes.vonage_rest import EndsAtOnce, FakeVonageRest, rsa_private_key_pem

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "outbound-e2e-twilio-auth-token"
CALLS_PER_MINUTE = 3
ANSWER_WAIT_SECONDS = 6
GREETING = "Hi, this is Chai Point calling about your order."
VOICEMAIL = "Sorry we missed you. Your order is ready for pickup at Chai Point."
CUSTOMER = "+14155550123"
CONSENT = "This call is recorded for quality."
VONAGE_APPLICATION = "5f0c5c44-1c2b-4b0a-9a57-8a1f0b0e2c11"
VONAGE_SECRET = "outbound-e2e-vonage-signature-secret"
LINES = (f"+1415556{n:04d}" for n in itertools.count(1))
"""Numbers the tenants hold, each once: two tenants never race for one (409 number_taken)."""
CALLEES = (f"+1415557{n:04d}" for n in itertools.count(1))
"""Numbers called, each once and never a tenant's."""


Fakes = tuple[DevHost, FakeTwilioRest]


@pytest.fixture(scope="module")
def providers(start_devhost: StartDevHost) -> Iterator[tuple[DevHost, FakeTwilioRest, FakeVonageRest]]:
    """One devhost placing calls through both fakes; each fake rings the devhost back."""
    private_key = rsa_private_key_pem()
    with (
        FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN, "") as twilio_fake,
        FakeVonageRest(VONAGE_APPLICATION, private_key, VONAGE_SECRET, "") as vonage_fake,
    ):
        host = start_devhost(
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_API_BASE_URL=twilio_fake.url,
            VONAGE_APPLICATION_ID=VONAGE_APPLICATION,
            VONAGE_PRIVATE_KEY=private_key,
            VONAGE_SIGNATURE_SECRET=VONAGE_SECRET,
            VONAGE_API_HOST=vonage_fake.api_host,
            REQUESTS_CA_BUNDLE=str(vonage_fake.certificate_file),
            OUTBOUND_CALLS_PER_MINUTE=str(CALLS_PER_MINUTE),
            OUTBOUND_RINGING_SECONDS="5",
            OUTBOUND_ANSWER_WAIT_SECONDS=str(ANSWER_WAIT_SECONDS),
        )
        twilio_fake.base_url = vonage_fake.base_url = host.base
        yield host, twilio_fake, vonage_fake


@pytest.fixture(scope="module")
def twilio(providers: tuple[DevHost, FakeTwilioRest, FakeVonageRest]) -> Fakes:
    return providers[0], providers[1]


@pytest.fixture(scope="module")
def vonage(providers: tuple[DevHost, FakeTwilioRest, FakeVonageRest]) -> tuple[DevHost, FakeVonageRest]:
    return providers[0], providers[2]


def tenant(
    host: DevHost,
    *,
    voicemail: bool = False,
    provider: str = "twilio",
    recording: bool = False,
    name: str | None = None,
) -> tuple[dict[str, str], str]:
    """A tenant of its own (each has its own outbound limit; `name`, else a random one) with an agent
    `caller` and a Twilio number it calls from; returns its key header and that number."""
    name = name or f"t{secrets.token_hex(4)}"
    key = key_header(host, name)
    fields: dict[str, Any] = {"voicemail_message": VOICEMAIL} if voicemail else {}
    if recording:
        fields |= {"recording": True, "recording_consent": CONSENT}
    made = host.post("/api/agents", json=profile("caller", GREETING, **fields), headers=key)
    assert made.status_code == 201, made.text
    line = next(LINES)
    held = host.post("/api/phone-numbers", json={"number": line, "provider": provider, "agent": "caller"}, headers=key)
    assert held.status_code == 201, held.text
    return key, line


def place(
    host: DevHost, key: dict[str, str], to: str = CUSTOMER, provider: str = "twilio", **headers: str
) -> requests.Response:
    body = {"to": to, "agent": "caller", "provider": provider}
    return host.post("/api/calls", json=body, headers=key | headers)


def transcript(host: DevHost, key: dict[str, str], conversation_id: str) -> dict[str, Any]:
    response = host.get(f"/api/conversations/{conversation_id}", headers=key)
    assert response.status_code == 200, response.text
    return dict(response.json())


def ended(host: DevHost, key: dict[str, str], conversation_id: str) -> dict[str, Any]:
    return wait_until(lambda: transcript(host, key, conversation_id), lambda c: c["status"] == "completed")


def error_code(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


def test_a_person_who_answers_is_greeted_and_talks_with_the_agent(twilio: Fakes) -> None:
    host, fake = twilio
    key, line = tenant(host)
    placed = place(host, key)
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert body["status"] == "queued"
    assert body["call_id"].startswith("CA")
    assert (body["to"], body["caller_id"], body["replayed"]) == (CUSTOMER, line, False)
    assert placed.headers["Location"] == f"/api/conversations/{body['conversation_id']}"

    [request] = [r for r in fake.requests if r["form"].get("To") == [CUSTOMER] and r["form"]["From"] == [line]]
    form = request["form"]
    assert form["MachineDetection"] == ["Enable"], "no voicemail message: hang up on machines as soon as known"
    assert form["Url"] == [f"{host.base}/api/voice/twilio/incoming?call={body['conversation_id']}"]
    assert form["StatusCallback"] == [f"{host.base}/api/voice/twilio/status?call={body['conversation_id']}"], (
        "the status URL names the conversation too, so an end reported at once is never lost"
    )
    assert form["StatusCallbackEvent"] == ["completed"]

    call = fake.call(body["call_id"])
    assert call.answered is not None
    assert call.phone is not None
    assert spoken(call.answered) == (body["conversation_id"], 0)
    assert call.answered.listening is not None
    hours = call.phone.say("what are your opening hours")
    assert spoken(hours) == (body["conversation_id"], 1)

    during = transcript(host, key, body["conversation_id"])
    assert (during["agent"], during["status"]) == ("caller", "active")
    assert [t["kind"] for t in during["turns"]] == ["greeting", "utterance"]
    assert during["turns"][0]["reply"]["text"] == GREETING
    assert call.phone.hang_up(duration="31").status_code == 204
    final = ended(host, key, body["conversation_id"])
    assert (final["outcome"], final["call_duration_seconds"]) == ("ended_by_client", 31)


def test_a_machine_gets_the_agents_voicemail_message_after_the_beep_then_the_call_hangs_up(
    twilio: Fakes,
) -> None:
    host, fake = twilio
    key, _ = tenant(host, voicemail=True)
    fake.script("+14155550124", Pickup("machine_end_beep"))
    placed = place(host, key, "+14155550124")
    assert placed.status_code == 201, placed.text
    body = placed.json()
    call = fake.call(body["call_id"])
    assert call.field("MachineDetection") == "DetectMessageEnd", "wait for the beep to leave a message"
    assert call.answered is not None
    assert spoken(call.answered) == (body["conversation_id"], 0)
    assert call.answered.hung_up
    assert call.answered.listening is None
    final = ended(host, key, body["conversation_id"])
    assert final["outcome"] == "voicemail"
    [message] = final["turns"]
    assert (message["kind"], message["reply"]["text"], message["action"]) == ("voicemail", VOICEMAIL, "end_call")


def test_a_machine_is_hung_up_on_when_the_agent_has_no_voicemail_message(
    twilio: Fakes,
) -> None:
    host, fake = twilio
    key, _ = tenant(host)
    for answered_by in ("machine_start", "fax"):
        number = next(CALLEES)
        fake.script(number, Pickup(answered_by))
        body = place(host, key, number).json()
        call = fake.call(body["call_id"])
        assert call.answered is not None
        assert (call.answered.hung_up, call.answered.played, call.answered.said) == (True, [], []), answered_by
        final = ended(host, key, body["conversation_id"])
        assert (final["outcome"], final["turns"]) == ("answering_machine", []), answered_by


def test_a_call_nobody_answers_ends_with_the_status_callbacks_outcome(twilio: Fakes) -> None:
    host, fake = twilio
    key, _ = tenant(host)
    for status, outcome in (("busy", "busy"), ("no-answer", "no_answer"), ("failed", "call_failed")):
        number = next(CALLEES)
        fake.script(number, Unanswered(status))
        body = place(host, key, number).json()
        assert fake.call(body["call_id"]).ended == status
        final = ended(host, key, body["conversation_id"])
        assert (final["outcome"], final["turns"]) == (outcome, []), status


def test_a_call_the_provider_never_reports_on_ends_no_answer_by_itself(twilio: Fakes) -> None:
    host, fake = twilio
    key, _ = tenant(host)
    fake.script("+14155550129", Silent())
    body = place(host, key, "+14155550129").json()
    assert transcript(host, key, body["conversation_id"])["status"] == "active", "ringing"
    final = wait_until(
        lambda: transcript(host, key, body["conversation_id"]),
        lambda c: c["status"] == "completed",
        timeout=ANSWER_WAIT_SECONDS + 30,
    )
    assert (final["outcome"], final["turns"]) == ("no_answer", [])


def test_a_retried_post_with_the_same_idempotency_key_places_one_call(twilio: Fakes) -> None:
    host, fake = twilio
    key, _ = tenant(host)
    number = "+14155550125"
    fake.script(number, Unanswered("busy"))
    first = place(host, key, number, **{"Idempotency-Key": "order-17"})
    again = place(host, key, number, **{"Idempotency-Key": "order-17"})
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json() == first.json() | {"replayed": True}
    assert len([r for r in fake.requests if r["form"].get("To") == [number]]) == 1
    bad_key = place(host, key, number, **{"Idempotency-Key": "é" * 3})
    assert error_code(bad_key, 400) == "invalid_idempotency_key"
    other = place(host, key, number, **{"Idempotency-Key": "order-18"})
    assert other.status_code == 201
    assert other.json()["call_id"] != first.json()["call_id"]


def test_the_providers_refusal_is_a_clear_error_and_the_conversation_ends_call_failed(
    twilio: Fakes,
) -> None:
    host, fake = twilio
    key, _ = tenant(host)
    fake.script("+14155550126", Refused(400, 21219, "The number +14155550126 is unverified."))
    refused = place(host, key, "+14155550126")
    assert error_code(refused, 422) == "call_refused"
    assert "21219" in refused.json()["error"]["message"]
    fake.script("+14155550127", Refused(500, 20500, "Internal Server Error"))
    assert error_code(place(host, key, "+14155550127"), 502) == "provider_error"
    wait_until(
        lambda: host.get("/api/conversations", headers=key, params={"outcome": "call_failed"}).json()["items"],
        lambda failed: len(failed) == 2,
    )


def test_bad_requests_are_4xx_and_place_no_call(twilio: Fakes) -> None:
    host, fake = twilio
    key, _ = tenant(host)
    before = len(fake.requests)
    for body in (
        {"to": "4155550123", "agent": "caller", "provider": "twilio"},
        {"to": "+1415555012", "agent": "caller", "provider": "twilio"},
        {"to": CUSTOMER, "agent": "caller", "provider": "skype"},
        {"to": CUSTOMER, "agent": "caller"},
        {"to": CUSTOMER, "agent": "caller", "provider": "twilio", "from": "+14155550100"},
    ):
        response = host.post("/api/calls", json=body, headers=key)
        assert response.status_code in (400, 422), (body, response.text)
    assert (
        error_code(
            host.post("/api/calls", json={"to": CUSTOMER, "agent": "nobody", "provider": "twilio"}, headers=key), 422
        )
        == "unknown_agent"
    )
    assert len(fake.requests) == before


def test_no_number_to_call_from_is_a_409(twilio: Fakes) -> None:
    host, _ = twilio
    key = key_header(host, f"t{secrets.token_hex(4)}")
    assert host.post("/api/agents", json=profile("caller", GREETING), headers=key).status_code == 201
    assert error_code(place(host, key), 409) == "no_caller_id"


def test_another_tenant_cannot_call_with_someone_elses_agent(twilio: Fakes) -> None:
    host, fake = twilio
    owner, _ = tenant(host)
    stranger = key_header(host, f"t{secrets.token_hex(4)}")
    before = len(fake.requests)
    assert error_code(place(host, stranger), 422) == "unknown_agent"
    assert len(fake.requests) == before
    assert owner != stranger


def test_a_key_without_calls_write_is_refused(twilio: Fakes) -> None:
    host, _ = twilio
    key = key_header(host, f"t{secrets.token_hex(4)}", scopes={Scope.CONVERSATIONS_WRITE, Scope.AGENTS_ADMIN})
    assert error_code(place(host, key), 403) == "forbidden"


def test_outbound_calls_are_limited_per_tenant(twilio: Fakes) -> None:
    host, fake = twilio
    key, _ = tenant(host)
    number = "+14155550128"
    fake.script(number, Unanswered("busy"))
    for _ in range(CALLS_PER_MINUTE):
        assert place(host, key, number).status_code == 201
    limited = place(host, key, number)
    assert error_code(limited, 429) == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    other, _ = tenant(host)
    assert place(host, other, number).status_code == 201, "another tenant's calls are counted apart"


def test_through_vonage_a_person_is_greeted_and_talks_with_the_agent(vonage: tuple[DevHost, FakeVonageRest]) -> None:
    host, fake = vonage
    key, line = tenant(host, provider="vonage")
    placed = place(host, key, provider="vonage")
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert (body["provider"], body["status"], body["caller_id"]) == ("vonage", "started", line)
    leg = fake.leg(body["call_id"])
    assert leg.body["to"] == [{"number": CUSTOMER.removeprefix("+"), "type": "phone"}]
    assert leg.body["from"] == {"number": line.removeprefix("+"), "type": "phone"}
    assert leg.body["answer_url"] == [f"{host.base}/api/voice/vonage/answer?call={body['conversation_id']}"]
    [events] = leg.body["event_url"]
    assert events.startswith(f"{host.base}/api/voice/vonage/event?call={body['conversation_id']}&tenant=t"), (
        "the event URL names the call's conversation and tenant, so an event before the call was noted is not lost"
    )
    assert leg.body["advanced_machine_detection"] == {"behavior": "hangup", "mode": "detect"}
    assert leg.events == ["started", "ringing", "answered", "human"]
    assert leg.answered is not None
    assert leg.phone is not None
    assert streamed(leg.answered) == (body["conversation_id"], 0)
    hours = leg.phone.say("what are your opening hours")
    assert streamed(hours) == (body["conversation_id"], 1)
    assert leg.phone.hang_up(url="/api/voice/vonage/event", direction="outbound").status_code == 200
    final = ended(host, key, body["conversation_id"])
    assert (final["outcome"], [t["kind"] for t in final["turns"]]) == ("ended_by_client", ["greeting", "utterance"])


def test_through_vonage_a_machine_gets_the_voicemail_message_after_the_beep(
    vonage: tuple[DevHost, FakeVonageRest],
) -> None:
    host, fake = vonage
    key, _ = tenant(host, voicemail=True, provider="vonage")
    fake.script("+14155550131", Pickup("machine"))
    body = place(host, key, "+14155550131", provider="vonage").json()
    leg = fake.leg(body["call_id"])
    assert leg.body["advanced_machine_detection"] == {"behavior": "continue", "mode": "detect_beep"}
    assert leg.answered is not None
    assert streamed(leg.answered) == (body["conversation_id"], 0)
    assert leg.answered.hung_up
    final = ended(host, key, body["conversation_id"])
    assert final["outcome"] == "voicemail"
    assert [(t["kind"], t["reply"]["text"]) for t in final["turns"]] == [("voicemail", VOICEMAIL)]


def test_through_vonage_a_machine_is_dropped_and_an_unanswered_call_keeps_its_outcome(
    vonage: tuple[DevHost, FakeVonageRest],
) -> None:
    host, fake = vonage
    key, _ = tenant(host, provider="vonage")
    fake.script("+14155550132", Pickup("machine"))
    fake.script("+14155550133", Unanswered("busy"))
    machine = place(host, key, "+14155550132", provider="vonage").json()
    busy = place(host, key, "+14155550133", provider="vonage").json()
    assert fake.leg(machine["call_id"]).answered is None, "Vonage hangs up on the machine itself"
    assert fake.leg(busy["call_id"]).events[-1] == "busy"
    assert ended(host, key, machine["conversation_id"])["outcome"] == "answering_machine"
    assert ended(host, key, busy["conversation_id"])["outcome"] == "busy"


def test_through_vonage_a_call_that_fails_before_it_was_noted_still_ends_call_failed(
    vonage: tuple[DevHost, FakeVonageRest],
) -> None:
    host, fake = vonage
    key, _ = tenant(host, provider="vonage")
    number = next(CALLEES)
    fake.script(number, EndsAtOnce("failed"))
    placed = place(host, key, number, provider="vonage")
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert fake.leg(body["call_id"]).events == ["failed"], "the end came before the API answered"
    final = ended(host, key, body["conversation_id"])
    assert (final["outcome"], final["turns"]) == ("call_failed", []), "not left ringing until no_answer"


def test_through_vonage_a_refusal_is_a_clear_error(vonage: tuple[DevHost, FakeVonageRest]) -> None:
    host, fake = vonage
    key, _ = tenant(host, provider="vonage")
    fake.script("+14155550134", Refused(400, 0, "The destination is barred."))
    refused = place(host, key, "+14155550134", provider="vonage")
    assert error_code(refused, 422) == "call_refused"
    assert "barred" in refused.json()["error"]["message"]
    twilio_only, _ = tenant(host)
    assert error_code(place(host, twilio_only, provider="vonage"), 409) == "no_caller_id"


def test_a_recorded_call_opens_with_the_consent_line_then_records_and_keeps_the_recording_once(
    twilio: Fakes,
) -> None:
    host, fake = twilio
    key, _ = tenant(host, recording=True)
    body = place(host, key).json()
    call = fake.call(body["call_id"])
    assert call.answered is not None
    assert call.phone is not None
    twiml = call.answered.twiml[0]
    assert twiml.index("<Say") < twiml.index("<Start><Recording") < twiml.index("<Play"), twiml
    assert all("<Start>" not in later for later in call.answered.twiml[1:]), "recording starts once"
    assert call.answered.said == [CONSENT]
    assert call.answered.recording == f"{host.base}/api/voice/twilio/recording"
    assert spoken(call.answered) == (body["conversation_id"], 0)
    assert transcript(host, key, body["conversation_id"])["recording_url"] is None
    call.phone.say("what are your opening hours")
    assert call.phone.hang_up().status_code == 204

    recording_sid, form = fake.deliver_recording(body["call_id"], seconds=12)
    again = call.phone.post(call.phone.recording or "", form)
    assert again.status_code == 204, "a retried callback is no error"
    assert fake.downloads == [recording_sid], "fetched once, kept once"
    detail = ended(host, key, body["conversation_id"])
    assert detail["recording_url"] == f"{host.base}/api/conversations/{body['conversation_id']}/recording"
    assert detail["recording_seconds"] == 12
    kept = host.get(f"/api/conversations/{body['conversation_id']}/recording", headers=key)
    assert kept.status_code == 200, kept.text
    assert kept.content == fake.recordings[recording_sid]
    other = key_header(host, f"t{secrets.token_hex(4)}")
    assert host.get(f"/api/conversations/{body['conversation_id']}/recording", headers=other).status_code == 404


def test_a_call_whose_agent_does_not_record_starts_no_recording_and_has_none(twilio: Fakes) -> None:
    host, fake = twilio
    key, _ = tenant(host)
    body = place(host, key).json()
    call = fake.call(body["call_id"])
    assert call.answered is not None
    assert call.answered.recording is None
    assert all("<Start>" not in twiml for twiml in call.answered.twiml)
    missing = host.get(f"/api/conversations/{body['conversation_id']}/recording", headers=key)
    assert error_code(missing, 404) == "recording_not_found"
    assert call.phone is not None
    forged = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": body["call_id"],
        "RecordingSid": "RE" + "0" * 32,
        "RecordingUrl": "http://169.254.169.254/latest/meta-data",
        "RecordingStatus": "completed",
    }
    assert call.phone.post("/api/voice/twilio/recording", forged).status_code == 400, "only Twilio's API is fetched"
    call.phone.hang_up()


def test_through_vonage_a_recorded_call_says_the_consent_line_records_and_keeps_the_recording_once(
    vonage: tuple[DevHost, FakeVonageRest],
) -> None:
    host, fake = vonage
    key, _ = tenant(host, provider="vonage", recording=True)
    body = place(host, key, provider="vonage").json()
    leg = fake.leg(body["call_id"])
    assert leg.answered is not None
    assert leg.phone is not None
    first = leg.answered.ncco[0]  # the answer's; the greeting's later sentences may follow in NCCOs of their own
    assert [action["action"] for action in first[:3]] == ["talk", "record", "stream"], first
    assert first[0]["text"] == CONSENT
    assert first[1]["eventUrl"] == [f"{host.base}/api/voice/vonage/recording"]
    assert streamed(leg.answered) == (body["conversation_id"], 0)
    leg.phone.say("what are your opening hours")
    assert leg.phone.hang_up(url="/api/voice/vonage/event", direction="outbound").status_code == 200

    event = fake.deliver_recording(body["call_id"])
    again = leg.phone.post(leg.answered.recording or "", event)
    assert again.status_code == 204, "a repeated event is no error"
    assert len(fake.downloads) == 1, "fetched once, kept once"
    detail = ended(host, key, body["conversation_id"])
    assert detail["recording_url"] == f"{host.base}/api/conversations/{body['conversation_id']}/recording"
    kept = host.get(f"/api/conversations/{body['conversation_id']}/recording", headers=key)
    assert kept.status_code == 200, kept.text
    assert kept.content == fake.files[fake.downloads[0]]
    elsewhere = event | {"recording_url": "https://169.254.169.254/v1/files/" + event["recording_uuid"]}
    assert leg.phone.post(leg.answered.recording or "", elsewhere).status_code == 400, "only Vonage's API is fetched"


def test_no_credential_reaches_the_log(providers: tuple[DevHost, FakeTwilioRest, FakeVonageRest]) -> None:
    """Run last in the module: every call above has been placed and answered by now."""
    host = providers[0]
    log = host.log_tail(20_000)
    assert "not placed (call_refused)" in log, "the refused calls above were logged, without credentials"
    for secret in ("PRIVATE KEY", AUTH_TOKEN, VONAGE_SECRET, "Bearer ey", "Basic "):
        assert secret not in log, secret


def stored_blobs(host: DevHost, conversation_id: str) -> list[str]:
    """The conversation's blobs in Azurite, listed straight from the container the devhost writes to."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(host.env["BLOB_CONNECTION_STRING"])
    container = service.get_container_client(host.env["AUDIO_CONTAINER"])
    return [blob.name for blob in container.list_blobs() if f"/conversations/{conversation_id}/" in blob.name]


def redis_keys(host: DevHost, *ids: str) -> list[str]:
    """The devhost's Redis keys whose name or value holds one of `ids`, but for rate-limit counters (an
    audio link's counts its fetches for a minute, holds nothing of the call, and expires by itself)."""
    import redis

    client = redis.Redis.from_url(host.env["REDIS_URL"], decode_responses=True)
    limits = f"{host.env['REDIS_KEY_PREFIX']}limits"
    found = []
    for key in client.scan_iter(match=f"{host.env['REDIS_KEY_PREFIX']}*", count=1000):
        if key.startswith(limits):
            continue
        value = client.get(key) if client.type(key) == "string" else None
        text = key + (value or "")
        if any(wanted in text for wanted in ids):
            found.append(key)
    return found


def test_deleting_a_recorded_call_removes_its_turns_audio_recording_keys_and_history(twilio: Fakes) -> None:
    host, fake = twilio
    name = f"t{secrets.token_hex(4)}"
    key, _ = tenant(host, recording=True, name=name)
    body = place(host, key).json()
    conversation_id, path = body["conversation_id"], f"/api/conversations/{body['conversation_id']}"
    call = fake.call(body["call_id"])
    assert call.answered is not None
    assert call.phone is not None
    greeting_link = call.answered.played[0].url
    call.phone.say("what are your opening hours")
    assert error_code(requests.delete(host.url(path), headers=key, timeout=30), 409) == "conversation_active"
    assert call.phone.hang_up().status_code == 204
    fake.deliver_recording(body["call_id"])
    detail = ended(host, key, conversation_id)
    assert detail["recording_url"] is not None
    blobs = stored_blobs(host, conversation_id)
    assert any(name.endswith("/recording.wav") for name in blobs), blobs
    assert any("/turns/" in name for name in blobs), blobs
    assert redis_keys(host, conversation_id, body["call_id"]), "the call's keys, before"
    assert host.get(f"{PREFIX}/instances/{conversation_id}").status_code == 200, "its Durable history, before"
    builder = key_header(host, name, scopes={Scope.CONVERSATIONS_READ, Scope.CONVERSATIONS_WRITE})
    assert error_code(requests.delete(host.url(path), headers=builder, timeout=30), 403) == "forbidden"

    deleted = requests.delete(host.url(path), headers=key, timeout=30)
    assert deleted.status_code == 204, deleted.text
    assert error_code(host.get(path, headers=key), 404) == "not_found"
    assert error_code(host.get(f"{path}/recording", headers=key), 404) == "not_found"
    assert error_code(host.get(f"{path}/audio/0", headers=key), 404) == "not_found"
    assert requests.get(greeting_link, timeout=30).status_code == 404, "a signed link handed out before"
    assert stored_blobs(host, conversation_id) == [], "reply audio, sentences and the recording are gone"
    assert redis_keys(host, conversation_id, body["call_id"]) == [], "so are its Redis keys"
    assert host.get(f"{PREFIX}/instances/{conversation_id}").status_code == 404, "and its Durable history"
    listed = host.get("/api/conversations", headers=key).json()["items"]
    assert conversation_id not in [c["conversation_id"] for c in listed]
    [audited] = host.get("/api/audit", headers=key, params={"action": "conversation.delete"}).json()["items"]
    assert (audited["target"], audited["details"]["recording"]) == (conversation_id, True)
    assert error_code(requests.delete(host.url(path), headers=key, timeout=30), 404) == "not_found", "once only"


def test_a_call_placed_before_the_host_restarts_is_answered_after_it_greets_and_takes_a_turn_once(
    start_devhost: StartDevHost,
) -> None:
    """The host dies (SIGKILL) while the number rings: the ringing orchestration, the call's notes in Redis and
    its conversation outlive it, so the answer that comes after the restart finds the call as it was."""
    with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN, "") as fake:
        host = start_devhost(TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_API_BASE_URL=fake.url)
        fake.base_url = host.base
        key, _ = tenant(host)
        number = next(CALLEES)
        fake.script(number, Silent())  # Twilio rings the number; this test picks up, after the restart
        placed = place(host, key, number)
        assert placed.status_code == 201, placed.text
        body = placed.json()
        call = fake.call(body["call_id"])
        assert call.phone is not None
        assert transcript(host, key, body["conversation_id"])["status"] == "active", "ringing"

        host.kill()
        host.start()
        greeting = call.phone.answer(call.field("Url"))
        assert spoken(greeting) == (body["conversation_id"], 0)
        assert greeting.said == [], "a person answered: the greeting, no voicemail"
        hours = call.phone.say("what are your opening hours")
        assert spoken(hours) == (body["conversation_id"], 1)
        assert call.phone.hang_up(duration="20").status_code == 204
        final = ended(host, key, body["conversation_id"])
        assert (final["outcome"], final["call_duration_seconds"]) == ("ended_by_client", 20)
        assert [(t["kind"], t["text"]) for t in final["turns"]] == [
            ("greeting", None),
            ("utterance", "what are your opening hours"),
        ], "greeted once, one turn"
        assert final["turns"][0]["reply"]["text"] == GREETING
        assert len([r for r in fake.requests if r["form"].get("To") == [number]]) == 1, "placed once"
