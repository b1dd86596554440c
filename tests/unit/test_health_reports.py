"""Health is anonymous: a failing probe says what kind of failure it was, never its text (host names,
addresses, user names), which goes to the log instead."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from functions.ops import _check


def refused_postgres(_: Any) -> None:
    raise ConnectionRefusedError("connection to db-internal.postgres.database.azure.com:5432 as vao_admin refused")


def test_a_failing_probe_reports_its_kind_and_logs_its_text(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        report = _check(refused_postgres, None)  # type: ignore[arg-type]

    assert report == {"ok": False, "error": "ConnectionRefusedError", "ms": report["ms"]}, "how long it took to fail"
    assert "db-internal.postgres" in caplog.text
