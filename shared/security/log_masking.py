"""Phone numbers and e-mail addresses never reach the logs whole.

Callers' numbers and addresses pass through webhooks, tools and errors; a log line is read by more
people, and kept longer, than the data it came from. Every log record the process makes, the
vendor SDKs' included, is masked when it is created (`logging.setLogRecordFactory`): a phone number
keeps its last four digits (`+*******0100`), an address its first letter and its domain
(`p***@example.com`). The message is formatted once, then masked, so no argument escapes.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

PHONE = re.compile(r"(?<![\w+])\+?\d[\d \-().]{6,18}\d(?!\w)")
"""E.164 and the usual spellings of it (spaces, dashes, brackets): 8 to 20 characters, mostly digits."""
EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
MIN_PHONE_DIGITS = 8
"""Fewer digits (with a leading `+`) is a time, an amount or an id, not a phone number."""
MIN_LOCAL_PHONE_DIGITS = 10
"""Without a `+`, a national number (India's mobiles have 10 digits); an 8-digit run is more likely a date."""
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _mask_phone(found: re.Match[str]) -> str:
    text = found.group()
    digits = re.sub(r"\D", "", text)
    international = text.startswith("+")
    if len(digits) < (MIN_PHONE_DIGITS if international else MIN_LOCAL_PHONE_DIGITS) or DATE.search(text):
        return text
    return ("+" if international else "") + "*" * (len(digits) - 4) + digits[-4:]


def masked(text: str) -> str:
    """`text` with every phone number and e-mail address in it masked."""
    return PHONE.sub(_mask_phone, EMAIL.sub(r"\1***@\2", text))


@functools.cache
def install() -> None:
    """Mask every log record this process creates from now on (once; later calls do nothing)."""
    make_record = logging.getLogRecordFactory()

    def masking_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        safe = masked(message)
        if safe != message:
            record.msg, record.args = safe, None
        return record

    logging.setLogRecordFactory(masking_record)
