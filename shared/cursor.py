"""Page cursors: where the next page of a newest-first list resumes, as one opaque string.

A cursor is the last item's `(created_at, id)`, as base64url JSON, so paging is keyset paging (no
offsets: a page never skips or repeats a row when rows are added meanwhile); a list in id order (an
agent's documents) keeps the last id alone (`encode_id`). Anything that does not
decode to exactly such a position, in the list's id format, is a 400 `invalid_cursor`.

It is not signed on purpose: a cursor grants nothing. It only chooses where reading resumes among the
rows the caller may read anyway (its tenant's), so a forged one that decodes is as harmless as a
`since`/`until` filter, and a signature would need a deployment secret shared by every instance.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.errors import BadRequest

MAX_CURSOR_CHARS = 200
UUID_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""Conversation ids, as Postgres writes a uuid."""


class InvalidCursor(BadRequest):
    code = "invalid_cursor"

    def __init__(self) -> None:
        super().__init__("The cursor is not one this list gave out; start again without it.")


class Position(BaseModel):
    """Where a page ended: the last item's creation time and id (the list's order, newest first)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    created_at: AwareDatetime
    id: str = Field(min_length=1, max_length=64)


class After(BaseModel):
    """Where a page of a list in id order ended: the last item's id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    after: str = Field(min_length=1, max_length=128)


Cursor = TypeVar("Cursor", Position, After)


def encode(created_at: datetime, item_id: str) -> str:
    return _encode(Position(created_at=created_at, id=item_id))


def decode(cursor: str, ids: re.Pattern[str]) -> Position:
    """The position `cursor` names, whose id must `fullmatch` `ids`; else `InvalidCursor`."""
    position = _decode(cursor, Position)
    if not ids.fullmatch(position.id):
        raise InvalidCursor()
    return position


def encode_id(item_id: str) -> str:
    return _encode(After(after=item_id))


def decode_id(cursor: str, ids: re.Pattern[str]) -> str:
    """The id an `encode_id` cursor resumes after, which must `fullmatch` `ids`; else `InvalidCursor`."""
    after = _decode(cursor, After).after
    if not ids.fullmatch(after):
        raise InvalidCursor()
    return after


def _encode(position: BaseModel) -> str:
    return base64.urlsafe_b64encode(position.model_dump_json().encode()).decode("ascii").rstrip("=")


def _decode(cursor: str, model: type[Cursor]) -> Cursor:
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor()
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        return model.model_validate_json(raw)
    except (binascii.Error, ValueError, ValidationError):
        raise InvalidCursor() from None
