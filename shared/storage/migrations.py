"""Schema migrations with yoyo: plain SQL files in `migrations/`, applied in order, once each."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from yoyo import get_backend, read_migrations

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def yoyo_uri(database_url: str) -> str:
    """yoyo picks its driver from the URI scheme; ours is psycopg 3."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def apply_migrations(database_url: str, migrations_dir: Path = MIGRATIONS_DIR) -> int:
    """Apply every pending migration (under yoyo's lock, so concurrent starters are safe)."""
    backend = get_backend(yoyo_uri(database_url))
    migrations = read_migrations(str(migrations_dir))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return len(pending)
