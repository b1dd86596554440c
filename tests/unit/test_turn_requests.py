"""Request parsing: every client mistake becomes the right ApiError, nothing else gets through."""

from __future__ import annotations

import io
import wave

import pytest

from shared.errors import ApiError
from shared.turn_requests import TurnBody, media_type, parse_start, parse_turn, request_id_for

LIMIT = 10_000


def wav_bytes(frames: int = 1600) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x01\x00" * frames)
    return buffer.getvalue()


def error_of(call: object) -> tuple[int, str]:
    assert callable(call)
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.status, caught.value.code


def test_typed_turn_text_is_trimmed_and_whitespace_collapsed() -> None:
    assert parse_turn("application/json; charset=utf-8", b'{"text": "  hello \\n there "}', LIMIT) == TurnBody(
        text="hello there"
    )


def test_wav_turn_keeps_the_audio() -> None:
    data = wav_bytes()
    assert parse_turn("audio/wav", data, LIMIT) == TurnBody(wav=data)
    assert parse_turn("audio/x-wav", data, LIMIT).wav == data


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/json", b'{"text": ""}', 422, "empty_text"),
        ("application/json", b'{"text": " \\t "}', 422, "empty_text"),
        ("application/json", b'{"text": 5}', 422, "invalid_request"),
        ("application/json", b'{"text": "hi", "extra": 1}', 422, "invalid_request"),
        ("application/json", b'{"text": "' + b"a" * 2001 + b'"}', 422, "invalid_request"),
        ("application/json", b'{"text": "hi"', 400, "malformed_json"),
        ("application/json", b'["hi"]', 400, "malformed_json"),
        ("application/json", b"\xff\xfe", 400, "malformed_json"),
        ("text/plain", b"hi", 415, "unsupported_media_type"),
        (None, b'{"text": "hi"}', 415, "unsupported_media_type"),
        ("audio/wav", b"RIFF\x00\x00\x00\x00WAVEjunk", 422, "invalid_audio"),
        ("audio/wav", b"", 422, "invalid_audio"),
        ("application/json", b" " * (LIMIT + 1), 413, "payload_too_large"),
    ],
)
def test_bad_turns_get_the_right_error(content_type: str | None, body: bytes, status: int, code: str) -> None:
    assert error_of(lambda: parse_turn(content_type, body, LIMIT)) == (status, code)


def test_start_accepts_an_empty_body_and_validates_fields() -> None:
    assert parse_start(None, b"", LIMIT).agent is None
    started = parse_start("application/json", b'{"agent": "demo", "language": "hi-IN"}', LIMIT)
    assert (started.agent, started.language) == ("demo", "hi-IN")
    assert error_of(lambda: parse_start("application/json", b'{"language": "not a tag!"}', LIMIT)) == (
        422,
        "invalid_request",
    )
    assert error_of(lambda: parse_start("text/plain", b"demo", LIMIT)) == (415, "unsupported_media_type")
    assert error_of(lambda: parse_start("application/json", b"{", LIMIT)) == (400, "malformed_json")


def test_media_type_ignores_parameters_and_case() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type(None) == ""


def test_client_keys_and_generated_ids_never_collide() -> None:
    assert request_id_for("greeting") == "key:greeting"
    assert request_id_for("abc-123_X") == "key:abc-123_X"
    generated = {request_id_for(None) for _ in range(3)}
    assert len(generated) == 3
    assert all(r.startswith("auto:") for r in generated)


@pytest.mark.parametrize("key", ["", "has space", "x" * 201, "tab\there", "naïve"])
def test_unusable_idempotency_keys_are_refused(key: str) -> None:
    assert error_of(lambda: request_id_for(key)) == (400, "invalid_idempotency_key")
