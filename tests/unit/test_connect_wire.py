"""The Connect bridge's signed requests and the string map we answer, signed as the bridge Lambda signs."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devhost.connect_sim import bridge
from shared.errors import ApiError, BadRequest, Forbidden, PayloadTooLarge, UnsupportedMediaType
from shared.phone import connect

SECRET = "a-bridge-secret-of-at-least-32-bytes"
CONTACT = str(uuid.uuid4())


def event(**parameters: Any) -> dict[str, Any]:
    return {
        "Name": "ContactFlowEvent",
        "Details": {
            "ContactData": {
                "ContactId": CONTACT,
                "Channel": "VOICE",
                "CustomerEndpoint": {"Address": "+15005550006", "Type": "TELEPHONE_NUMBER"},
                "SystemEndpoint": {"Address": "+18005550199", "Type": "TELEPHONE_NUMBER"},
                "Attributes": {"turn": "2"},
            },
            "Parameters": parameters,
        },
    }


def verified(body: bytes, *, secret: str = SECRET, at: float | None = None) -> tuple[connect.ContactData, connect.Step]:
    timestamp = str(int(time.time() if at is None else at))
    signature = bridge().sign(secret, timestamp, body)
    return connect.verified(SECRET, "application/json", body, timestamp=timestamp, signature=signature)


def encoded(fields: Any) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


def test_the_lambdas_signature_is_the_one_the_route_checks() -> None:
    body = encoded(event())
    assert bridge().sign(SECRET, "1700000000", body) == connect.sign(SECRET, "1700000000", body)
    assert connect.sign(SECRET, "1700000000", body).startswith("v1=")


def test_a_signed_event_gives_the_contact_and_our_step() -> None:
    contact, step = verified(encoded(event(turn="2", silences="1", customer_input=" hello ", flow_own="x")))
    assert (contact.contact_id, contact.customer.address, contact.system.address) == (
        CONTACT,
        "+15005550006",
        "+18005550199",
    )
    assert (step.turn, step.silences, step.wait, step.customer_input, step.event) == (2, 1, 0, " hello ", "")


def test_attributes_the_flow_never_set_arrive_empty_and_mean_the_start() -> None:
    _, step = verified(encoded(event(turn="", silences="", wait="", customer_input="")))
    assert (step.turn, step.silences, step.wait) == (0, 0, 0)
    _, disconnect = verified(encoded(event(event="disconnect")))
    assert disconnect.event == connect.DISCONNECT


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        (None, None),
        ("", "v1=00"),
        ("1700000000", None),
        ("abc", "v1=00"),
        ("1" * 17, "v1=00"),
        ("1700000000", "v1=" + "0" * 64),
    ],
)
def test_a_missing_or_malformed_signature_is_forbidden(timestamp: str | None, signature: str | None) -> None:
    with pytest.raises(Forbidden):
        connect.verified(SECRET, "application/json", encoded(event()), timestamp=timestamp, signature=signature)


def test_a_signature_under_another_secret_over_another_body_or_out_of_time_is_forbidden() -> None:
    body = encoded(event())
    with pytest.raises(Forbidden):
        verified(body, secret="another-bridge-secret-of-32-bytes!!")
    now = time.time()
    for at in (now - connect.MAX_SKEW_SECONDS - 5, now + connect.MAX_SKEW_SECONDS + 5):
        with pytest.raises(Forbidden, match="too old or in the future"):
            verified(body, at=at)
    verified(body, at=now - connect.MAX_SKEW_SECONDS + 5)
    timestamp = str(int(now))
    other = encoded(event(turn="9"))
    with pytest.raises(Forbidden):
        connect.verified(
            SECRET, "application/json", other, timestamp=timestamp, signature=connect.sign(SECRET, timestamp, body)
        )


def test_size_and_type_are_checked_before_the_signature() -> None:
    with pytest.raises(PayloadTooLarge):
        connect.verified(
            SECRET, "application/json", b" " * (connect.MAX_BODY_BYTES + 1), timestamp=None, signature=None
        )
    with pytest.raises(UnsupportedMediaType):
        connect.verified(SECRET, "text/plain", b"{}", timestamp=None, signature=None)


@pytest.mark.parametrize(
    "fields",
    [
        [],
        {"Name": "ContactFlowEvent"},
        {**event(), "Name": "SomethingElse"},
        event(turn="-1"),
        event(turn="1.5"),
        event(wait=str(connect.MAX_HOLDS + 1)),
        event(event="hangup"),
        event(turn=1),
        event(customer_input="x" * (connect.MAX_PARAMETER_CHARS + 1)),
        event(**{f"p{n}": "x" for n in range(connect.MAX_PARAMETERS + 1)}),
    ],
)
def test_what_the_bridge_never_sends_is_a_400(fields: Any) -> None:
    with pytest.raises(BadRequest):
        verified(encoded(fields))


def test_the_answer_is_a_flat_map_of_strings_with_every_key() -> None:
    listening = connect.answer(connect.Action.CONTINUE, "Hello", audio_url="https://a/b", turn=3)
    assert listening == {
        "action": "continue",
        "reply_text": "Hello",
        "audio_url": "https://a/b",
        "listen": "true",
        "turn": "3",
        "silences": "0",
        "wait": "0",
        "transfer_to": "",
        "language": "en-US",
    }
    ending = connect.answer(connect.Action.END, "Bye", listen=True)
    assert ending["listen"] == "false", "an ending call listens for nothing"
    assert set(ending) == set(listening)
    assert set(bridge().apology()) == set(listening), "the bridge's own map has the same keys"


@given(
    body=st.binary(max_size=300)
    | st.text(max_size=300).map(str.encode)
    | st.dictionaries(st.text(max_size=16), st.text(max_size=16) | st.integers(), max_size=8).map(
        lambda parameters: encoded(event(**parameters))
    )
)
def test_any_signed_body_is_an_event_or_a_4xx_never_a_crash(body: bytes) -> None:
    try:
        verified(body)
    except ApiError as error:
        status = error.status
    else:
        status = 200
    assert status == 200 or 400 <= status < 500
