"""Amazon Connect calls through the real bridge Lambda, driven by the simulator that follows our map as
contact-flow.json does."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devhost.__main__ import CONNECT_SECRET_FILE
from devhost.connect_sim import ConnectCall, Heard, bridge
from devhost.process import DevHost
from shared.config import REPOSITORY_ROOT
from shared.speech.audio import decode_wav
from tests.e2e.conftest import StartDevHost
from tests.e2e.credentials import key_header
from tests.e2e.test_agents_api import profile
from tests.e2e.transcripts import QUESTIONS, conversation_count, ended, transcript

SECRET = "local-connect-bridge-secret-for-the-e2e-tests"
CONVERSATION_AUDIO = re.compile(r"/api/conversations/([0-9a-f-]{36})/audio/([0-9]+)$")
APOLOGY = "Sorry, something went wrong on our side. Please call again later."
TWILIO_LINE = "+14155550142"
ACME_CONNECT_LINE = "+14155550143"


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    """A devhost with the local bridge secret it makes itself, as `make dev` does."""
    return start_devhost()


def local_secret(host: DevHost) -> str:
    return (host.data_dir / CONNECT_SECRET_FILE).read_text().strip()


def call(host: DevHost, **options: str) -> ConnectCall:
    return ConnectCall(host.base, local_secret(host), **options)


def spoken(heard: Heard) -> tuple[str, int]:
    """The conversation and turn whose 8 kHz audio the flow was given, checking it was real audio."""
    played = heard.played[-1]
    assert played.status == 200, played.audio[:300]
    audio = decode_wav(played.audio)
    assert (audio.rate, audio.duration_seconds > 0.5) == (8000, True)
    match = CONVERSATION_AUDIO.search(urlsplit(played.url).path)
    assert match is not None, played.url
    return match.group(1), int(match.group(2))


def unsigned(answer: dict[str, str]) -> dict[str, str]:
    """The map with its audio link's path only: a link signed a second later has another token."""
    return {**answer, "audio_url": urlsplit(answer["audio_url"]).path}


def test_a_whole_call_greets_answers_three_questions_and_ends_when_the_caller_hangs_up(host: DevHost) -> None:
    started = time.monotonic()
    phone = call(host)
    greeting = phone.answer()
    conversation_id, turn = spoken(greeting)
    assert turn == 0
    assert greeting.listening
    [answer] = greeting.maps
    assert answer["action"] == "continue"
    assert (answer["turn"], answer["silences"], answer["wait"], answer["listen"]) == ("1", "0", "0", "true")
    assert answer["reply_text"].startswith("Hello")
    assert all(isinstance(value, str) for value in answer.values()), "a flat string map"

    hours = phone.say("what are your opening hours")
    assert spoken(hours) == (conversation_id, 1)
    assert "8 am to 10 pm" in hours.said[0]
    delivery = phone.say("how much does delivery cost")
    assert spoken(delivery) == (conversation_id, 2)
    assert delivery.maps[-1]["turn"] == "3"
    menu = phone.say("what is on the menu")
    assert spoken(menu) == (conversation_id, 3)
    assert menu.maps[-1]["turn"] == "4"

    during = transcript(host, conversation_id)
    assert during["status"] == "active"
    assert [t["text"] for t in during["turns"]] == [None, *QUESTIONS]
    assert [t["reply"]["text"] for t in during["turns"][1:]] == [hours.said[0], delivery.said[0], menu.said[0]]
    assert [c["title"] for c in during["turns"][1]["citations"]] == ["Opening hours"], "answered from its documents"
    assert during["call_duration_seconds"] is None, "known once the call is over"

    assert phone.hang_up()["action"] == "end"
    final = ended(host, conversation_id)
    assert final["outcome"] == "ended_by_client"
    assert [t["text"] for t in final["turns"]] == [None, *QUESTIONS], "every turn, once, in Postgres"
    duration = final["call_duration_seconds"]
    assert duration is not None, "Connect sends no status callback: the disconnect gives the call's length"
    assert 0 <= duration <= time.monotonic() - started + 1, "from the conversation's start to the disconnect"
    assert phone.hang_up()["action"] == "end", "a repeated disconnect is no error"
    assert transcript(host, conversation_id)["call_duration_seconds"] == duration, "the first disconnect's length"


