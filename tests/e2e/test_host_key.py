"""A devhost bound beyond loopback guards its own routes with a host key, as the Functions host does (finding 12).

On Azure the Durable webhooks need the system key while the Durable client inside the app talks to a
loopback-only RPC endpoint (team notes, durable-local-host.md §12). Requests here go to loopback only.
"""

from __future__ import annotations

import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devhost.access import KEY_FILE
from devhost.process import DevHost

DURABLE = "/runtime/webhooks/durabletask"


@pytest.fixture
def exposed_host(
    new_database: Callable[[], str], redis_url: str, blob_connection_string: str, tmp_path: Path
) -> Iterator[DevHost]:
    env = {
        "DATABASE_URL": new_database(),
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"e2e-{secrets.token_hex(4)}:",
        "BLOB_CONNECTION_STRING": blob_connection_string,
        "AUDIO_CONTAINER": f"audio{secrets.token_hex(4)}",
    }
    host = DevHost(env, tmp_path / "devhost.log", bind="0.0.0.0")
    host.start()
    yield host
    host.stop()


def test_finding_12_bound_beyond_loopback_the_durable_api_needs_the_key_and_calls_still_work(
    exposed_host: DevHost, tmp_path: Path
) -> None:
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()

    started = exposed_host.post("/api/conversations", json={})
    assert started.status_code == 201, f"{started.text}\n{exposed_host.log_tail()}"
    conversation_id = started.json()["conversation_id"]
    turn = exposed_host.post(f"/api/conversations/{conversation_id}/turns", json={"text": "what is on the menu"})
    assert turn.status_code == 200, turn.text  # the app's Durable client reached the engine without a key

    status_path = f"{DURABLE}/instances/{conversation_id}"
    refused = exposed_host.get(status_path)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert exposed_host.get("/devhost/instances/" + conversation_id).status_code == 401
    assert exposed_host.get(status_path, headers={"x-functions-key": key}).json()["runtimeStatus"] == "Running"
    assert exposed_host.get(status_path, params={"code": key}).status_code == 200
