"""The realtime wire: connection strings, the hub's signature and handshake origin, sessions, and the
order and merging of the messages a web session is sent."""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import Any

import pytest
from pydantic import ValidationError

from shared.realtime.protocol import Hub, RealtimeNotConfigured, Session, TypedUtterance
from shared.realtime.replies import Outbox, reply_done

KEY = "the-access-key"
CONVERSATION = "0f3c5e0e-1111-4222-8333-444455556666"


def hub(
    connection_string: str = "Endpoint=https://Demo.webpubsub.azure.com/;AccessKey=the-access-key;Version=1.0;",
) -> Hub:
    return Hub.from_connection_string(connection_string, "voice")


def azure_signature(key: str, connection_id: str) -> str:
    """As the service computes it (reference-cloud-events: Hex_encoded(HMAC_SHA256(accessKey, connectionId)))."""
    return "sha256=" + hmac.new(key.encode(), connection_id.encode(), hashlib.sha256).hexdigest()


def test_a_connection_string_is_read_as_the_service_sdk_reads_it() -> None:
    assert hub() == Hub("https://demo.webpubsub.azure.com", KEY, "voice")
    local = hub("endpoint=http://127.0.0.1;accesskey=k;version=1.0;port=7072")
    assert (local.endpoint, local.access_key) == ("http://127.0.0.1:7072", "k")
    for broken in ("", "Endpoint=demo.webpubsub.azure.com;AccessKey=k;", "Endpoint=https://x;Version=1.0;"):
        with pytest.raises(RealtimeNotConfigured):
            hub(broken)


def test_an_event_is_signed_when_any_key_of_the_header_is_ours() -> None:
    ours = azure_signature(KEY, "conn-1")
    assert hub().signed("conn-1", ours)
    assert hub().signed("conn-1", f"{azure_signature('secondary', 'conn-1')},{ours}")
    assert not hub().signed("conn-2", ours)
    assert not hub().signed("conn-1", azure_signature("another", "conn-1"))
    assert not hub().signed("conn-1", ours.removeprefix("sha256="))
    assert not hub().signed(None, ours)
    assert not hub().signed("conn-1", None)
    assert not hub().signed("conn-1", "")


def test_the_handshake_is_allowed_for_our_host_only() -> None:
    assert hub().origin_allowed("demo.webpubsub.azure.com")
    assert hub().origin_allowed("DEMO.webpubsub.azure.com")
    local = hub("Endpoint=http://127.0.0.1:7072;AccessKey=k;Version=1.0;")
    assert local.origin_allowed("127.0.0.1:7072")
    assert local.origin_allowed("127.0.0.1")
    for foreign in ("evil.webpubsub.azure.com", "demo.webpubsub.azure.com.evil", "", None, "*"):
        assert not hub().origin_allowed(foreign)


def test_a_session_is_named_by_its_tenant_and_conversation() -> None:
    session = Session("demo", CONVERSATION)
    assert Session.of_user(session.user_id) == session
    assert session.group == f"conversation.{CONVERSATION}"
    for user in (None, "", "demo", f"Demo.{CONVERSATION}", "demo.not-a-uuid", f".{CONVERSATION}", "a b.c"):
        assert Session.of_user(user) is None


def test_a_typed_utterance_needs_an_id_and_text_and_nothing_else() -> None:
    assert TypedUtterance.model_validate({"id": "u-1", "text": "hi"}).id == "u-1"
    for bad in ({"text": "hi"}, {"id": "", "text": "hi"}, {"id": "a b", "text": "hi"}, {"id": "x" * 65, "text": "hi"}):
        with pytest.raises(ValidationError):
            TypedUtterance.model_validate(bad)
    with pytest.raises(ValidationError):
        TypedUtterance.model_validate({"id": "u", "text": "hi", "more": 1})
    with pytest.raises(ValidationError):
        TypedUtterance.model_validate({"id": "u", "text": "x" * 2001})


def test_the_outbox_sends_in_order_and_merges_deltas_waiting_behind_a_send() -> None:
    sent: list[dict[str, Any]] = []
    first_send_started, release = threading.Event(), threading.Event()

    def send(message: dict[str, Any]) -> None:
        if not sent:
            first_send_started.set()
            assert release.wait(5)
        sent.append(message)

    outbox = Outbox(send, "test")
    outbox.put({"type": "reply.delta", "turn": 1, "offset": 0, "text": "We are "})
    assert first_send_started.wait(5)
    outbox.put({"type": "reply.delta", "turn": 1, "offset": 7, "text": "open "})
    outbox.put({"type": "reply.delta", "turn": 1, "offset": 12, "text": "daily."})
    outbox.put({"type": "reply.audio", "turn": 1, "index": 0})
    outbox.put({"type": "reply.delta", "turn": 1, "offset": 18, "text": " Bye."})
    release.set()
    outbox.close()
    assert sent == [
        {"type": "reply.delta", "turn": 1, "offset": 0, "text": "We are ", "seq": 1},
        {"type": "reply.delta", "turn": 1, "offset": 7, "text": "open daily.", "seq": 2},
        {"type": "reply.audio", "turn": 1, "index": 0},
        {"type": "reply.delta", "turn": 1, "offset": 18, "text": " Bye.", "seq": 3},
    ]


def test_a_failed_send_is_dropped_and_the_rest_still_go() -> None:
    sent: list[str] = []

    def send(message: dict[str, Any]) -> None:
        if message["type"] == "reply.audio":
            raise ConnectionError("the service is away")
        sent.append(message["type"])

    outbox = Outbox(send, "test")
    for kind in ("reply.audio", "reply.done"):
        outbox.put({"type": kind, "turn": 1})
    outbox.close()
    assert sent == ["reply.done"]


def test_reply_done_names_the_clients_utterance_only() -> None:
    turn = {"turn": 2, "request_id": "key:u-7", "user_text": "hi", "reply_text": "Hello.", "action": "continue"}
    assert reply_done(turn)["id"] == "u-7"
    assert reply_done(turn | {"request_id": "greeting"})["id"] is None
    assert reply_done(turn | {"request_id": None})["timings_ms"] == {
        "stt": None,
        "agent": None,
        "tts": None,
        "first_audio": None,
    }
