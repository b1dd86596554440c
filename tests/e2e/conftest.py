"""Devhosts for the end-to-end tests, each on its own database, all on the shared Redis and Azurite."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from devhost.process import DevHost

StartDevHost = Callable[..., DevHost]


@pytest.fixture(scope="module")
def start_devhost(
    new_database: Callable[[], str],
    redis_url: str,
    blob_connection_string: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StartDevHost]:
    """Starts a devhost with the given settings (bound to `bind`); they stop with the test module, so a run
    holds a few devhosts, and their Postgres connections, at a time (the server allows 100)."""
    hosts: list[DevHost] = []

    def start(bind: str = "127.0.0.1", **settings: str) -> DevHost:
        env = {
            "DATABASE_URL": new_database(),
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"e2e-{secrets.token_hex(4)}:",
            "BLOB_CONNECTION_STRING": blob_connection_string,
            "AUDIO_CONTAINER": f"audio{secrets.token_hex(4)}",
            **settings,
        }
        host = DevHost(env, tmp_path_factory.mktemp("devhost") / "devhost.log", bind=bind)
        hosts.append(host)
        host.start()
        return host

    yield start
    for host in hosts:
        host.stop()
