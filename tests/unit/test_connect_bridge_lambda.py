"""The bridge Lambda against a tiny local HTTP server standing in for the app: it signs what it sends as
the route checks it, hands a string map back unchanged, and turns any failure into the apology map."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devhost.connect_sim import ConnectCall, bridge
from shared.phone import connect

SECRET = "a-bridge-secret-of-at-least-32-bytes"
Answer = Callable[[bytes, dict[str, str]], tuple[int, bytes]]


class App:
    """What the server received, and how it answers (status, body) for a body and its headers."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.answer: Answer = lambda body, headers: (200, b"{}")


@pytest.fixture
def app() -> Iterator[tuple[App, str]]:
    state = App()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {name.lower(): value for name, value in self.headers.items()}
            state.received.append((body, headers))
            status, answer = state.answer(body, headers)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/api/voice/connect"
    server.shutdown()
    server.server_close()


def invoke(url: str, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, str]:
    monkeypatch.setenv("BRIDGE_URL", url)
    monkeypatch.setenv("CONNECT_BRIDGE_SECRET", SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    answer: dict[str, str] = bridge().lambda_handler(event, None)
    return answer


def contact_event() -> dict[str, Any]:
    phone = ConnectCall("http://unused", SECRET)
    return phone.event(phone.parameters("what are your opening hours"))


def test_the_event_is_forwarded_signed_and_the_map_comes_back_unchanged(
    app: tuple[App, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = app
    ours = connect.answer(connect.Action.CONTINUE, "We open at 8.", turn=2)
    state.answer = lambda body, headers: (200, json.dumps(ours).encode())
    event = contact_event()
    assert invoke(url, event, monkeypatch) == ours
    [(body, headers)] = state.received
    assert json.loads(body) == event
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["x-bridge-timestamp"]) - time.time()) < 5
    connect.check_signature(SECRET, headers["x-bridge-timestamp"], headers["x-bridge-signature"], body)


@pytest.mark.parametrize(
    "answer",
    [
        (403, b'{"error": {"code": "invalid_signature", "message": "no"}}'),
        (503, b'{"error": {"code": "connect_not_configured", "message": "no"}}'),
        (200, b"not json"),
        (200, b'["a list"]'),
        (200, b'{"turn": 2}'),
        (200, b'{"nested": {"a": "b"}}'),
    ],
)
def test_a_refusal_or_an_answer_that_is_no_string_map_ends_the_call_with_an_apology(
    app: tuple[App, str], monkeypatch: pytest.MonkeyPatch, answer: tuple[int, bytes]
) -> None:
    state, url = app
    state.answer = lambda body, headers: answer
    assert invoke(url, contact_event(), monkeypatch) == bridge().apology()


def test_an_app_slower_than_the_bridge_timeout_ends_the_call_with_an_apology_in_time(
    app: tuple[App, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = app

    def slow(body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        time.sleep(5)
        return 200, b"{}"

    state.answer = slow
    started = time.perf_counter()
    assert invoke(url, contact_event(), monkeypatch, BRIDGE_TIMEOUT_SECONDS="0.3") == bridge().apology()
    assert time.perf_counter() - started < 4, "it gave up at its own timeout, not when the app answered"


def test_no_app_or_no_configuration_ends_the_call_with_an_apology(monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke("http://127.0.0.1:9/api/voice/connect", contact_event(), monkeypatch) == bridge().apology()
    monkeypatch.delenv("CONNECT_BRIDGE_SECRET")
    assert bridge().lambda_handler(contact_event(), None) == bridge().apology()


def test_the_timeout_never_exceeds_what_connects_8_seconds_leave(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bridge().timeout_seconds() == bridge().DEFAULT_TIMEOUT_SECONDS
    monkeypatch.setenv("BRIDGE_TIMEOUT_SECONDS", "30")
    assert bridge().timeout_seconds() == bridge().MAX_TIMEOUT_SECONDS < 8
    monkeypatch.setenv("BRIDGE_TIMEOUT_SECONDS", "2.5")
    assert bridge().timeout_seconds() == 2.5


def test_an_event_it_cannot_send_ends_the_call_with_an_apology_and_never_raises(
    app: tuple[App, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = app
    assert invoke(url, {"Details": "not a contact", "odd": {1, 2}}, monkeypatch) == bridge().apology()
    assert state.received == []
