"""Realtime sessions end to end: negotiate, connect with Microsoft's Python client to the devhost's local
Web PubSub, speak (typed), and hear the reply streamed to the conversation's group.

The language model is the OpenAI fake, streaming at a paced profile, so the first sentence's audio can
be seen reaching the client before the model has written the rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import (
    CallbackType,
    OnGroupDataMessageArgs,
    OnServerDataMessageArgs,
    SendMessageError,
    WebPubSubDataType,
    WebPubSubProtocolType,
)
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devhost.__main__ import WEB_PUBSUB_KEY_FILE
from devhost.process import DevHost
from shared.speech.audio import decode_wav, resample
from shared.speech.espeak import EspeakSynthesizer
from tests.e2e.conftest import StartDevHost
from tests.e2e.polling import wait_until
from tests.fakes.openai_server import Answer, FakeOpenAIServer

NEGOTIATE = "/api/realtime/negotiate"
EVENTS = "/api/realtime/events"
REPLY_SECONDS = 30
GRACE_SECONDS = 4
"""REALTIME_DISCONNECT_GRACE_SECONDS here: short, so a conversation left alone ends within the test."""


THREE_SENTENCES = (
    '{"intent": "question", "text": "We are open every day from eight in the morning. '
    'On Sundays we close at noon. Delivery is free above twenty euros."}'
)


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(first_token_seconds=0.05, tokens_per_second=8) as server:  # room for a loaded machine
        yield server


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost, model_server: FakeOpenAIServer) -> DevHost:
    """A devhost with its local Web PubSub, as `make dev` runs it, and a streaming model."""
    return start_devhost(
        OPENAI_BASE_URL=f"{model_server.url}/v1",
        OPENAI_API_KEY="sk-realtime-e2e",
        LLM_TIMEOUT_SECONDS="10",
        LLM_MAX_RETRIES="0",
        REALTIME_DISCONNECT_GRACE_SECONDS=str(GRACE_SECONDS),
    )


def access_key(host: DevHost) -> str:
    return (host.data_dir / WEB_PUBSUB_KEY_FILE).read_text().strip()


def service(host: DevHost, key: str | None = None) -> WebPubSubServiceClient:
    connection = f"Endpoint=http://127.0.0.1:{host.webpubsub_port};AccessKey={key or access_key(host)};Version=1.0;"
    return WebPubSubServiceClient.from_connection_string(connection, hub="voice")


def negotiate(host: DevHost, **body: Any) -> dict[str, Any]:
    response = host.post(NEGOTIATE, json=body)
    assert response.status_code in {200, 201}, response.text
    return dict(response.json())


@dataclass
class Session:
    """One client of a conversation: what reached it from its group and from the server, in order."""

    client: WebPubSubClient
    conversation_id: str
    group: str
    received: queue.Queue[tuple[float, str, Any]] = field(default_factory=queue.Queue)

    def say(self, text: str, utterance_id: str) -> float:
        sent = time.time()
        self.client.send_event("utterance", {"id": utterance_id, "text": text}, WebPubSubDataType.JSON)
        return sent

    def next(self, seconds: float = REPLY_SECONDS) -> tuple[float, str, Any]:
        return self.received.get(timeout=seconds)

    def until(self, *kinds: str, seconds: float = REPLY_SECONDS) -> list[tuple[float, str, Any]]:
        """Every message up to and including the first whose `type` is one of `kinds`."""
        seen = []
        while True:
            message = self.next(seconds)
            seen.append(message)
            if isinstance(message[2], dict) and message[2].get("type") in kinds:
                return seen

    def server_message(self, seconds: float = REPLY_SECONDS) -> dict[str, Any]:
        while True:
            _, source, data = self.next(seconds)
            if source == "server":
                return dict(data)


def official_client(url: str, start_timeout: float = 10) -> WebPubSubClient:
    """No retries, and short waits: the SDK waits for an ack (and for a refused start) without checking
    whether it came already."""
    return WebPubSubClient(
        credential=WebPubSubClientCredential(url),
        protocol_type=WebPubSubProtocolType.JSON,
        reconnect_retry_total=0,
        message_retry_total=0,
        start_timeout=start_timeout,
        ack_timeout=2,
    )


def connect(negotiated: dict[str, Any]) -> Session:
    client = official_client(negotiated["url"])
    session = Session(client, negotiated["conversation_id"], negotiated["group"])

    def on_group(args: OnGroupDataMessageArgs) -> None:
        session.received.put((time.time(), args.group, args.data))

    def on_server(args: OnServerDataMessageArgs) -> None:
        session.received.put((time.time(), "server", args.data))

    client.subscribe(CallbackType.GROUP_MESSAGE, on_group)
    client.subscribe(CallbackType.SERVER_MESSAGE, on_server)
    client.open()
    return session


def connection_refused(url: str) -> bool:
    client = official_client(url, start_timeout=2)
    try:
        client.open()
    except Exception:
        return True
    client.close()
    return False


def signed_headers(key: str, connection_id: str, **extra: str) -> dict[str, str]:
    signature = hmac.new(key.encode(), connection_id.encode(), hashlib.sha256).hexdigest()
    return {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-hub": "voice",
        "ce-connectionId": connection_id,
        "ce-signature": f"sha256={signature}",
        **extra,
    }


@pytest.fixture(scope="module")
def session(host: DevHost) -> Any:
    negotiated = negotiate(host, agent="demo")
    assert negotiated["greeting"]
    live = connect(negotiated)
    yield live
    live.client.close()


def test_a_typed_utterance_streams_text_then_each_sentence_in_order_then_done(
    host: DevHost, session: Session, model_server: FakeOpenAIServer
) -> None:
    model_server.script(Answer(THREE_SENTENCES))
    sent = session.say("what are your opening hours", "hours-1")
    messages = session.until("reply.done")
    assert {source for _, source, _ in messages} == {session.group}
    kinds = [data["type"] for _, _, data in messages]
    assert kinds[-1] == "reply.done"
    assert "error" not in kinds
    done = messages[-1][2]
    assert (done["turn"], done["id"], done["transcript"]) == (1, "hours-1", "what are your opening hours")

    text = ""
    deltas = [data for _, _, data in messages if data["type"] == "reply.delta"]
    assert len(deltas) > 1, "the text arrives as the model writes it"
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    for delta in deltas:
        assert delta["offset"] == len(text)
        text += delta["text"]
    assert text == done["text"]

    audio = [(at, data) for at, _, data in messages if data["type"] == "reply.audio"]
    assert [data["index"] for _, data in audio] == [0, 1, 2]
    assert " ".join(data["text"] for _, data in audio) == done["text"]
    for _, data in audio:
        assert decode_wav(base64.b64decode(data["audio"])).duration_seconds == pytest.approx(
            data["duration_seconds"], abs=0.01
        )
        fetched = host.get(data["path"])
        assert fetched.status_code == 200
        assert fetched.content == base64.b64decode(data["audio"])
    first_audio = audio[0][0] - sent
    assert audio[0][0] < model_server.streams_finished_at[-1], "the first sentence is heard before the model ends"
    print(f"first reply.audio {first_audio * 1000:.0f} ms, reply.done {(messages[-1][0] - sent) * 1000:.0f} ms")
    print(f"{len(audio)} sentences, {len(deltas)} deltas, timings {done['timings_ms']}")

    stored = host.get(f"/api/conversations/{session.conversation_id}").json()
    assert [turn["turn"] for turn in stored["turns"]] == [0, 1]
    assert stored["turns"][1]["reply"]["text"] == done["text"]


def test_a_resent_utterance_is_the_same_turn_and_answers_its_reply_again(host: DevHost, session: Session) -> None:
    session.say("how much does delivery cost", "delivery-1")
    done = session.until("reply.done")[-1][2]
    session.say("how much does delivery cost", "delivery-1")
    again = session.server_message()
    assert again == done
    stored = host.get(f"/api/conversations/{session.conversation_id}").json()
    assert [turn["turn"] for turn in stored["turns"]] == [0, 1, 2]


@pytest.mark.parametrize(
    ("event", "data", "data_type", "code"),
    [
        ("utterance", {"id": "x", "text": "   "}, WebPubSubDataType.JSON, "empty_text"),
        ("utterance", {"text": "no id"}, WebPubSubDataType.JSON, "invalid_utterance"),
        ("utterance", {"id": "x", "text": "a" * 2001}, WebPubSubDataType.JSON, "invalid_utterance"),
        ("utterance", {"id": "x", "text": "hi", "extra": 1}, WebPubSubDataType.JSON, "invalid_utterance"),
        ("utterance", "plain text", WebPubSubDataType.TEXT, "invalid_utterance"),
        ("utterance", memoryview(b"RIFF not really a wav"), WebPubSubDataType.BINARY, "invalid_audio"),
        ("utterance", memoryview(b"\x01\x02\x03"), WebPubSubDataType.BINARY, "invalid_audio"),
        ("dance", {"id": "x"}, WebPubSubDataType.JSON, "unknown_event"),
        ("interrupt", {"turn": "last", "played": 1}, WebPubSubDataType.JSON, "invalid_interrupt"),
        ("interrupt", {"turn": 1, "played": -1}, WebPubSubDataType.JSON, "invalid_interrupt"),
        ("interrupt", {"turn": 999, "played": 0}, WebPubSubDataType.JSON, "nothing_to_interrupt"),
    ],
)
def test_a_bad_message_gets_an_error_and_the_session_goes_on(
    session: Session, event: str, data: Any, data_type: WebPubSubDataType, code: str
) -> None:
    session.client.send_event(event, data, data_type)  # type: ignore[call-overload]
    answer = session.server_message()
    assert answer["type"] == "error"
    assert answer["code"] == code, answer
    assert session.client.is_connected()


def test_an_interrupt_stops_the_reply_and_the_turn_keeps_what_was_heard(
    host: DevHost, session: Session, model_server: FakeOpenAIServer
) -> None:
    model_server.script(Answer(THREE_SENTENCES))
    model_server.tokens_per_second = 3  # the third sentence is seconds away when the interrupt is sent
    try:
        session.say("tell me about your hours", "barge-1")
        heard = session.until("reply.audio")
        first = heard[-1][2]
        interrupted_at = time.time()
        session.client.send_event("interrupt", {"turn": first["turn"], "played": 1}, WebPubSubDataType.JSON)
        rest = session.until("reply.done")
    finally:
        model_server.tokens_per_second = 8
    done = rest[-1][2]
    print(f"interrupt → reply.done {(rest[-1][0] - interrupted_at) * 1000:.0f} ms")
    assert done["interrupted"] is True
    assert done["text"] == first["text"] == "We are open every day from eight in the morning."
    indexes = [data["index"] for _, _, data in heard + rest if data["type"] == "reply.audio"]
    assert 2 not in indexes, "the rest of the reply was not sent"
    stored = host.get(f"/api/conversations/{session.conversation_id}").json()["turns"][-1]
    assert (stored["turn"], stored["reply"]["text"]) == (first["turn"], first["text"])
    audio = urlsplit(stored["reply"]["audio_url"])
    assert host.get(f"{audio.path}?{audio.query}").status_code == 200

    for _ in range(25):  # the interrupted turn lets go of the conversation within moments
        session.say("how much does delivery cost", "after-barge")
        answer = session.until("reply.done", "error")[-1][2]
        if answer["type"] == "reply.done":
            break
        assert answer["code"] == "turn_in_progress", answer
        time.sleep(0.2)
    assert answer["id"] == "after-barge"


def test_an_interrupt_after_reply_done_cuts_the_stored_turn_to_what_was_heard_once(
    host: DevHost, session: Session, model_server: FakeOpenAIServer
) -> None:
    model_server.script(Answer(THREE_SENTENCES))
    session.say("tell me about your hours again", "barge-after-done")
    messages = session.until("reply.done")
    done = messages[-1][2]
    assert done["interrupted"] is False
    sentences = [data for _, _, data in messages if data["type"] == "reply.audio"]
    assert len(sentences) == 3

    session.client.send_event("interrupt", {"turn": done["turn"], "played": 1}, WebPubSubDataType.JSON)
    corrected = session.server_message()
    assert corrected["type"] == "reply.done", corrected
    assert (corrected["turn"], corrected["id"], corrected["interrupted"]) == (done["turn"], "barge-after-done", True)
    assert corrected["text"] == sentences[0]["text"]
    session.client.send_event("interrupt", {"turn": done["turn"], "played": 2}, WebPubSubDataType.JSON)
    assert session.server_message() == corrected, "the first interrupt of a turn counts"

    stored = host.get(f"/api/conversations/{session.conversation_id}").json()["turns"][-1]
    assert (stored["turn"], stored["reply"]["text"]) == (done["turn"], sentences[0]["text"])
    assert stored["written_reply"] == done["text"], "what the agent wrote is kept beside what was heard"
    audio = urlsplit(stored["reply"]["audio_url"])
    heard = host.get(f"{audio.path}?{audio.query}")
    assert heard.status_code == 200
    assert decode_wav(heard.content).duration_seconds == pytest.approx(sentences[0]["duration_seconds"], abs=0.01)

    session.say("how much does delivery cost", "after-late-barge")
    assert session.until("reply.done")[-1][2]["id"] == "after-late-barge"
    session.client.send_event("interrupt", {"turn": done["turn"], "played": 0}, WebPubSubDataType.JSON)
    late = session.server_message()
    assert (late["type"], late["code"]) == ("error", "nothing_to_interrupt")
    stored = host.get(f"/api/conversations/{session.conversation_id}").json()["turns"]
    assert stored[-2]["reply"]["text"] == sentences[0]["text"], "a turn no longer the latest is not cut again"


def test_raw_pcm_is_heard_as_a_spoken_turn(session: Session) -> None:
    speech = resample(EspeakSynthesizer().synthesize("what are your opening hours", "en-US", ""), 16000)
    pcm = speech.samples.astype("<i2").tobytes()
    session.client.send_event("utterance", memoryview(pcm), WebPubSubDataType.BINARY)
    done = session.until("reply.done")[-1][2]
    assert "opening hours" in done["transcript"]
    assert done["timings_ms"]["stt"] > 0
    assert done["id"] == f"wav-{hashlib.sha256(pcm).hexdigest()[:40]}"


def test_after_bad_messages_the_conversation_still_answers(session: Session) -> None:
    session.say("what are your opening hours", "hours-after-errors")
    assert session.until("reply.done")[-1][2]["id"] == "hours-after-errors"


def test_forged_events_and_a_foreign_handshake_are_refused(host: DevHost, session: Session) -> None:
    key = access_key(host)
    body = json.dumps({"id": "forged", "text": "transfer me"})
    user = f"demo.{session.conversation_id}"
    forged = signed_headers("not-the-key-" + key, "c1", **{"ce-type": "azure.webpubsub.user.utterance"})
    unsigned = {k: v for k, v in forged.items() if k != "ce-signature"}
    for headers in (forged, unsigned):
        answer = requests.post(host.url(EVENTS), data=body, headers={**headers, "ce-userId": user}, timeout=10)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "invalid_signature"
    other_hub = signed_headers(key, "c1", **{"ce-type": "azure.webpubsub.user.utterance", "ce-hub": "other"})
    assert requests.post(host.url(EVENTS), data=body, headers=other_hub, timeout=10).status_code == 403

    ours = f"127.0.0.1:{host.webpubsub_port}"
    for origin in ("evil.webpubsub.azure.com", ""):
        refused = requests.options(host.url(EVENTS), headers={"WebHook-Request-Origin": origin}, timeout=10)
        assert refused.status_code == 403, refused.text
        assert "WebHook-Allowed-Origin" not in refused.headers
    allowed = requests.options(host.url(EVENTS), headers={"WebHook-Request-Origin": ours}, timeout=10)
    assert (allowed.status_code, allowed.headers["WebHook-Allowed-Origin"]) == (200, ours)
    stored = host.get(f"/api/conversations/{session.conversation_id}").json()
    assert all(turn["text"] != "transfer me" for turn in stored["turns"])


def test_a_token_cannot_join_another_conversations_group(host: DevHost, session: Session) -> None:
    other = connect(negotiate(host))
    try:
        with pytest.raises(SendMessageError) as refused:
            other.client.join_group(session.group)
        assert refused.value.error_detail is not None
        assert refused.value.error_detail.name == "Forbidden"
        other.say("what are your opening hours", "other-1")
        other_done = other.until("reply.done")[-1]
        assert other_done[1] == other.group
    finally:
        other.client.close()
    with pytest.raises(queue.Empty):
        session.received.get(timeout=0.5)  # nothing of the other conversation reached this one


def test_expired_foreign_and_dead_tokens_never_connect(host: DevHost, session: Session) -> None:
    user, group = f"demo.{session.conversation_id}", session.group
    roles = [f"webpubsub.joinLeaveGroup.{group}"]
    expired = service(host).get_client_access_token(user_id=user, roles=roles, minutes_to_expire=-1)["url"]
    foreign = service(host, key="x" * 43).get_client_access_token(user_id=user, roles=roles)["url"]
    nobody = service(host).get_client_access_token(user_id="demo.00000000-0000-4000-8000-000000000000")["url"]
    no_session = service(host).get_client_access_token(user_id="someone")["url"]
    for url in (expired, foreign, nobody, no_session):
        assert connection_refused(url), url


def test_end_closes_the_conversation_and_it_cannot_be_rejoined(host: DevHost) -> None:
    negotiated = negotiate(host)
    ending = connect(negotiated)
    try:
        ending.client.send_event("end", {}, WebPubSubDataType.JSON)
        assert ending.until("conversation.ended")[-1][2] == {"type": "conversation.ended", "outcome": "ended_by_client"}
        conversation = f"/api/conversations/{negotiated['conversation_id']}"
        wait_until(lambda: host.get(conversation).json()["status"], lambda status: status == "completed")
    finally:
        ending.client.close()
    rejoin = host.post(NEGOTIATE, json={"conversation_id": negotiated["conversation_id"]})
    assert rejoin.status_code == 409, rejoin.text
    assert connection_refused(negotiated["url"])


def test_a_client_that_goes_away_ends_its_conversation_after_the_grace_period(host: DevHost) -> None:
    negotiated = negotiate(host)
    conversation = f"/api/conversations/{negotiated['conversation_id']}"
    leaving = connect(negotiated)
    leaving.client.close()
    assert host.get(conversation).json()["status"] == "active", "the grace period runs first"
    ended = wait_until(lambda: host.get(conversation).json(), lambda c: c["status"] == "completed")
    assert ended["outcome"] == "disconnected"
    assert host.post(NEGOTIATE, json={"conversation_id": negotiated["conversation_id"]}).status_code == 409


def test_a_client_that_reconnects_within_the_grace_period_goes_on(host: DevHost) -> None:
    negotiated = negotiate(host)
    conversation = f"/api/conversations/{negotiated['conversation_id']}"
    first = connect(negotiated)
    first.client.close()
    again = connect(negotiate(host, conversation_id=negotiated["conversation_id"]))
    try:
        time.sleep(GRACE_SECONDS + 3)  # past the end of the grace period the first connection's end began
        assert host.get(conversation).json()["status"] == "active"
        again.say("what are your opening hours", "still-here")
        assert again.until("reply.done")[-1][2]["id"] == "still-here"
    finally:
        again.client.close()
    ended = wait_until(lambda: host.get(conversation).json(), lambda c: c["status"] == "completed")
    assert ended["outcome"] == "disconnected", "gone again, and for good this time"


def test_a_retried_negotiate_is_the_same_conversation(host: DevHost) -> None:
    first = host.post(NEGOTIATE, json={}, headers={"Idempotency-Key": "start-once"})
    again = host.post(NEGOTIATE, json={}, headers={"Idempotency-Key": "start-once"})
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json()["conversation_id"] == first.json()["conversation_id"]
    assert again.json()["greeting"] == first.json()["greeting"]


def test_negotiate_needs_credentials_and_a_sound_body(host: DevHost, session: Session) -> None:
    assert host.post(NEGOTIATE, anonymous=True, json={}).status_code == 401
    assert host.post(NEGOTIATE, json={"agent": "nobody-here"}).status_code == 404
    assert host.post(NEGOTIATE, json={"conversation_id": "not-a-uuid"}).status_code == 422
    assert host.post(NEGOTIATE, data=b"[1", headers={"Content-Type": "application/json"}).status_code == 400
    rejoined = host.post(NEGOTIATE, json={"conversation_id": session.conversation_id})
    assert rejoined.status_code == 200, rejoined.text
    assert (rejoined.json()["group"], rejoined.json()["greeting"]) == (session.group, None)
