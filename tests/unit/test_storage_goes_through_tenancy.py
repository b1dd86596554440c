"""No storage code takes a Postgres connection but through `tenant_connection` (or the tenant-less one
for the key lookup): a plain `pool.connection()` would run as the login, outside row-level security."""

from __future__ import annotations

import re

from shared.config import REPOSITORY_ROOT

PLAIN_CONNECTION = re.compile(r"\.connection\(\)")
ALLOWED = {"shared/storage/postgres.py"}
"""Where the tenant-bound connections are made (and health's ping, which reads no table)."""


def test_only_the_postgres_module_takes_plain_connections() -> None:
    offenders = [
        str(path.relative_to(REPOSITORY_ROOT))
        for folder in ("shared", "functions")
        for path in (REPOSITORY_ROOT / folder).rglob("*.py")
        if str(path.relative_to(REPOSITORY_ROOT)) not in ALLOWED and PLAIN_CONNECTION.search(path.read_text())
    ]
    assert offenders == []
