"""Request parsing: every client mistake becomes the right ApiError, nothing else gets through."""

from __future__ import annotations

import io
import json
import wave

import numpy as np
import pytest

from shared.errors import ApiError
from shared.turn_requests import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_TEXT_CHARS,
    TurnBody,
    media_type,
    parse_start,
    parse_turn,
    request_id_for,
)

LIMIT = 100_000
AUDIO_SECONDS = 30.0


def wav_bytes(frames: int = 1600, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * frames)
    return buffer.getvalue()


def error_of(call: object) -> tuple[int, str]:
    return refusal(call)[:2]


def refusal(call: object) -> tuple[int, str, str]:
    assert callable(call)
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.status, caught.value.code, caught.value.message


def turn(content_type: str | None, body: bytes) -> TurnBody:
    return parse_turn(content_type, body, LIMIT, AUDIO_SECONDS)


def json_body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_typed_turn_text_is_trimmed_and_whitespace_collapsed() -> None:
    assert turn("application/json; charset=utf-8", b'{"text": "  hello \\n there "}') == TurnBody(text="hello there")


def test_wav_turn_keeps_the_audio() -> None:
    data = wav_bytes()
    assert turn("audio/wav", data) == TurnBody(wav=data)
    assert turn("audio/x-wav", data).wav == data


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
        ("application/json", b" " * (MAX_JSON_BYTES + 1), 413, "payload_too_large"),
    ],
)
def test_bad_turns_get_the_right_error(content_type: str | None, body: bytes, status: int, code: str) -> None:
    assert error_of(lambda: turn(content_type, body)) == (status, code)


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


def test_finding_3_wav_claiming_8_hz_is_refused_before_any_work() -> None:
    status, code, message = refusal(lambda: turn("audio/wav", wav_bytes(500, rate=8)))
    assert (status, code) == (422, "invalid_audio")
    assert "8000 to 48000 Hz" in message


def test_finding_3_a_wav_turn_longer_than_the_setting_is_refused_saying_the_limit() -> None:
    two_seconds = wav_bytes(16000 * 2)
    assert parse_turn("audio/wav", two_seconds, LIMIT, max_audio_seconds=2).wav == two_seconds
    status, code, message = refusal(lambda: parse_turn("audio/wav", two_seconds, LIMIT, max_audio_seconds=1.5))
    assert (status, code) == (422, "invalid_audio")
    assert "the limit is 1.5 s" in message


REFUSED_CHARACTERS = ["\x00", "\x07", "\x0b", "\x1b", "\x1f", "\x7f", "\x85", "\x9f", "\ud800", "\udfff"]


@pytest.mark.parametrize("character", REFUSED_CHARACTERS)
def test_finding_4_nul_control_characters_and_lone_surrogates_in_turn_text_are_invalid_text(character: str) -> None:
    status, code, message = refusal(lambda: turn("application/json", json_body({"text": f"hi{character}there"})))
    assert (status, code) == (422, "invalid_text")
    assert f"text: contains U+{ord(character):04X}" in message


@pytest.mark.parametrize("character", REFUSED_CHARACTERS)
@pytest.mark.parametrize("field", ["agent", "language"])
def test_finding_4_nul_and_lone_surrogates_in_agent_and_language_are_invalid_text(field: str, character: str) -> None:
    body = json_body({field: f"en{character}"})
    assert error_of(lambda: parse_start("application/json", body, LIMIT)) == (422, "invalid_text")


def test_finding_4_tabs_and_line_breaks_become_spaces_and_paired_surrogates_are_text() -> None:
    assert turn("application/json", b'{"text": "a\\tb\\r\\nc \\ud83d\\ude00"}') == TurnBody(text="a b c \U0001f600")


def test_finding_4_text_is_bounded_in_characters_before_and_after_normalisation() -> None:
    """An emoji is one character (two UTF-16 units, 12 escaped bytes); normalising never lengthens."""
    emoji = "\U0001f600"
    longest = turn("application/json", json_body({"text": emoji * MAX_TEXT_CHARS}))
    assert longest.text is not None
    assert len(longest.text) == MAX_TEXT_CHARS
    assert error_of(lambda: turn("application/json", json_body({"text": emoji * (MAX_TEXT_CHARS + 1)}))) == (
        422,
        "invalid_request",
    )
    rng = np.random.default_rng(11)
    alphabet = np.array([*" \t\r\nab\u00a0\u2028\u3000", emoji])
    for _ in range(200):
        text = "x" + "".join(rng.choice(alphabet, int(rng.integers(0, MAX_TEXT_CHARS))))
        heard = turn("application/json", json_body({"text": text})).text
        assert heard is not None
        assert len(heard) <= MAX_TEXT_CHARS
        assert heard == " ".join(heard.split())


def test_finding_5_json_nested_deeper_than_the_limit_is_refused_before_parsing() -> None:
    deepest = b'{"text": "hi", "x": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    assert error_of(lambda: turn("application/json", deepest)) == (422, "invalid_request")
    one_more = b'{"text": "hi", "x": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}"
    status, code, message = refusal(lambda: turn("application/json", one_more))
    assert (status, code) == (400, "malformed_json")
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in message
    assert error_of(lambda: turn("application/json", b"[" * 30_000)) == (400, "malformed_json")
    assert error_of(lambda: parse_start("application/json", b"{" * 30_000, LIMIT)) == (400, "malformed_json")


def test_finding_5_100_000_open_brackets_are_a_4xx_not_a_500() -> None:
    assert error_of(lambda: turn("application/json", b"[" * 100_000)) == (413, "payload_too_large")


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": "' + b"[" * 1000 + b'"}',
        b'{"text": "\\"' + b"[" * 1000 + b'"}',
        b'{"text": "\\\\' + b"]" * 1000 + b'"}',
    ],
)
def test_finding_5_brackets_inside_strings_do_not_count_as_nesting(body: bytes) -> None:
    assert turn("application/json", body).text is not None


@pytest.mark.parametrize(
    "body",
    [
        b'"' + b'\\"' * 10_000,
        b'["' + b"[" * 10_000,
        b"[" * 20 + b'"\\' + b"[" * 10_000,
        b'{"text": 1' + b"1" * 5000 + b"}",
    ],
)
def test_finding_5_unterminated_strings_and_huge_numbers_are_malformed_json(body: bytes) -> None:
    assert error_of(lambda: turn("application/json", body)) == (400, "malformed_json")
