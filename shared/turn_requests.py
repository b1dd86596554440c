"""Parsing and validating what clients send to the conversation API, before anything happens.

Pure functions: the adapters hand over headers and bytes and get a typed request or an ApiError.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from shared.errors import BadRequest, InvalidText, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from shared.speech.audio import decode_wav

JSON_TYPES = frozenset({"application/json"})
WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
MAX_TEXT_CHARS = 2000
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
MAX_JSON_BYTES = 32 * 1024
"""JSON bodies carry at most MAX_TEXT_CHARS characters (12 bytes each at worst, as an escaped
surrogate pair) and a few short fields, so they get a bound far below MAX_REQUEST_BYTES, which is
sized for audio: parsing and scanning them stays a few milliseconds."""
MAX_JSON_DEPTH = 32
"""Bodies here are flat objects. Deeper nesting is refused before parsing: the stdlib parser recurses
once per level, and 100,000 levels raised RecursionError (a 500)."""
_JSON_BRACKET = re.compile(r'(?:[^"\[\]{}]++|"(?:[^"\\]|\\.)*+")*+([\[\]{}])', re.DOTALL)
"""The next bracket outside strings, whole strings skipped in one step. Matched at the end of the
previous bracket and possessive, so a scan is linear in the body whatever the body holds."""
_REFUSED_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
"""C0/C1 control characters but tab, line feed and carriage return (turn text turns those into
spaces), and unpaired surrogates: Postgres refuses NUL and psycopg cannot encode a lone surrogate,
so either would fail the turn after it was accepted."""

Model = TypeVar("Model", bound=BaseModel)


def usable_text(value: Any) -> Any:
    """Refuse text no store or provider can take, before any other check of the field."""
    if isinstance(value, str) and (refused := _REFUSED_CHARACTER.search(value)) is not None:
        raise PydanticCustomError(
            "invalid_text",
            "contains U+{code}, a control character or unpaired surrogate; send plain text",
            {"code": f"{ord(refused.group()):04X}"},
        )
    return value


ClientText = Annotated[str, BeforeValidator(usable_text)]
"""A string a client sends that will be stored or passed to a provider."""


class StartConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: ClientText | None = Field(default=None, max_length=63)
    language: ClientText | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class TypedTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: ClientText = Field(max_length=MAX_TEXT_CHARS)


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


def _nested_deeper_than(text: str, limit: int) -> bool:
    depth = 0
    position = 0
    while (bracket := _JSON_BRACKET.match(text, position)) is not None:
        position = bracket.end()
        depth += 1 if bracket.group(1) in "[{" else -1
        if depth > limit:
            return True
    return False


def _finite(text: str) -> float:
    """A JSON number as a float, refusing what JSON has no number for (NaN, or an overflow to infinity):
    Postgres stores neither in jsonb."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is no finite number")
    return value


def _not_a_number(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _json_object(body: bytes, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"JSON body is {len(body)} bytes; the limit is {max_bytes}.")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadRequest(f"Body is not UTF-8 JSON: {error}", code="malformed_json") from error
    if _nested_deeper_than(text, MAX_JSON_DEPTH):
        raise BadRequest(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels.", code="malformed_json")
    try:
        data = json.loads(text, parse_float=_finite, parse_constant=_not_a_number)
    # ValueError besides JSONDecodeError: an integer longer than Python converts (4300 digits).
    except ValueError as error:
        raise BadRequest(f"Body is not valid JSON: {error}", code="malformed_json") from error
    if not isinstance(data, dict):
        raise BadRequest("Body must be a JSON object.", code="malformed_json")
    return data


def _validated(model: type[Model], data: dict[str, Any]) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors())
        if any(e["type"] == "invalid_text" for e in error.errors()):
            raise InvalidText(message) from error
        raise Unprocessable(message, code="invalid_request") from error


def parse_start(content_type: str | None, body: bytes, max_bytes: int) -> StartConversation:
    """An empty body starts a conversation with the default agent."""
    check_size(body, max_bytes)
    if not body.strip():
        return StartConversation()
    if media_type(content_type) not in JSON_TYPES:
        raise UnsupportedMediaType("Send application/json.")
    return _validated(StartConversation, _json_object(body))


def parse_turn(content_type: str | None, body: bytes, max_bytes: int, max_audio_seconds: float) -> TurnBody:
    check_size(body, max_bytes)
    kind = media_type(content_type)
    if kind in WAV_TYPES:
        decode_wav(body, max_audio_seconds)
        return TurnBody(wav=body)
    if kind not in JSON_TYPES:
        raise UnsupportedMediaType('Send application/json {"text": ...} or an audio/wav body.')
    turn = _validated(TypedTurn, _json_object(body))
    # Collapsing whitespace (tabs and line breaks included) never lengthens the text.
    text = " ".join(turn.text.split())
    if not text:
        raise Unprocessable("Text is empty.", code="empty_text")
    return TurnBody(text=text)


def parse_json(model: type[Model], content_type: str | None, body: bytes, max_bytes: int = MAX_JSON_BYTES) -> Model:
    """A JSON object body as `model` (the admin routes' bodies: small, bounded by MAX_JSON_BYTES unless the
    route says otherwise)."""
    if media_type(content_type) not in JSON_TYPES:
        raise UnsupportedMediaType("Send application/json.")
    return _validated(model, _json_object(body, max_bytes))


def parse_query(model: type[Model], params: Mapping[str, str]) -> Model:
    """Query parameters as `model`; a bad or unknown one is a 400 naming it."""
    try:
        return model.model_validate(dict(params))
    except ValidationError as error:
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'query'}: {e['msg']}" for e in error.errors())
        raise BadRequest(message, code="invalid_query") from error
