"""The local stand-ins against real servers: start, use, stop, and recover from crashes.

A "crash" is a starter process that is SIGKILLed while its stand-in runs: the
next start must reuse what it left or replace it cleanly. Every test runs in
its own tmp dir on free ports, and the ``data_dir`` fixture kills whatever is
still running from that dir afterwards, whether the test passed or not.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil  # type: ignore[import-untyped, unused-ignore]
import psycopg
import pytest
import redis
from azure.storage.blob import BlobServiceClient

from devhost import standins
from devhost.standins import StandinError

pytestmark = pytest.mark.timeout(120)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _running(pid: int) -> bool:
    """Alive and not a zombie (orphans are never reaped on some CI machines)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _three_free_ports() -> int:
    """A port P such that P, P+1 and P+2 are all free, as a fixed ``blob_port`` needs."""
    while True:
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            base = int(first.getsockname()[1])
            try:
                with socket.socket() as second, socket.socket() as third:
                    second.bind(("127.0.0.1", base + 1))
                    third.bind(("127.0.0.1", base + 2))
                    return base
            except OSError:
                continue


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _spawned_pid(data_dir: Path, name: str) -> int:
    return _pid_in(data_dir / f"{name}.pid")


def _pid_in(pidfile: Path) -> int:
    return int(json.loads(pidfile.read_text())["pid"])


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _kill_leftovers(data_dir: Path) -> None:
    """Stop every process a test left running from ``data_dir``, crashed or not."""
    pids = set()
    for pidfile in data_dir.rglob("*.pid"):
        try:
            pids.add(_pid_in(pidfile))
        except (ValueError, KeyError, TypeError):
            continue
    inside = f"{data_dir}{os.sep}"
    for proc in psutil.process_iter(["cmdline"]):
        args = proc.info["cmdline"] or []
        if any(arg == str(data_dir) or arg.startswith(inside) for arg in args):
            pids.add(proc.pid)
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            # SIGQUIT is Postgres's immediate shutdown: it takes its children along.
            proc.send_signal(signal.SIGQUIT if proc.name() == "postgres" else signal.SIGKILL)
        except psutil.NoSuchProcess:
            continue
    for pid in pids:
        _wait_gone(pid)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    _kill_leftovers(tmp_path)


