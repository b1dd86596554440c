"""Page cursors: what a list gives out comes back as the same position; anything else is a 400."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared import cursor
from shared.cursor import UUID_ID, InvalidCursor

WHEN = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
ID = str(uuid.UUID(int=42))


def _raw(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_a_cursor_names_the_exact_position_it_was_made_from() -> None:
    position = cursor.decode(cursor.encode(WHEN, ID), UUID_ID)
    assert (position.created_at, position.id) == (WHEN, ID)
    offset = WHEN.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert cursor.decode(cursor.encode(offset, ID), UUID_ID).created_at == WHEN


def test_a_cursor_is_opaque_url_safe_text() -> None:
    made = cursor.encode(WHEN, ID)
    assert ID not in made
    assert set(made) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "garbage",
        "!!!!",
        "a" * 201,
        cursor.encode(WHEN, ID)[:-4],
        cursor.encode(WHEN, ID) + "*",
        "ab+/",
        _raw({"created_at": WHEN.isoformat(), "id": ID, "extra": 1}),
        _raw({"created_at": "2026-03-04T05:06:07", "id": ID}),
        _raw({"created_at": WHEN.isoformat(), "id": "not-a-uuid"}),
        _raw({"created_at": WHEN.isoformat(), "id": ID.upper()}),
        _raw({"created_at": WHEN.isoformat()}),
        _raw([WHEN.isoformat(), ID]),
        _raw("just a string"),
        base64.urlsafe_b64encode(b"\xff\xfe not json").decode(),
    ],
)
def test_a_cursor_the_list_did_not_make_is_refused_as_a_400(bad: str) -> None:
    with pytest.raises(InvalidCursor) as refused:
        cursor.decode(bad, UUID_ID)
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


def test_an_id_of_another_list_is_refused() -> None:
    key_cursor = cursor.encode(WHEN, "0123456789ab")
    with pytest.raises(InvalidCursor):
        cursor.decode(key_cursor, UUID_ID)


DOCUMENT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,119}")


def test_an_id_cursor_names_the_id_it_was_made_from_and_nothing_else() -> None:
    assert cursor.decode_id(cursor.encode_id("menu-pdf"), DOCUMENT_ID) == "menu-pdf"
    for bad in [cursor.encode(WHEN, ID), cursor.encode_id("Menu.pdf"), _raw({"after": "menu-pdf", "x": 1}), "!!"]:
        with pytest.raises(InvalidCursor):
            cursor.decode_id(bad, DOCUMENT_ID)
    with pytest.raises(InvalidCursor):
        cursor.decode(cursor.encode_id("menu-pdf"), DOCUMENT_ID)
