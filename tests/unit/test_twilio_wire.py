"""Twilio's wire formats: the webhook form, its signature (Twilio's own test vector) and our TwiML."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from twilio.request_validator import RequestValidator

from shared.errors import ApiError
from shared.models import PhoneListening
from shared.phone import twilio

CALL_SID = "CA" + "0123456789abcdef" * 2
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_FORM = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}


def form(**fields: str) -> bytes:
    return urlencode({"CallSid": CALL_SID, **fields}).encode()


TOO_MANY_FIELDS = form(**{f"F{n}": "" for n in range(twilio.MAX_FORM_FIELDS)})


def test_the_sdk_signs_twilios_documented_example() -> None:
    assert RequestValidator("12345").compute_signature(VECTOR_URL, VECTOR_FORM) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_a_signature_is_checked_over_url_and_every_field() -> None:
    token, url = "12345", "https://voice.example.com/api/voice/twilio/gather?turn=2"
    parsed = twilio.parse_form(twilio.FORM_TYPE, form(SpeechResult="hello there", To="+18005551212"))
    signature = RequestValidator(token).compute_signature(url, parsed.fields)
    twilio.check_signature(token, url, parsed, signature)
    changed = twilio.parse_form(twilio.FORM_TYPE, form(SpeechResult="hello where", To="+18005551212"))
    refusals: tuple[Callable[[], None], ...] = (
        lambda: twilio.check_signature(token, url, changed, signature),
        lambda: twilio.check_signature(token, url.replace("turn=2", "turn=3"), parsed, signature),
        lambda: twilio.check_signature("54321", url, parsed, signature),
        lambda: twilio.check_signature(token, url, parsed, None),
        lambda: twilio.check_signature(token, url, parsed, ""),
    )
    for wrong in refusals:
        with pytest.raises(ApiError) as refused:
            wrong()
        assert (refused.value.status, refused.value.code) == (403, "invalid_signature")


def test_behind_a_proxy_the_signed_url_is_the_public_one() -> None:
    internal = "http://10.0.0.4:7071/api/voice/twilio/gather?turn=2"
    assert twilio.public_url(internal, "https://voice.example.com/") == (
        "https://voice.example.com/api/voice/twilio/gather?turn=2"
    )
    assert twilio.public_url(internal, "") == internal


def test_the_form_keeps_every_field_and_the_call() -> None:
    parsed = twilio.parse_form("application/x-www-form-urlencoded; charset=utf-8", form(SpeechResult="नमस्ते", To=""))
    assert parsed.call_sid == CALL_SID
    assert parsed.get("SpeechResult") == "नमस्ते"
    assert parsed.get("To") == ""
    assert parsed.get("Digits") == ""


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", b'{"CallSid": "x"}', 415),
        (None, form(), 415),
        (twilio.FORM_TYPE, b"x" * (twilio.MAX_FORM_BYTES + 1), 413),
        (twilio.FORM_TYPE, b"", 400),
        (twilio.FORM_TYPE, b"CallSid", 400),
        (twilio.FORM_TYPE, "CallSid=CA\u00e9".encode(), 400),
        (twilio.FORM_TYPE, form() + b"&SpeechResult=%ff", 400),
        (twilio.FORM_TYPE, form() + b"&CallSid=" + CALL_SID.encode(), 400),
        (twilio.FORM_TYPE, urlencode({"CallSid": "CA123"}).encode(), 400),
        (twilio.FORM_TYPE, form(SpeechResult="a" * (twilio.MAX_FIELD_CHARS + 1)), 400),
        (
            twilio.FORM_TYPE,
            urlencode({f"F{n}": "" for n in range(twilio.MAX_FORM_FIELDS)}).encode() + b"&" + form(),
            400,
        ),
    ],
)
def test_what_twilio_never_sends_is_refused_with_a_4xx(content_type: str | None, body: bytes, status: int) -> None:
    with pytest.raises(ApiError) as refused:
        twilio.parse_form(content_type, body)
    assert refused.value.status == status


@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_body_is_a_form_or_a_4xx(body: bytes) -> None:
    status = 200
    try:
        twilio.parse_form(twilio.FORM_TYPE, body)
    except ApiError as error:
        status = error.status
    assert status == 200 or 400 <= status < 500


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"turn": "3"}, twilio.GatherStep(turn=3, silences=0, wait=0)),
        ({"turn": "3", "silences": "1", "wait": "2"}, twilio.GatherStep(turn=3, silences=1, wait=2)),
    ],
)
def test_the_gather_url_says_which_turn_it_hears(query: dict[str, str], expected: twilio.GatherStep) -> None:
    assert twilio.our_query(twilio.GatherStep, query) == expected


@pytest.mark.parametrize(
    "query",
    [{}, {"turn": "0"}, {"turn": "1,2"}, {"turn": "1", "wait": str(twilio.MAX_HOLDS + 1)}, {"turn": "1", "x": "1"}],
)
def test_a_gather_url_we_never_wrote_is_a_400(query: dict[str, str]) -> None:
    with pytest.raises(ApiError) as refused:
        twilio.our_query(twilio.GatherStep, query)
    assert (refused.value.status, refused.value.code) == (400, "malformed_query")


def test_a_redirect_while_holding_carries_only_its_filler_count() -> None:
    assert twilio.our_query(twilio.Holding, {}) == twilio.Holding(wait=0)
    assert twilio.our_query(twilio.Holding, {"wait": "2"}) == twilio.Holding(wait=2)
    for query in ({"wait": str(twilio.MAX_HOLDS + 1)}, {"turn": "1"}):
        with pytest.raises(ApiError):
            twilio.our_query(twilio.Holding, query)


def test_listening_plays_our_audio_inside_a_gather_posting_to_our_route() -> None:
    action, audio = "https://h/api/voice/twilio/gather?turn=1&silences=0", "https://h/api/a/0?token=t&x=1"
    root = ElementTree.fromstring(twilio.listen(action, "hi-IN", audio))
    assert root.tag == "Response"
    [gather] = list(root)
    assert gather.tag == "Gather"
    assert gather.attrib == {
        "action": action,
        "method": "POST",
        "input": "dtmf speech",
        "language": "hi-IN",
        "speechTimeout": "auto",
        "actionOnEmptyResult": "true",
    }
    assert [(child.tag, child.text) for child in gather] == [("Play", audio)]


def test_an_agents_speech_model_comes_with_whole_seconds_of_silence_and_barge_in_may_be_off() -> None:
    action = "https://h/api/voice/twilio/gather?turn=1&silences=0"
    tuned = PhoneListening(speech_model="googlev2_telephony", speech_timeout_seconds=3, barge_in=False)
    [gather] = list(ElementTree.fromstring(twilio.listen(action, "hi-IN", listening=tuned)))
    assert (gather.attrib["speechModel"], gather.attrib["speechTimeout"]) == ("googlev2_telephony", "3"), (
        "Twilio refuses speechTimeout auto beside a speech model (warning 13335)"
    )
    assert gather.attrib["bargeIn"] == "false"
    [again] = list(ElementTree.fromstring(twilio.prompt_again(action, "hi-IN", "Hello?", tuned)))
    assert (again.attrib["speechModel"], again.attrib["speechTimeout"], again.attrib["bargeIn"]) == (
        "googlev2_telephony",
        "3",
        "false",
    )


@pytest.mark.parametrize("model", ["", "Phone Call", "x" * 65, "phone_call;rm", "-leading"])
def test_a_speech_model_twilio_could_not_name_is_refused(model: str) -> None:
    with pytest.raises(ValidationError):
        PhoneListening(speech_model=model)


def test_holding_on_says_a_filler_and_redirects_to_the_same_wait() -> None:
    root = ElementTree.fromstring(twilio.hold_on("https://h/g?turn=2&wait=1", "en-US", "One moment."))
    assert [(child.tag, child.text) for child in root] == [
        ("Say", "One moment."),
        ("Pause", None),
        ("Redirect", "https://h/g?turn=2&wait=1"),
    ]
    assert root[2].attrib["method"] == "POST"


def test_finishing_plays_the_last_words_then_dials_or_hangs_up() -> None:
    hang_up = ElementTree.fromstring(twilio.finish(["https://h/a"]))
    assert [(child.tag, child.text) for child in hang_up] == [("Play", "https://h/a"), ("Hangup", None)]
    transfer = ElementTree.fromstring(twilio.finish(["https://h/a"], "+918045550100"))
    assert [(child.tag, child.text) for child in transfer] == [("Play", "https://h/a"), ("Dial", "+918045550100")]


def test_the_call_duration_is_whole_seconds_or_absent() -> None:
    assert twilio.call_duration(twilio.parse_form(twilio.FORM_TYPE, form(CallDuration="42"))) == 42
    assert twilio.call_duration(twilio.parse_form(twilio.FORM_TYPE, form())) is None


@given(duration=st.text(min_size=1, max_size=20))
def test_any_call_duration_is_seconds_or_a_400(duration: str) -> None:
    parsed = twilio.parse_form(twilio.FORM_TYPE, form(CallDuration=duration))
    if re.fullmatch(r"[0-9]+", duration) and int(duration) <= twilio.MAX_CALL_SECONDS:
        assert twilio.call_duration(parsed) == int(duration)
    else:
        with pytest.raises(ApiError) as refused:
            twilio.call_duration(parsed)
        assert refused.value.status == 400


def test_every_ended_status_has_its_own_outcome() -> None:
    assert len(set(twilio.ENDED_STATUSES.values())) == len(twilio.ENDED_STATUSES) == 5


@given(query=st.dictionaries(st.sampled_from(["turn", "sentence", "attempt", "wait", "x"]), st.text(max_size=12)))
def test_any_reply_query_is_a_step_or_a_400(query: dict[str, str]) -> None:
    refused: int | None
    try:
        step = twilio.our_query(twilio.ReplyStep, query)
    except ApiError as error:
        refused = error.status
    else:
        refused = None
        assert step.turn >= 1
        assert 0 <= step.wait <= twilio.MAX_HOLDS
    assert refused in (None, 400)
