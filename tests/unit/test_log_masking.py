"""Phone numbers and e-mail addresses are masked in every log record, arguments included."""

from __future__ import annotations

import logging

import pytest

from shared.security import log_masking
from shared.security.log_masking import masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("transferring to +918045550100", "transferring to +********0100"),
        ("call back on 98450 12345 tomorrow", "call back on ******2345 tomorrow"),
        ("from +1 (415) 555-0100 ok", "from +*******0100 ok"),
        ("write to priya.k@example.co.in please", "write to p***@example.co.in please"),
    ],
)
def test_phone_numbers_keep_their_last_four_digits_and_addresses_their_domain(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "turn 12 took 1234.5 ms",
        "at 5 pm on 2026-12-01",
        "since 2026-12-01 21:55:05",
        "conversation 9afa0b0d-2493-4d5c",
        "40 rupees",
        "order 45678901",
    ],
)
def test_times_amounts_dates_and_ids_are_left_alone(text: str) -> None:
    assert masked(text) == text


def test_a_record_logged_with_arguments_is_masked_once_installed(caplog: pytest.LogCaptureFixture) -> None:
    log_masking.install()
    log_masking.install()

    with caplog.at_level(logging.INFO):
        logging.getLogger("shared.test").info("caller %s asked for %s", "+14155550100", "sam@example.com")

    assert caplog.records[-1].getMessage() == "caller +*******0100 asked for s***@example.com"
    assert "4155550100" not in caplog.text
