"""`make dev` on a machine with nothing: the devhost starts its own Postgres, Redis and Azurite."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devhost.process import DevHost
from devhost.standins import DEFAULT_AZURITE_BLOB_PORT, DEFAULT_REDIS_PORT

PORTS = (DEFAULT_REDIS_PORT, DEFAULT_AZURITE_BLOB_PORT, DEFAULT_AZURITE_BLOB_PORT + 1, DEFAULT_AZURITE_BLOB_PORT + 2)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_embedded_stand_ins_serve_a_conversation_and_stop_with_the_host(tmp_path: Path) -> None:
    busy = [port for port in PORTS if listening(port)]
    if busy:
        pytest.skip(f"ports {busy} are taken (is `make dev` running?); the embedded stand-ins need them")
    host = DevHost({"DATABASE_URL": "", "REDIS_URL": "", "BLOB_CONNECTION_STRING": ""}, tmp_path / "devhost.log")
    host.start()
    try:
        health = host.get("/api/health").json()
        assert health["status"] == "ok", health
        started = host.post("/api/conversations", json={})
        assert started.status_code == 201, started.text
        conversation_id = started.json()["conversation_id"]
        turn = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": "what is on the menu"})
        assert turn.status_code == 200, turn.text
        assert "masala chai" in turn.json()["reply"]["text"]
        assert all(listening(port) for port in PORTS)
        assert (tmp_path / "postgres" / "postmaster.pid").exists()
    finally:
        host.stop()
    assert not any(listening(port) for port in PORTS), "Ctrl-C stops every stand-in the host started"
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()