def _start_then_crash(kind: str, data_dir: Path, **kwargs: object) -> str:
    """Start a stand-in from a separate Python, SIGKILL that Python, return the url it got."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from devhost import standins\n"
        f"standin = standins.start_{kind}(Path(sys.argv[1]), **{kwargs!r})\n"
        "print(standin.url, flush=True)\n"
        "time.sleep(600)\n"
    )
    starter = subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert starter.stdout is not None
        url = starter.stdout.readline().strip()
    finally:
        starter.kill()
        starter.wait()
    assert url, f"the starter process failed to start {kind}"
    return url


def _use_postgres(url: str, value: str) -> list[str]:
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.execute("CREATE TABLE IF NOT EXISTS notes (body text)")
        conn.execute("INSERT INTO notes VALUES (%s)", (value,))
        return [row[0] for row in conn.execute("SELECT body FROM notes ORDER BY body")]


def _use_blob(connection_string: str, container: str, payload: bytes) -> bytes:
    with BlobServiceClient.from_connection_string(connection_string) as service:
        client = service.get_container_client(container)
        if not client.exists():
            client.create_container()
        client.upload_blob("greeting.txt", payload, overwrite=True)
        return bytes(client.download_blob("greeting.txt").readall())


def _download_blob(connection_string: str, container: str) -> bytes:
    with BlobServiceClient.from_connection_string(connection_string) as service:
        blob = service.get_blob_client(container, "greeting.txt")
        return bytes(blob.download_blob().readall())


def _ports(connection_string: str) -> list[int]:
    endpoints = [part for part in connection_string.split(";") if "Endpoint=http" in part]
    return [int(part.rsplit(":", 1)[1].split("/", 1)[0]) for part in endpoints]


def test_postgres_starts_persists_across_restart_and_stops(data_dir: Path) -> None:
    first = standins.start_postgres(data_dir)
    assert first.started
    assert first.url.startswith("postgresql://")
    assert "/voice?" in first.url
    assert _use_postgres(first.url, "a") == ["a"]
    pid = _postmaster_pid(data_dir)

    first.stop()
    first.stop()
    assert _wait_gone(pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(first.url, connect_timeout=2).close()

    second = standins.start_postgres(data_dir)
    assert second.started
    assert _use_postgres(second.url, "b") == ["a", "b"]
    second.stop()


def test_postgres_reused_after_its_starter_is_killed(data_dir: Path) -> None:
    url = _start_then_crash("postgres", data_dir)

    standin = standins.start_postgres(data_dir)
    assert not standin.started
    assert standin.url == url
    assert _use_postgres(standin.url, "after crash") == ["after crash"]
    standin.stop()
    assert _running(_postmaster_pid(data_dir)), "stop() must leave a reused server running"


def test_postgres_restarts_after_the_server_itself_is_killed(data_dir: Path) -> None:
    standin = standins.start_postgres(data_dir)
    _use_postgres(standin.url, "committed")
    pid = _postmaster_pid(data_dir)
    psutil.Process(pid).kill()
    assert _wait_gone(pid)

    again = standins.start_postgres(data_dir)
    assert again.started
    assert _use_postgres(again.url, "recovered") == ["committed", "recovered"]
    again.stop()


def test_redis_starts_persists_across_restart_and_stops(data_dir: Path) -> None:
    first = standins.start_redis(data_dir, port=0)
    assert first.started
    port = urlsplit(first.url).port
    assert port is not None
    with redis.Redis.from_url(first.url) as client:
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
    pid = _spawned_pid(data_dir, "redis")

    first.stop()
    first.stop()
    assert not _running(pid)
    assert not _port_open(port)
    assert not (data_dir / "redis.pid").exists()

    second = standins.start_redis(data_dir, port=port)
    assert second.started
    with redis.Redis.from_url(second.url) as client:
        assert client.get("greeting") == b"hello"
    second.stop()


def test_redis_reused_after_its_starter_is_killed(data_dir: Path) -> None:
    url = _start_then_crash("redis", data_dir, port=0)

    standin = standins.start_redis(data_dir, port=0)
    assert not standin.started
    assert standin.url == url
    with redis.Redis.from_url(standin.url) as client:
        assert client.ping()
    standin.stop()
    pid = _spawned_pid(data_dir, "redis")
    assert _running(pid), "stop() must leave a reused server running"

    adopted = standins.start_redis(data_dir, port=0)
    adopted.adopt()
    adopted.stop()
    assert not _running(pid), "an adopted server stops with its new owner"


@pytest.mark.parametrize("content", ["dead pid", "not json"])
def test_redis_replaces_a_stale_pidfile(data_dir: Path, content: str) -> None:
    record = {"pid": _dead_pid(), "create_time": 0.0, "ports": [6390], "argv": []}
    stale = json.dumps(record) if content == "dead pid" else "garbage"
    (data_dir / "redis.pid").write_text(stale)

    standin = standins.start_redis(data_dir, port=0)
    assert standin.started
    with redis.Redis.from_url(standin.url) as client:
        assert client.ping()
    standin.stop()


def test_redis_refuses_a_port_held_by_another_program(data_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(StandinError, match=f"port {port} "):
            standins.start_redis(data_dir, port=port)
    assert not (data_dir / "redis.pid").exists()


def test_azurite_in_memory_serves_storage_and_stops(data_dir: Path) -> None:
    standin = standins.start_azurite(data_dir, in_memory=True, blob_port=0)
    assert standin.started
    ports = _ports(standin.url)
    assert len(set(ports)) == 3
    assert all(_port_open(port) for port in ports)
    assert _use_blob(standin.url, "calls", b"hello") == b"hello"
    pid = _spawned_pid(data_dir, "azurite")

    standin.stop()
    standin.stop()
    assert not _running(pid)
    assert not any(_port_open(port) for port in ports)
    assert not (data_dir / "azurite").exists()


def test_azurite_on_disk_persists_across_restart(data_dir: Path) -> None:
    blob_port = _three_free_ports()
    first = standins.start_azurite(data_dir, blob_port=blob_port)
    assert _ports(first.url) == [blob_port, blob_port + 1, blob_port + 2]
    assert _use_blob(first.url, "recordings", b"kept") == b"kept"
    first.stop()
    assert any((data_dir / "azurite").iterdir())

    second = standins.start_azurite(data_dir, blob_port=blob_port)
    assert second.started
    assert _download_blob(second.url, "recordings") == b"kept"
    second.stop()


def test_azurite_reused_after_its_starter_is_killed(data_dir: Path) -> None:
    url = _start_then_crash("azurite", data_dir, blob_port=0, in_memory=True)

    standin = standins.start_azurite(data_dir, in_memory=True, blob_port=0)
    assert not standin.started
    assert standin.url == url
    assert _use_blob(standin.url, "calls", b"after crash") == b"after crash"


def test_azurite_replaced_when_asked_for_other_settings(data_dir: Path) -> None:
    _start_then_crash("azurite", data_dir, blob_port=0, in_memory=True)
    leftover = _spawned_pid(data_dir, "azurite")

    standin = standins.start_azurite(data_dir, blob_port=0)
    assert standin.started
    assert _wait_gone(leftover)
    assert _use_blob(standin.url, "kept", b"on disk") == b"on disk"
    standin.stop()


def test_azurite_missing_binary_says_how_to_install(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(standins, "AZURITE_BIN", data_dir / "no-such-azurite")
    with pytest.raises(StandinError, match="npm ci"):
        standins.start_azurite(data_dir, blob_port=0)
