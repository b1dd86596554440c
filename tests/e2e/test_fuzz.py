"""Hostile traffic against a running devhost (issue 13): no 5xx, and the stack stays healthy after it.

Hypothesis draws methods, paths with hostile ids (NUL, unicode, over-long, broken percent-escapes),
bodies (random bytes, JSON of any shape and depth, typed turns with control characters, WAV headers
with hostile rates, channels, widths and sizes), content types and headers, and sends them raw
with `http.client`, so nothing on the client side cleans them up. The run is derandomized: CI
replays the same examples every time.
"""

from __future__ import annotations

import http.client
import json
import struct
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devhost.process import DevHost
from tests.e2e.conftest import StartDevHost

FUZZ_EXAMPLES = 1000
LIVE = "{live}"
VALID_KEY = "{valid-key}"
"""Stands for the devhost's demo key in a drawn header (the key exists only once the host runs)."""
"""Stands for the id of a conversation that is really running, so routes past the id check are hit too."""

HOST_EMPTY_ANSWERS = (400, 404)
"""What the Functions host itself answers, with no body, before any function runs: a path it cannot
decode (400) and a route or method no function has (404)."""
REQUEST_LINE_LIMIT = 8190
"""The HTTP parser's longest request line (aiohttp's; Kestrel's is 8 KB): a longer one is refused with
its own 400 before any routing, so no function answers it (README, "HTTP parser")."""

METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND", "PURGE"])
OTHER_SEGMENTS = st.one_of(
    st.uuids().map(str),
    st.text(max_size=120).map(lambda text: quote(text, safe="")),
    st.sampled_from(["%00", "%ZZ", "%C3%28", "%2F", "%2e%2e", "x" * 5000, "1" * 30, "-1", "00001", "%F0%9F%8E%A7"]),
)
SEGMENTS = st.just(LIVE) | OTHER_SEGMENTS
ANY_PATH = st.sampled_from(
    [
        "/api/conversations/{0}",
        "/api/conversations/{0}/turns",
        "/api/conversations/{1}/end",
        "/api/conversations/{0}/audio/{0}",
        "/api/health",
        "/api/{0}",
        "/API/Conversations/{0}/",
        "/runtime/webhooks/durabletask/instances/{0}",
        "/runtime/webhooks/durabletask/instances/{1}/raiseEvent/{0}",
        "/runtime/webhooks/durabletask/instances/{1}/terminate?reason={0}",
        "/runtime/webhooks/durabletask/orchestrators/{0}/{1}",
        "/runtime/webhooks/durabletask/instances/?runtimeStatus={0}&createdTimeFrom={0}&instanceIdPrefix={0}",
        "/devhost/instances/{0}",
    ]
)
"""Any route with any method; `{1}` never stands for the live conversation, so it is not ended early."""
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@st.composite
def wavs(draw: st.DrawFn) -> bytes:
    """A RIFF/WAVE file whose every header field may lie: rate, channels, width, chunk sizes."""
    channels = draw(st.sampled_from([0, 1, 2, 3, 8, 65535]))
    rate = draw(st.sampled_from([0, 1, 8, 7999, 8000, 16000, 48000, 48001, 192000, 2**32 - 1]))
    bits = draw(st.sampled_from([0, 8, 16, 24, 32]))
    data = draw(st.binary(max_size=4000))
    declared = draw(st.sampled_from([len(data), 0, 2**31, 2**32 - 1]))
    block = max(1, channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", declared) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=2000),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=3000).map(lambda text: json.dumps({"text": text}).encode()),
    st.fixed_dictionaries({"agent": st.text(max_size=80), "language": st.text(max_size=20)}).map(
        lambda body: json.dumps(body).encode()
    ),
    st.integers(min_value=1, max_value=200_000).map(lambda depth: b"[" * depth),
    wavs(),
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=300)
CONTENT_TYPES = st.one_of(
    st.sampled_from(["application/json", "audio/wav", "audio/x-wav", "text/plain", "application/json; charset=utf-8"]),
    HEADER_TEXT,
)


