"""What the devhost reads from host.json, with the defaults the Functions host applies on Flex Consumption."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from shared.config import REPOSITORY_ROOT

HOST_JSON = REPOSITORY_ROOT / "host.json"

DEFAULT_FUNCTION_TIMEOUT_SECONDS = 30 * 60.0
"""Flex Consumption's default when host.json sets no functionTimeout (Microsoft docs: "Function app
timeout duration": default 30 min, maximum unbounded)."""

HTTP_RESPONSE_LIMIT_SECONDS = 230.0
"""Azure's front end cuts any HTTP request after 230 s, whatever functionTimeout says (same docs,
footnote 1: the Azure Load Balancer's idle timeout)."""

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2}):(?P<seconds>\d{1,2}(?:\.\d+)?)$")


def _read(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def parse_timespan(text: str) -> float:
    """A .NET TimeSpan (`[d.]hh:mm:ss[.fff]`) in seconds; "-1" means unbounded, as in host.json."""
    if text.strip() == "-1":
        return math.inf
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise ValueError(f"functionTimeout {text!r} is not a TimeSpan like 00:05:00")
    days = int(match["days"] or 0)
    return days * 86400 + int(match["hours"]) * 3600 + int(match["minutes"]) * 60 + float(match["seconds"])


def function_timeout_seconds(path: Path = HOST_JSON) -> float:
    """host.json's functionTimeout in seconds (math.inf for "-1"; the Flex default when unset)."""
    value = _read(path).get("functionTimeout")
    if value is None:
        return DEFAULT_FUNCTION_TIMEOUT_SECONDS
    seconds = parse_timespan(str(value))
    if seconds <= 0:
        raise ValueError(f"functionTimeout {value!r} must be positive")
    return seconds


def route_prefix(path: Path = HOST_JSON) -> str:
    """`extensions.http.routePrefix` ("api" when unset; may be empty)."""
    http = _read(path).get("extensions", {}).get("http", {})
    return str(http.get("routePrefix", "api")).strip("/")
