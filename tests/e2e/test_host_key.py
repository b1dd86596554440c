"""A devhost bound beyond loopback guards its own routes with a host key, as the Functions host does (finding 12).

On Azure the Durable webhooks need the system key while the Durable client inside the app talks to a
loopback-only RPC endpoint (team notes, durable-local-host.md §12). Requests here go to loopback only.
"""

from __future__ import annotations

import stat

import pytest

from devhost.access import KEY_FILE
from devhost.process import DevHost
from tests.e2e.conftest import StartDevHost

DURABLE = "/runtime/webhooks/durabletask"


@pytest.fixture(scope="module")
def exposed_host(start_devhost: StartDevHost) -> DevHost:
    return start_devhost(bind="0.0.0.0")


def test_finding_12_bound_beyond_loopback_the_durable_api_needs_the_key_and_calls_still_work(
    exposed_host: DevHost,
) -> None:
    key_file = exposed_host.data_dir / KEY_FILE
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
