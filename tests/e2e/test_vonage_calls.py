"""Phone calls through Vonage's webhooks, placed by the simulator that signs and follows NCCO as Vonage does."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

import pytest
import requests

from devhost.__main__ import VONAGE_SECRET_FILE
from devhost.process import DevHost
from devhost.vonage_sim import ANSWER, EVENT, Heard, VonageCall
from shared.speech.audio import decode_wav
from tests.e2e.conftest import StartDevHost
from tests.e2e.test_agents_api import profile
from tests.e2e.transcripts import QUESTIONS, conversation_count, ended, transcript

SECRET = "local-vonage-signature-secret-for-the-e2e-tests"
CONVERSATION_AUDIO = re.compile(r"/api/conversations/([0-9a-f-]{36})/audio/([0-9]+)(?:/([0-9]+))?$")
INPUT = "/api/voice/vonage/input"


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    """A devhost with the local Vonage signature secret it makes itself, as `make dev` does."""
    return start_devhost()


def local_secret(host: DevHost) -> str:
    return (host.data_dir / VONAGE_SECRET_FILE).read_text().strip()


def call(host: DevHost) -> VonageCall:
    return VonageCall(host.base, local_secret(host))


def spoken(heard: Heard) -> tuple[str, int]:
    """The conversation and turn whose audio the caller heard (the whole reply, or its sentences in
    order), checking it was real audio."""
    assert heard.played, heard.ncco
    sources, sentences, seconds = set(), [], 0.0
    for played in heard.played:
        assert played.status == 200, played.audio[:300]
        seconds += decode_wav(played.audio).duration_seconds
        match = CONVERSATION_AUDIO.search(urlsplit(played.url).path)
        assert match is not None, played.url
        sources.add((match.group(1), int(match.group(2))))
        sentences.append(None if match.group(3) is None else int(match.group(3)))
    assert seconds > 0.5
    assert sentences in ([None], list(range(len(sentences)))), "the whole reply, or every sentence in order"
    [source] = sources
    return source


def test_a_whole_call_greets_answers_three_questions_and_ends_when_the_caller_hangs_up(host: DevHost) -> None:
    phone = call(host)
    greeting = phone.answer()
    conversation_id, turn = spoken(greeting)
    assert turn == 0
    assert greeting.listening is not None
    assert urlsplit(greeting.listening).query == "turn=1&silences=0&wait=0"
    [listen] = [action for action in greeting.ncco[-1] if action["action"] == "input"]
    assert (listen["type"], listen["speech"]["language"]) == (["dtmf", "speech"], "en-US")

    hours = phone.say("what are your opening hours")
    assert spoken(hours) == (conversation_id, 1)
    delivery = phone.say("how much does delivery cost")
    assert spoken(delivery) == (conversation_id, 2)
    assert delivery.listening is not None
    assert "turn=3" in delivery.listening
    menu = phone.say("what is on the menu")
    assert spoken(menu) == (conversation_id, 3)
    assert menu.listening is not None
    assert "turn=4" in menu.listening

    during = transcript(host, conversation_id)
    assert during["status"] == "active"
    assert [t["text"] for t in during["turns"]] == [None, *QUESTIONS]
    assert "8 am to 10 pm" in during["turns"][1]["reply"]["text"]
    assert [c["title"] for c in during["turns"][1]["citations"]] == ["Opening hours"], "answered from its documents"
    assert "masala chai" in during["turns"][3]["reply"]["text"]

    ringing = phone.post(EVENT, phone.fields(status="answered"))
    assert ringing.status_code == 200, ringing.text
    assert transcript(host, conversation_id)["status"] == "active", "only a call that is over ends it"
    assert phone.hang_up().status_code == 200
    final = ended(host, conversation_id)
    assert final["outcome"] == "ended_by_client"
    assert final["call_duration_seconds"] == 42
    assert [t["text"] for t in final["turns"]] == [None, *QUESTIONS], "every turn, once, in Postgres"
    assert phone.hang_up().status_code == 200, "a repeated event is no error"


def test_a_call_that_ends_busy_unanswered_failed_or_cancelled_keeps_that_outcome_and_its_duration(
    host: DevHost,
) -> None:
    expected = {
        "busy": "busy",
        "unanswered": "no_answer",
        "timeout": "no_answer",
        "failed": "call_failed",
        "rejected": "call_failed",
        "cancelled": "canceled",
    }
    for status, outcome in expected.items():
        phone = call(host)
        conversation_id, _ = spoken(phone.answer())
        assert phone.hang_up(status, duration="7").status_code == 200
        final = ended(host, conversation_id)
        assert (final["outcome"], final["call_duration_seconds"]) == (outcome, 7), status


def test_an_agent_that_ended_the_call_keeps_its_outcome_and_gets_the_duration(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    assert phone.say("goodbye").hung_up
    ended(host, conversation_id)
    assert phone.hang_up(duration="13").status_code == 200
    final = transcript(host, conversation_id)
    assert (final["outcome"], final["call_duration_seconds"]) == ("completed", 13)


def test_keys_the_caller_presses_are_the_turn_when_nothing_was_said(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    listening = phone.listening
    assert listening is not None
    for digits in ("1" * 21, "12a", "1 2"):
        refused = phone.post(listening, phone.fields(dtmf={"digits": digits, "timed_out": False}))
        assert refused.status_code == 400, (digits, refused.text)
    keyed = phone.say("", digits="42#")
    assert spoken(keyed) == (conversation_id, 1)
    assert keyed.listening is not None
    assert "turn=2" in keyed.listening
    assert [t["text"] for t in transcript(host, conversation_id)["turns"]] == [None, "42#"]
    phone.hang_up()


def test_a_retried_webhook_gets_the_same_ncco_and_makes_no_second_turn_or_call(host: DevHost) -> None:
    before = conversation_count(host)
    phone = call(host)
    first = phone.answer()
    again = phone.answer()
    assert spoken(first) == spoken(again)
    conversation_id, _ = spoken(first)
    assert conversation_count(host) == before + 1

    listening = phone.listening
    assert listening is not None
    answered = phone.say("where are you located")
    phone.listening = listening
    retried = phone.say("where are you located")
    assert spoken(answered) == spoken(retried) == (conversation_id, 1)
    assert answered.listening == retried.listening
    assert [t["text"] for t in transcript(host, conversation_id)["turns"]] == [None, "where are you located"]
    phone.hang_up()


def test_a_signed_input_replayed_against_another_turn_is_refused_and_takes_no_turn(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    listening = phone.listening
    assert listening is not None
    fields = phone.fields(speech={"results": [{"confidence": "0.9", "text": "where are you located"}]})
    signed = phone.authorization(json.dumps(fields, separators=(",", ":")).encode())
    first = phone.post(listening, fields, authorization=signed)
    retried = phone.post(listening, fields, authorization=signed)
    replayed = phone.post(listening.replace("turn=1", "turn=2"), fields, authorization=signed)
    assert (first.status_code, retried.status_code) == (200, 200), retried.text
    inputs = [[a["eventUrl"] for a in r.json() if a["action"] == "input"] for r in (first, retried)]
    assert inputs[0] == inputs[1] != [], "the same request under the same token is a retry: the same NCCO"
    assert replayed.status_code == 403, replayed.text
    assert replayed.json()["error"]["code"] == "invalid_signature"
    assert [t["text"] for t in transcript(host, conversation_id)["turns"]] == [None, "where are you located"]
    assert "a replayed token" in host.log_tail(200)
    phone.hang_up()


def test_asking_for_a_person_connects_the_agents_transfer_number(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    transfer = phone.say("transfer me to a real person")
    assert spoken(transfer) == (conversation_id, 1)
    assert transfer.dialled == "+918045550100"
    final = ended(host, conversation_id)
    assert final["outcome"] == "transferred"


def test_the_agent_ending_the_call_hangs_up_after_its_goodbye(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    goodbye = phone.say("goodbye")
    assert spoken(goodbye) == (conversation_id, 1)
    assert goodbye.hung_up
    assert goodbye.listening is None


def test_a_silent_caller_is_prompted_again_then_the_call_ends(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    prompted = phone.say("")
    assert prompted.played == []
    assert prompted.said == ["Are you still there? You can ask me about our opening hours, menu or delivery."]
    assert prompted.listening is not None
    assert "turn=1&silences=1" in prompted.listening
    phone.say("")
    last = phone.say("")
    assert last.hung_up
    assert last.said == []
    final = ended(host, conversation_id)
    assert [t["kind"] for t in final["turns"]] == ["greeting"]
    assert final["outcome"] == "no_response", "the caller kept silent: not an ending of theirs"


def test_a_forged_missing_or_tampered_signature_is_refused_and_starts_nothing(host: DevHost) -> None:
    before = conversation_count(host)
    phone = call(host)
    query = phone.fields()
    body = json.dumps(query, separators=(",", ":")).encode()
    refusals = [
        phone.get(ANSWER, query, authorization="Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"),
        requests.get(host.url(ANSWER), params=query, timeout=30),
        VonageCall(host.base, "not-our-signature-secret-at-all!!").answer_response(),
        phone.get(ANSWER, {**query, "to": "14155550199"}, authorization=phone.authorization(body)),
        phone.post(ANSWER, query, authorization=phone.authorization(body + b" ")),
    ]
    for refused in refusals:
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "invalid_signature"
    assert conversation_count(host) == before
    log = host.log_tail(2000)
    assert log.count(local_secret(host)) == 1, "printed once, when made, and never logged"
    assert "refused a Vonage webhook" in log


def test_the_local_signature_secret_is_kept_for_its_owner_only(host: DevHost) -> None:
    assert len(local_secret(host)) >= 32
    assert (host.data_dir / VONAGE_SECRET_FILE).stat().st_mode & 0o777 == 0o600


def test_malformed_webhooks_are_400s_never_500s(host: DevHost) -> None:
    phone = call(host)
    phone.answer()
    for fields in ({"to": phone.to}, {**phone.fields(), "uuid": "CA123"}, {**phone.fields(), "speech": "x"}):
        response = phone.post(f"{INPUT}?turn=1", fields)
        assert response.status_code == 400, (fields, response.text)
    for query in ("", "?turn=0", "?turn=x", "?turn=1&silences=-1", "?turn=1&extra=1"):
        response = phone.post(f"{INPUT}{query}", phone.fields())
        assert response.status_code == 400, (query, response.text)
        assert response.json()["error"]["code"] == "malformed_query"
    not_json = b"uuid=1"
    form = requests.post(
        host.url(EVENT),
        data=not_json,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": phone.authorization(not_json)},
        timeout=30,
    )
    assert form.status_code == 415, form.text
    for duration in ("-1", "1.5", "x", "", " 42", "99999999999", "٣", 4.5, True):
        response = phone.hang_up(duration=duration)
        assert response.status_code == 400, (duration, response.text)
        assert response.json()["error"]["code"] == "malformed_body"
    broken = b'{"uuid": '
    response = requests.post(
        host.url(EVENT),
        data=broken,
        headers={"Content-Type": "application/json", "Authorization": phone.authorization(broken)},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    phone.hang_up()


def test_without_a_signature_secret_the_vonage_routes_answer_503(start_devhost: StartDevHost) -> None:
    unconfigured = start_devhost(VONAGE_SIGNATURE_SECRET="")
    phone = VonageCall(unconfigured.base, SECRET)
    responses = [phone.answer_response(), phone.post(f"{INPUT}?turn=1", phone.fields()), phone.hang_up()]
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "vonage_not_configured"


def test_a_late_reply_gets_fillers_and_inputs_that_come_back_for_the_same_turn(start_devhost: StartDevHost) -> None:
    slow = start_devhost(
        VONAGE_SIGNATURE_SECRET=SECRET, PHONE_REPLY_DEADLINE_SECONDS="2", DEVHOST_SLOW_ACTIVITIES="answer_turn=4.5"
    )  # two fillers at least, and room for two more on a loaded machine before the call gives up
    phone = VonageCall(slow.base, SECRET)
    greeting = phone.answer()
    assert greeting.holds >= 2, "the greeting waits through fillers too"
    assert greeting.said == ["One moment, please."] * greeting.holds
    conversation_id, _ = spoken(greeting)
    started = time.perf_counter()
    late = phone.say("what are your opening hours")
    assert late.holds >= 2
    assert late.said == ["One moment, please."] * late.holds
    assert [ncco[1]["eventUrl"][0][-6:] for ncco in late.ncco[:2]] == ["wait=1", "wait=2"], "each filler counts"
    assert spoken(late) == (conversation_id, 1)
    assert time.perf_counter() - started > 4.5
    assert [t["text"] for t in transcript(slow, conversation_id)["turns"]] == [None, "what are your opening hours"]

    mid_turn = phone.say_once("how much does delivery cost")
    assert mid_turn.status_code == 200, mid_turn.text
    assert mid_turn.json()[0]["text"] == "One moment, please.", "the caller hears a filler while the turn goes on"
    assert phone.hang_up().status_code == 200, "the caller hangs up mid-turn"
    final = ended(slow, conversation_id)
    assert final["outcome"] == "ended_by_client"
    assert [t["text"] for t in final["turns"]] == [
        None,
        "what are your opening hours",
        "how much does delivery cost",
    ], "the turn in flight when the caller hung up is kept, once"

    consent = "This call is recorded for quality."
    recorder = profile("recorder", "Hello, recorded line.", recording=True, recording_consent=consent)
    assert slow.post("/api/agents", json=recorder).status_code == 201
    held = {"number": "+14155550177", "provider": "vonage", "agent": "recorder"}
    assert slow.post("/api/phone-numbers", json=held).status_code == 201
    recorded = VonageCall(slow.base, SECRET, to="14155550177").answer()
    assert recorded.holds >= 1, "the greeting was late"
    assert [action["action"] for action in recorded.ncco[recorded.holds]][:3] == ["talk", "record", "stream"], (
        "a late greeting still opens with the consent line, then the recording, then the greeting"
    )
    assert recorded.said[-1] == consent


def test_a_webhook_answers_inside_vonages_5_seconds_whatever_the_deadline_setting(start_devhost: StartDevHost) -> None:
    slow = start_devhost(
        VONAGE_SIGNATURE_SECRET=SECRET, PHONE_REPLY_DEADLINE_SECONDS="12", DEVHOST_SLOW_ACTIVITIES="answer_turn=6"
    )
    phone = VonageCall(slow.base, SECRET)
    started = time.perf_counter()
    response = phone.answer_response()
    assert response.status_code == 200, response.text
    assert response.json()[0] == {"action": "talk", "text": "One moment, please.", "language": "en-US"}, (
        "a filler: the webhook gave up waiting before the greeting, ready after 6 s, though the setting says 12 s"
    )
    assert time.perf_counter() - started < 6


def test_with_an_application_id_a_webhook_signed_for_another_application_is_refused(
    start_devhost: StartDevHost,
) -> None:
    ours = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
    strict = start_devhost(VONAGE_SIGNATURE_SECRET=SECRET, VONAGE_APPLICATION_ID=ours)
    theirs = VonageCall(strict.base, SECRET).answer_response()
    assert theirs.status_code == 403, theirs.text
    assert theirs.json()["error"]["code"] == "invalid_signature"
    assert strict.get("/api/conversations").json()["items"] == []
    spoken(VonageCall(strict.base, SECRET, application_id=ours).answer())
