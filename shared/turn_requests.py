"""Parsing and validating what clients send to the conversation API, before anything happens.

Pure functions: the adapters hand over headers and bytes and get a typed request or an ApiError.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from shared.speech.audio import decode_wav

JSON_TYPES = frozenset({"application/json"})
WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
MAX_TEXT_CHARS = 2000
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")


class StartConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = Field(default=None, max_length=63)
    language: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class TypedTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_TEXT_CHARS)


@dataclass(frozen=True)
class TurnBody:
    """Exactly one of text (typed turn) or wav (spoken turn)."""

    text: str | None = None
    wav: bytes | None = None


def request_id_for(idempotency_key: str | None) -> str:
    """The turn's request id: the client's Idempotency-Key (namespaced) or a fresh one.

    Client keys and generated ids live in separate namespaces, so no client key can collide with
    an id the system uses itself (such as the greeting's).
    """
    if idempotency_key is None:
        return f"auto:{uuid.uuid4().hex}"
    if not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise BadRequest("Idempotency-Key must be 1 to 200 visible ASCII characters.", code="invalid_idempotency_key")
    return f"key:{idempotency_key}"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_size(body: bytes, max_bytes: int) -> None:
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"Request body is {len(body)} bytes; the limit is {max_bytes}.")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"Body is not valid JSON: {error}", code="malformed_json") from error
    if not isinstance(data, dict):
        raise BadRequest("Body must be a JSON object.", code="malformed_json")
    return data


def _validation_message(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors())


def parse_start(content_type: str | None, body: bytes, max_bytes: int) -> StartConversation:
    """An empty body starts a conversation with the default agent."""
    check_size(body, max_bytes)
    if not body.strip():
        return StartConversation()
    if media_type(content_type) not in JSON_TYPES:
        raise UnsupportedMediaType("Send application/json.")
    try:
        return StartConversation.model_validate(_json_object(body))
    except ValidationError as error:
        raise Unprocessable(_validation_message(error), code="invalid_request") from error


def parse_turn(content_type: str | None, body: bytes, max_bytes: int) -> TurnBody:
    check_size(body, max_bytes)
    kind = media_type(content_type)
    if kind in WAV_TYPES:
        decode_wav(body)
        return TurnBody(wav=body)
    if kind not in JSON_TYPES:
        raise UnsupportedMediaType('Send application/json {"text": ...} or an audio/wav body.')
    try:
        turn = TypedTurn.model_validate(_json_object(body))
    except ValidationError as error:
        raise Unprocessable(_validation_message(error), code="invalid_request") from error
    text = " ".join(turn.text.split())
    if not text:
        raise Unprocessable("Text is empty.", code="empty_text")
    return TurnBody(text=text)