CREDENTIALS = st.one_of(
    st.just(("X-API-Key", VALID_KEY)),
    st.just(("X-API-Key", VALID_KEY)),
    st.just(("X-API-Key", VALID_KEY)),
    st.none(),
    st.tuples(st.just("X-API-Key"), HEADER_TEXT),
    st.tuples(st.just("Authorization"), HEADER_TEXT),
    st.tuples(st.just("Authorization"), st.builds("Bearer {}".format, HEADER_TEXT)),
)
"""Mostly the demo key (so bodies reach the routes), else none, junk keys and junk bearer tokens."""


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


TURNS = st.one_of(
    st.tuples(
        st.just("application/json"), st.text(max_size=3000).map(lambda text: json.dumps({"text": text}).encode())
    ),
    st.tuples(st.sampled_from(["audio/wav", "audio/x-wav"]), wavs()),
    st.tuples(CONTENT_TYPES, BODIES),
)
STARTS = st.one_of(
    st.tuples(
        st.just("application/json"),
        st.fixed_dictionaries({}, optional={"agent": st.text(max_size=80), "language": st.text(max_size=20)}).map(
            lambda body: json.dumps(body).encode()
        ),
    ),
    st.tuples(CONTENT_TYPES, BODIES),
)


@st.composite
def probes(draw: st.DrawFn) -> Probe:
    """Most aimed at the real routes with matching content types (so bodies reach the app), some anywhere."""
    route = draw(st.sampled_from(["turn", "turn", "start", "anywhere"]))
    if route == "turn":
        method, path, (content_type, body) = "POST", f"/api/conversations/{LIVE}/turns", draw(TURNS)
    elif route == "start":
        method, path, (content_type, body) = "POST", "/api/conversations", draw(STARTS)
    else:
        method, path = draw(METHODS), draw(ANY_PATH).format(draw(SEGMENTS), draw(OTHER_SEGMENTS))
        content_type, body = draw(CONTENT_TYPES), draw(BODIES)
    headers = {"Content-Type": content_type}
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(HEADER_TEXT)
    credentials = draw(CREDENTIALS)
    if credentials is not None:
        name, value = credentials
        headers[name] = value
    return Probe(method, path, body, headers)


def send(host: DevHost, probe: Probe, live_id: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)
    try:
        headers = {name: value.replace(VALID_KEY, host.api_key) for name, value in probe.headers.items()}
        connection.request(probe.method, probe.path.replace(LIVE, live_id), body=probe.body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def fuzzed_host(start_devhost: StartDevHost) -> DevHost:
    # No rate limits: a thousand requests in a minute would otherwise be mostly 429s that reach no route.
    return start_devhost(TURN_REPLY_TIMEOUT_SECONDS="60", RATE_LIMIT_PER_KEY="", RATE_LIMIT_PER_IP="")


@pytest.fixture(scope="module")
def live_id(fuzzed_host: DevHost) -> str:
    response = fuzzed_host.post("/api/conversations", json={})
    assert response.status_code == 201, response.text
    return str(response.json()["conversation_id"])


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(probe=probes())
def test_hostile_requests_get_no_5xx_and_api_errors_are_json(fuzzed_host: DevHost, live_id: str, probe: Probe) -> None:
    status, body = send(fuzzed_host, probe, live_id)
    assert status < 500, f"{probe.method} {probe.path[:200]} -> {status} {body[:300]!r}\n{fuzzed_host.log_tail(20)}"
    if len(f"{probe.method} {probe.path.replace(LIVE, live_id)} HTTP/1.1") > REQUEST_LINE_LIMIT:
        assert status == 400, f"an over-long request line -> {status}"
        return
    if status >= 400 and probe.path.lower().startswith("/api/") and probe.method != "HEAD":
        if not body:
            assert status in HOST_EMPTY_ANSWERS, f"{probe.method} {probe.path[:200]} -> empty {status}"
            return
        error = json.loads(body)["error"]
        assert error["code"]
        assert error["message"]


def test_after_the_fuzzing_the_stack_is_healthy_and_talks(fuzzed_host: DevHost) -> None:
    assert fuzzed_host.get("/api/health").status_code == 200, fuzzed_host.log_tail()
    started = fuzzed_host.post("/api/conversations", json={})
    assert started.status_code == 201, started.text
    conversation_id = started.json()["conversation_id"]
    turn = fuzzed_host.post(f"/api/conversations/{conversation_id}/turns", json={"text": "what are your opening hours"})
    assert turn.status_code == 200, turn.text
    assert turn.json()["intent"] == "question"