def test_a_retried_invocation_gets_the_same_map_and_makes_no_second_turn_or_call(host: DevHost) -> None:
    before = conversation_count(host)
    phone = call(host)
    first = phone.invoke(phone.parameters())
    again = phone.invoke(phone.parameters())
    assert unsigned(first) == unsigned(again)
    greeting = phone.follow(first)
    conversation_id, _ = spoken(greeting)
    assert conversation_count(host) == before + 1

    asked = phone.parameters("where are you located")
    answered = phone.invoke(asked)
    retried = phone.invoke(asked)
    assert unsigned(answered) == unsigned(retried)
    assert answered["turn"] == "2"
    assert [t["text"] for t in transcript(host, conversation_id)["turns"]] == [None, "where are you located"]
    phone.hang_up()


def test_asking_for_a_person_transfers_to_the_agents_number(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    transfer = phone.say("transfer me to a real person")
    assert spoken(transfer) == (conversation_id, 1)
    assert transfer.maps[-1]["action"] == "transfer"
    assert transfer.dialled == "+918045550100"
    assert ended(host, conversation_id)["outcome"] == "transferred"


def test_the_agent_ending_the_call_ends_the_flow_after_its_goodbye(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    goodbye = phone.say("goodbye")
    assert spoken(goodbye) == (conversation_id, 1)
    assert goodbye.hung_up
    assert not goodbye.listening
    assert goodbye.maps[-1]["action"] == "end"


def test_a_silent_caller_is_prompted_again_then_the_call_ends(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    prompted = phone.say("")
    assert prompted.played == []
    assert prompted.said == ["Are you still there? You can ask me about our opening hours, menu or delivery."]
    assert (prompted.maps[0]["turn"], prompted.maps[0]["silences"]) == ("1", "1")
    phone.say("")
    last = phone.say("")
    assert last.hung_up
    assert last.said == []
    final = ended(host, conversation_id)
    assert [t["kind"] for t in final["turns"]] == ["greeting"]
    assert final["outcome"] == "no_response", "the caller kept silent: not an ending of theirs"


def test_a_caller_who_hangs_up_mid_call_ends_the_conversation(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    phone.say("what are your opening hours")
    assert phone.hang_up()["action"] == "end"
    final = ended(host, conversation_id)
    assert final["outcome"] == "ended_by_client"
    late = phone.invoke(phone.parameters("and the menu?"))
    assert (late["action"], late["reply_text"]) == ("end", ""), "an ended call takes no more turns"
    assert len(transcript(host, conversation_id)["turns"]) == 2


def test_a_number_held_for_another_provider_is_refused_politely_and_starts_nothing(host: DevHost) -> None:
    held = host.post("/api/phone-numbers", json={"number": TWILIO_LINE, "provider": "twilio", "agent": "demo"})
    assert held.status_code == 201, held.text
    before = conversation_count(host)
    heard = call(host, to=TWILIO_LINE).answer()
    assert heard.hung_up
    assert heard.said == ["Sorry, this number is not in service."]
    assert heard.played == []
    assert conversation_count(host) == before


def test_a_number_held_for_amazon_connect_reaches_its_agent_in_its_tenant(host: DevHost) -> None:
    acme = key_header(host, "acme")
    made = host.post("/api/agents", json=profile("front-desk", "Acme front desk, how can I help?"), headers=acme)
    assert made.status_code == 201, made.text
    held = host.post(
        "/api/phone-numbers",
        json={"number": ACME_CONNECT_LINE, "provider": "amazon_connect", "agent": "front-desk"},
        headers=acme,
    )
    assert held.status_code == 201, held.text
    heard = call(host, to=ACME_CONNECT_LINE).answer()
    assert heard.said == ["Acme front desk, how can I help?"]
    conversation_id, _ = spoken(heard)
    theirs = host.get(f"/api/conversations/{conversation_id}", headers=acme)
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["agent"] == "front-desk"
    assert host.get(f"/api/conversations/{conversation_id}").status_code == 404, "not the demo tenant's"
    [listed] = host.get("/api/conversations", headers=acme).json()["items"]
    assert (listed["conversation_id"], listed["channel"]) == (conversation_id, "amazon_connect")


def test_a_forged_missing_stale_or_tampered_signature_is_refused_and_starts_nothing(host: DevHost) -> None:
    before = conversation_count(host)
    phone = call(host)
    event = phone.event(phone.parameters())
    stale = str(int(time.time()) - 301)
    refusals = [
        phone.send(event, signature="v1=" + "0" * 64),
        phone.send(event, signature="", timestamp=""),
        phone.send(event, signature=""),
        phone.send(event, secret="not-our-bridge-secret-at-all-not-ours"),
        phone.send(event, timestamp=stale),
        phone.send(event, timestamp=str(int(time.time()) + 301)),
        phone.send(event, timestamp="12.5"),
    ]
    for refused in refusals:
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "invalid_signature"
    signed_now = str(int(time.time()))
    body = b'{"Name":"ContactFlowEvent"}'
    tampered = phone.send(event, timestamp=signed_now, signature=bridge().sign(phone.secret, signed_now, body))
    assert tampered.status_code == 403, tampered.text
    assert conversation_count(host) == before
    forged = call(host)
    forged.secret = "not-our-bridge-secret-at-all-not-ours"
    assert forged.answer().said == [APOLOGY], "the bridge turns a refusal into a polite end"
    assert conversation_count(host) == before
    log = host.log_tail(3000)
    assert log.count(local_secret(host)) == 1, "printed once, when made, and never logged"
    assert "refused a Connect bridge request" in log


def test_the_local_bridge_secret_is_kept_for_its_owner_only(host: DevHost) -> None:
    assert len(local_secret(host)) >= 32
    assert (host.data_dir / CONNECT_SECRET_FILE).stat().st_mode & 0o777 == 0o600


def test_malformed_requests_are_4xx_never_5xx(host: DevHost) -> None:
    phone = call(host)
    phone.answer()
    good = phone.event(phone.parameters("hello"))
    contact = good["Details"]["ContactData"]
    bodies: list[Any] = [
        [],
        {"Name": "ContactFlowEvent"},
        {**good, "Name": "Other"},
        {**good, "Details": {**good["Details"], "ContactData": {**contact, "ContactId": "../../x"}}},
        {**good, "Details": {**good["Details"], "Parameters": {"turn": "x"}}},
        {**good, "Details": {**good["Details"], "Parameters": {"turn": "-1"}}},
        {**good, "Details": {**good["Details"], "Parameters": {"turn": "1", "wait": "9"}}},
        {**good, "Details": {**good["Details"], "Parameters": {"turn": "1", "event": "explode"}}},
        {**good, "Details": {**good["Details"], "Parameters": {"turn": 1}}},
        {**good, "Details": {**good["Details"], "Parameters": {"turn": "1", "customer_input": "x" * 2000}}},
    ]
    for body in bodies:
        response = phone.send(body)
        assert response.status_code == 400, (body, response.text)
    for raw in (b'{"Name": ', b"\xff\xfe", b"null"):
        response = phone.send({}, body=raw)
        assert response.status_code == 400, (raw, response.text)
    huge = phone.send({}, body=b"{" + b" " * 40000 + b"}")
    assert huge.status_code == 413, huge.text
    assert phone.send(good).status_code == 200
    phone.hang_up()


def test_without_a_bridge_secret_the_route_answers_503(start_devhost: StartDevHost) -> None:
    unconfigured = start_devhost(CONNECT_BRIDGE_SECRET="")
    phone = ConnectCall(unconfigured.base, SECRET)
    response = phone.send(phone.event(phone.parameters()))
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "connect_not_configured"
    assert phone.answer().said == [APOLOGY]


def test_a_late_reply_gets_fillers_inside_connects_8_seconds_and_a_hang_up_mid_turn_keeps_that_turn(
    start_devhost: StartDevHost,
) -> None:
    slow = start_devhost(
        CONNECT_BRIDGE_SECRET=SECRET, PHONE_REPLY_DEADLINE_SECONDS="12", DEVHOST_SLOW_ACTIVITIES="answer_turn=5.5"
    )
    phone = ConnectCall(slow.base, SECRET)
    started = time.perf_counter()
    first = phone.invoke(phone.parameters())
    assert time.perf_counter() - started < 7, "the route waits at most 5 s: inside Connect's 8 s, whatever the setting"
    assert first["reply_text"] == "One moment, please."
    assert (first["action"], first["listen"], first["turn"], first["wait"]) == ("continue", "false", "0", "1")
    greeting = phone.follow(first)
    assert greeting.holds >= 1
    conversation_id, _ = spoken(greeting)

    late = phone.say("what are your opening hours")
    assert late.holds >= 1
    assert late.said[: late.holds] == ["One moment, please."] * late.holds
    assert [m["wait"] for m in late.maps[: late.holds]] == [str(n) for n in range(1, late.holds + 1)]
    assert {m["turn"] for m in late.maps[: late.holds]} == {"1"}, "fillers keep the same turn"
    assert spoken(late) == (conversation_id, 1)
    assert [t["text"] for t in transcript(slow, conversation_id)["turns"]] == [None, "what are your opening hours"]

    mid_turn = phone.invoke(phone.parameters("how much does delivery cost"))
    assert (mid_turn["reply_text"], mid_turn["wait"]) == ("One moment, please.", "1"), "a filler: the turn goes on"
    assert phone.hang_up()["action"] == "end", "the caller hangs up mid-turn (the disconnect flow)"
    final = ended(slow, conversation_id)
    assert final["outcome"] == "ended_by_client"
    assert [t["text"] for t in final["turns"]] == [
        None,
        "what are your opening hours",
        "how much does delivery cost",
    ], "the turn in flight when the caller hung up is kept, once"
    assert final["call_duration_seconds"] >= 11, "the call's length spans the slow greeting and first turn"


@pytest.mark.parametrize("provider", ["twilio", "vonage", "connect"])
def test_make_call_talks_to_the_agent_through_each_provider_from_typed_lines(
    host: DevHost, provider: str, tmp_path: Path
) -> None:
    before = conversation_count(host)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost.call",
            f"--provider={provider}",
            f"--base-url={host.base}",
            f"--data-dir={host.data_dir}",
            f"--audio-dir={tmp_path}",
        ],
        input="what are your opening hours\n\nbye\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPOSITORY_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "agent: Hello, this is Asha" in out
    assert "you> what are your opening hours" in out
    assert "8 am to 10 pm" in out
    assert "agent: Are you still there?" in out
    assert "call ended: you hung up" in out
    assert len(re.findall(r"\[first audio after \d+ ms", out)) == 2
    assert "first audio per turn: " in out
    saved = sorted(tmp_path.glob("*.wav"))
    assert saved, out
    assert decode_wav(saved[0].read_bytes()).rate == 8000
    assert conversation_count(host) == before + 1
    [latest] = host.get("/api/conversations", params={"limit": "1"}).json()["items"]
    final = ended(host, latest["conversation_id"])
    assert [t["text"] for t in final["turns"]] == [None, "what are your opening hours"]
