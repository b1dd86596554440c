"""The devhost's local Web PubSub, driven by Microsoft's own Python SDKs as they would drive Azure.

The service SDK (azure-messaging-webpubsubservice) signs its REST calls and client tokens with the
access key; the client SDK (azure-messaging-webpubsubclient) speaks the json.webpubsub.azure.v1
subprotocol. A small event handler (tests/webpubsub_local.py) records the CloudEvents the emulator
delivers upstream.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import queue
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.messaging.webpubsubclient import WebPubSubClient
from azure.messaging.webpubsubclient.models import (
    CallbackType,
    OnGroupDataMessageArgs,
    OnServerDataMessageArgs,
    SendMessageError,
    WebPubSubDataType,
)

from shared.config import REPOSITORY_ROOT
from tests.webpubsub_local import HUB, KEY, Emulator, Handler, local_webpubsub


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with local_webpubsub() as running:
        yield running


def server_messages(client: WebPubSubClient) -> queue.Queue[Any]:
    """What reaches the client, in order: a server message's data, or a group message's (group, data)."""
    received: queue.Queue[Any] = queue.Queue()

    def on_message(args: OnServerDataMessageArgs) -> None:
        received.put(args.data)

    def on_group_message(args: OnGroupDataMessageArgs) -> None:
        received.put((args.group, args.data))

    client.subscribe(CallbackType.SERVER_MESSAGE, on_message)
    client.subscribe(CallbackType.GROUP_MESSAGE, on_group_message)
    return received


def connection_ids(client: WebPubSubClient) -> queue.Queue[str]:
    """The connection ids the service announces (its `connected` message arrives after `open` returns)."""
    ids: queue.Queue[str] = queue.Queue()
    client.subscribe(CallbackType.CONNECTED, lambda args: ids.put(args.connection_id))
    return ids


def events_of(handler: Handler, kind: str, connection_id: str) -> list[tuple[dict[str, str], bytes]]:
    return [e for e in handler.events if e[0]["ce-type"] == kind and e[0]["ce-connectionId"] == connection_id]


def wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_service_sdk_reaches_a_client_by_group_connection_user_and_all(emulator: Emulator) -> None:
    service = emulator.service()
    token = service.get_client_access_token(user_id="ada", roles=["webpubsub.joinLeaveGroup.room"])
    assert token["url"].startswith(f"ws://127.0.0.1:{emulator.endpoint.url.rsplit(':', 1)[1]}/client/hubs/{HUB}?")
    client = emulator.client(token["url"])
    received, ids = server_messages(client), connection_ids(client)
    with client:
        connection_id = ids.get(timeout=5)
        client.join_group("room")
        service.send_to_group("room", {"to": "group"}, content_type="application/json")
        service.send_to_connection(connection_id, "to connection", content_type="text/plain")
        service.send_to_user("ada", {"to": "user"})
        service.send_to_all(io.BytesIO(b"\x00\x01"), content_type="application/octet-stream")
        got = [received.get(timeout=5) for _ in range(4)]
        assert got[:3] == [("room", {"to": "group"}), "to connection", {"to": "user"}]
        assert bytes(got[3]) == b"\x00\x01"
        assert service.connection_exists(connection_id)
        service.remove_connection_from_group("room", connection_id)
        service.send_to_group("room", {"to": "nobody"})
        service.send_to_connection(connection_id, "after leaving")
        assert received.get(timeout=5) == "after leaving"


def test_events_reach_the_handler_signed_after_the_handshake(emulator: Emulator) -> None:
    client = emulator.client(emulator.service().get_client_access_token(user_id="bob")["url"])
    received, ids = server_messages(client), connection_ids(client)
    with client:
        connection_id = ids.get(timeout=5)
        client.send_event("echo", {"said": "hello"}, WebPubSubDataType.JSON)
        assert received.get(timeout=5) == {"echoed": {"said": "hello"}}
    wait_for(lambda: events_of(emulator.handler, "azure.webpubsub.sys.disconnected", connection_id))
    assert emulator.handler.origins[0] == emulator.endpoint.origin
    [(connect, body)] = events_of(emulator.handler, "azure.webpubsub.sys.connect", connection_id)
    expected = hmac.new(KEY.encode(), connection_id.encode(), hashlib.sha256).hexdigest()
    assert connect["ce-signature"] == f"sha256={expected}"
    assert (connect["ce-userId"], connect["ce-hub"], connect["ce-eventName"]) == ("bob", HUB, "connect")
    assert json.loads(body)["claims"]["sub"] == ["bob"]
    [(echo, _)] = events_of(emulator.handler, "azure.webpubsub.user.echo", connection_id)
    assert echo["ce-subprotocol"] == "json.webpubsub.azure.v1"
    assert echo["ce-source"] == f"/hubs/{HUB}/client/{connection_id}"
    assert events_of(emulator.handler, "azure.webpubsub.sys.connected", connection_id)


def test_a_group_needs_its_role_and_the_handler_may_add_groups(emulator: Emulator) -> None:
    service = emulator.service()
    client = emulator.client(service.get_client_access_token(roles=["webpubsub.joinLeaveGroup.mine"])["url"])
    received = server_messages(client)
    with client:
        client.join_group("mine")
        with pytest.raises(SendMessageError) as refused:
            client.join_group("theirs")
        assert refused.value.error_detail is not None
        assert refused.value.error_detail.name == "Forbidden"
        with pytest.raises(SendMessageError):
            client.send_to_group("mine", "not allowed to send", WebPubSubDataType.TEXT)
        service.send_to_group("lobby", "from the connect answer", content_type="text/plain")
        assert received.get(timeout=5) == ("lobby", "from the connect answer")


def test_bad_expired_and_refused_tokens_never_connect(emulator: Emulator) -> None:
    foreign = emulator.service(key="another-key-that-is-not-the-emulators-0123456789")
    expired = emulator.service().get_client_access_token(minutes_to_expire=-1)["url"]
    for url in (foreign.get_client_access_token()["url"], expired, expired.split("?")[0]):
        with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK raises a bare Exception on a refused start
            emulator.client(url).open()
    emulator.handler.refuse_connect = True
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011
            emulator.client(emulator.service().get_client_access_token()["url"]).open()
    finally:
        emulator.handler.refuse_connect = False


def test_rest_calls_signed_with_another_key_are_refused(emulator: Emulator) -> None:
    with pytest.raises(HttpResponseError) as refused:
        emulator.service(key="another-key-that-is-not-the-emulators-0123456789").send_to_all({"x": 1})
    assert refused.value.status_code == 401


@dataclass
class JavaScriptClient:
    """Microsoft's JavaScript client in Node (tests/integration/js/webpubsub_client.mjs), line by line."""

    process: subprocess.Popen[str]

    @classmethod
    def start(cls, url: str) -> JavaScriptClient:
        script = Path(__file__).parent / "js" / "webpubsub_client.mjs"
        process = subprocess.Popen(
            ["node", str(script), url],
            cwd=REPOSITORY_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return cls(process)

    def seen(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the JavaScript client exited ({self.process.poll()})"
        return dict(json.loads(line))

    def do(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.seen()

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps({"do": "stop"}) + "\n")
            self.process.stdin.flush()
            self.process.wait(10)


def test_the_javascript_client_connects_joins_sends_events_and_hears_group_and_server(emulator: Emulator) -> None:
    service = emulator.service()
    token = service.get_client_access_token(user_id="js", roles=["webpubsub.joinLeaveGroup.room"])
    client = JavaScriptClient.start(token["url"])
    try:
        connected = client.seen()
        assert (connected["kind"], connected["userId"]) == ("connected", "js")
        assert client.do(**{"do": "join", "group": "room"}) == {"kind": "done", "do": "join"}
        assert client.do(**{"do": "join", "group": "theirs"})["error"] == "Forbidden"
        service.send_to_group("room", {"to": "group"}, content_type="application/json")
        assert client.seen() == {"kind": "group", "group": "room", "data": {"to": "group"}}
        answers = [client.do(**{"do": "event", "event": "echo", "data": {"said": "hi"}}), client.seen()]
        assert {"kind": "server", "data": {"echoed": {"said": "hi"}}} in answers  # before or after the ack
        assert {"kind": "done", "do": "event"} in answers
    finally:
        client.stop()
    wait_for(lambda: events_of(emulator.handler, "azure.webpubsub.sys.disconnected", connected["connectionId"]))
    [(echo, _)] = events_of(emulator.handler, "azure.webpubsub.user.echo", connected["connectionId"])
    assert echo["ce-subprotocol"] == "json.reliable.webpubsub.azure.v1"


def test_the_javascript_client_is_refused_an_expired_token(emulator: Emulator) -> None:
    client = JavaScriptClient.start(emulator.service().get_client_access_token(minutes_to_expire=-1)["url"])
    try:
        assert client.seen()["kind"] == "refused"
    finally:
        client.process.wait(10)
