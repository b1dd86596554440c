"""Vonage's signed webhooks and our NCCO, against tokens signed as Vonage signs them (PyJWT, HS256)."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import ApiError, BadRequest, Forbidden, PayloadTooLarge, UnsupportedMediaType
from shared.phone import twilio, vonage

SECRET = "a-signature-secret-of-at-least-32-bytes"
CALL = str(uuid.uuid4())


APPLICATION = str(uuid.uuid4())


def token(payload: bytes, secret: str = SECRET, **claims: Any) -> str:
    body = {
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "api_key": "abcd1234",
        "application_id": APPLICATION,
        "payload_hash": hashlib.sha256(payload).hexdigest(),
        **claims,
    }
    return "Bearer " + jwt.encode(body, secret, algorithm="HS256")


def post(fields: dict[str, Any], query: str = "") -> vonage.Webhook:
    body = json.dumps(fields, separators=(",", ":")).encode()
    return vonage.verified(SECRET, "POST", query, "application/json", body, authorization=token(body))


def test_a_signed_post_is_read_with_our_query_beside_it() -> None:
    hook = post(
        {"uuid": CALL, "to": "14155550101", "speech": {"results": [{"text": " hello ", "confidence": "0.9"}]}},
        "turn=2",
    )
    assert (hook.call.uuid, hook.call.to, hook.call.heard(), hook.ours) == (CALL, "14155550101", "hello", {"turn": "2"})


def test_a_signed_get_hashes_its_query_as_vonage_does() -> None:
    query = f"to=14155550101&from=447700900000&uuid={CALL}&conversation_uuid=CON-{uuid.uuid4()}"
    payload = json.dumps(dict(pair.split("=") for pair in query.split("&")), separators=(",", ":")).encode()
    hook = vonage.verified(SECRET, "GET", query, None, b"", authorization=token(payload))
    assert (hook.call.uuid, hook.call.from_, hook.ours) == (CALL, "447700900000", {})
    assert (hook.signed.application_id, hook.signed.payload_hash) == (APPLICATION, hashlib.sha256(payload).hexdigest())


def test_the_token_id_is_kept_and_a_token_without_a_usable_one_is_forbidden() -> None:
    body = json.dumps({"uuid": CALL}).encode()
    signed = vonage.verified(SECRET, "POST", "", "application/json", body, authorization=token(body, jti="abc-1"))
    assert signed.signed.token_id == "abc-1"
    for jti in (None, "", 12, "x" * (vonage.MAX_TOKEN_ID_CHARS + 1)):
        with pytest.raises(Forbidden):
            vonage.verified(SECRET, "POST", "", "application/json", body, authorization=token(body, jti=jti))


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic abc",
        "Bearer ",
        "Bearer not-a-jwt",
        "x",
    ],
)
def test_a_missing_or_unreadable_token_is_forbidden(authorization: str | None) -> None:
    body = json.dumps({"uuid": CALL}).encode()
    with pytest.raises(Forbidden):
        vonage.verified(SECRET, "POST", "", "application/json", body, authorization=authorization)


def test_another_secret_another_payload_or_no_hash_is_forbidden() -> None:
    body = json.dumps({"uuid": CALL, "to": "14155550101"}).encode()
    tampered = body.replace(b"0101", b"0199")
    for authorization in (
        token(body, secret="another-secret-of-at-least-32-bytes!!"),
        token(tampered),
        token(body, payload_hash=None),
        token(body, iat=int(time.time()) - vonage.MAX_TOKEN_AGE_SECONDS - 5),
        token(body, iat=int(time.time()) + 3600),
        token(body, iat=None),
        "Bearer " + jwt.encode({"iat": int(time.time())}, SECRET, algorithm="HS256"),
    ):
        with pytest.raises(Forbidden):
            vonage.verified(SECRET, "POST", "", "application/json", body, authorization=authorization)


def test_a_get_whose_query_was_changed_is_forbidden() -> None:
    signed = json.dumps({"uuid": CALL, "to": "14155550101"}, separators=(",", ":")).encode()
    with pytest.raises(Forbidden):
        vonage.verified(SECRET, "GET", f"uuid={CALL}&to=14155550199", None, b"", authorization=token(signed))


def test_bodies_vonage_never_sends_are_4xx_after_the_signature() -> None:
    with pytest.raises(UnsupportedMediaType):
        vonage.verified(SECRET, "POST", "", "application/x-www-form-urlencoded", b"uuid=x", authorization=None)
    big = b"{" + b" " * vonage.MAX_BODY_BYTES + b"}"
    with pytest.raises(PayloadTooLarge):
        vonage.verified(SECRET, "POST", "", "application/json", big, authorization=token(big))
    for body in (b"[1]", b"{", json.dumps({"uuid": "not-a-uuid"}).encode(), json.dumps({"to": "1"}).encode()):
        with pytest.raises(BadRequest):
            vonage.verified(SECRET, "POST", "", "application/json", body, authorization=token(body))
    with pytest.raises(BadRequest):
        vonage.verified(SECRET, "POST", "turn=1&turn=2", "application/json", b"{}", authorization=None)


@given(st.binary(max_size=512), st.text(max_size=64))
def test_any_signed_body_or_query_is_parsed_or_a_4xx(body: bytes, query: str) -> None:
    status = 200
    try:
        vonage.verified(SECRET, "POST", query, "application/json", body, authorization=token(body))
    except ApiError as error:
        status = error.status
    assert status == 200 or 400 <= status < 500


def test_every_end_status_vonage_lists_ends_the_conversation_with_an_outcome_like_twilios() -> None:
    ends = {"completed", "busy", "failed", "rejected", "timeout", "unanswered", "cancelled"}
    assert set(vonage.ENDED_STATUSES) == ends
    assert set(vonage.ENDED_STATUSES.values()) == set(twilio.ENDED_STATUSES.values())
    for status in ("started", "ringing", "answered", "disconnected", "human", "machine", ""):
        assert status not in vonage.ENDED_STATUSES


def test_the_call_duration_is_whole_seconds_or_absent() -> None:
    assert post({"uuid": CALL, "status": "completed", "duration": "42"}).call.duration == 42
    assert post({"uuid": CALL, "status": "completed", "duration": 42}).call.duration == 42
    assert post({"uuid": CALL, "status": "busy"}).call.duration is None


@given(duration=st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.booleans()))
def test_any_call_duration_is_seconds_or_a_400(duration: object) -> None:
    whole = duration if isinstance(duration, int) and not isinstance(duration, bool) else None
    if isinstance(duration, str) and re.fullmatch(r"[0-9]{1,9}", duration):
        whole = int(duration)
    if whole is not None and 0 <= whole <= twilio.MAX_CALL_SECONDS:
        assert post({"uuid": CALL, "duration": duration}).call.duration == whole
    else:
        with pytest.raises(BadRequest):
            post({"uuid": CALL, "duration": duration})


def test_our_query_is_the_one_we_write_or_a_400() -> None:
    assert vonage.our_query(vonage.InputStep, {"turn": "3", "wait": "1"}) == vonage.InputStep(turn=3, wait=1)
    for query in ({}, {"turn": "0"}, {"turn": "1", "wait": "99"}, {"turn": "1", "other": "1"}):
        with pytest.raises(BadRequest):
            vonage.our_query(vonage.InputStep, query)


def test_listening_streams_our_audio_then_hears_speech_in_the_agents_language() -> None:
    stream, listen = vonage.listen("https://app/api/voice/vonage/input?turn=1", "hi-IN", ["https://app/a.wav"])
    assert stream == {"action": "stream", "streamUrl": ["https://app/a.wav"], "bargeIn": True}
    assert listen["action"] == "input"
    assert listen["type"] == ["dtmf", "speech"]
    assert listen["eventUrl"] == ["https://app/api/voice/vonage/input?turn=1"]
    assert listen["speech"]["language"] == "hi-IN"
    assert listen["dtmf"] == {"maxDigits": 20, "submitOnHash": True, "timeOut": vonage.KEYPAD_TIMEOUT_SECONDS}
    [_, again] = vonage.prompt_again("https://app/i?turn=1&silences=1", "en-US", "Still there?")
    assert again["type"] == ["dtmf", "speech"]


def test_keys_pressed_are_heard_when_nothing_was_said() -> None:
    keys = {"uuid": CALL, "speech": {"timeout_reason": "start_timeout"}, "dtmf": {"digits": "42#", "timed_out": False}}
    assert post(keys).call.heard() == "42#"
    spoken = {**keys, "speech": {"results": [{"text": "hello"}]}}
    assert post(spoken).call.heard() == "hello", "words win over keys, as Twilio's SpeechResult does"
    assert post({"uuid": CALL, "dtmf": {"digits": None, "timed_out": False}}).call.heard() == ""
    assert post({"uuid": CALL, "dtmf": {"digits": "", "timed_out": True}}).call.heard() == ""
    for digits in ("1" * (vonage.MAX_DIGITS + 1), "12a", "١٢", "1 2", 12):
        with pytest.raises(BadRequest):
            post({"uuid": CALL, "dtmf": {"digits": digits}})


def test_holding_on_talks_then_comes_back_at_once_for_the_same_turn() -> None:
    talk, back = vonage.hold_on("https://app/i?turn=2&wait=1", "en-US", "One moment, please.")
    assert talk == {"action": "talk", "text": "One moment, please.", "language": "en-US"}
    assert (back["eventUrl"], back["speech"]["startTimeout"]) == (["https://app/i?turn=2&wait=1"], 1)
    assert (back["type"], "dtmf" in back) == (["speech"], False), "a key would hold the input open"


def test_a_transfer_connects_the_agents_number_from_the_number_called() -> None:
    stream, connect = vonage.finish(["https://app/a.wav"], "+918045550100", "+14155550101")
    assert stream["action"] == "stream"
    assert connect == {
        "action": "connect",
        "endpoint": [{"type": "phone", "number": "918045550100"}],
        "from": "14155550101",
    }
    assert vonage.finish(["https://app/a.wav"], "+918045550100", "bob")[1]["randomFromNumber"] is True
    assert [a["action"] for a in vonage.finish(["https://app/a.wav"])] == ["stream"]
    assert vonage.say_and_hang_up("en-US", "Not in service.") == [
        {"action": "talk", "text": "Not in service.", "language": "en-US"}
    ]
