"""A devhost running as a subprocess on a free port, as a user would run it (tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from devhost.demo_key import API_KEY_FILE
from shared.config import REPOSITORY_ROOT

START_DEADLINE_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevHost:
    def __init__(self, env: dict[str, str], log_path: Path, bind: str = "127.0.0.1") -> None:
        self.bind = bind
        """The address the devhost listens on; requests always go to loopback."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.webpubsub_port = free_port()
        """The local Web PubSub's port (its key is kept in the data dir, as `make dev` keeps it)."""
        self.env = env
        self._env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devhost",
                "--host",
                self.bind,
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--webpubsub-port",
                str(self.webpubsub_port),
            ],
            cwd=REPOSITORY_ROOT,
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"devhost exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url("/api/health"), timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"devhost not healthy after {START_DEADLINE_SECONDS} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def data_dir(self) -> Path:
        return self._log_path.parent

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def api_key(self) -> str:
        """The demo tenant's key the devhost made at start (`make dev` prints it)."""
        return (self.data_dir / API_KEY_FILE).read_text().strip()

    def post(self, path: str, *, anonymous: bool = False, **kwargs: Any) -> requests.Response:
        """POST as the demo tenant's key, unless `anonymous` or the caller sends credentials of its own."""
        return requests.post(self.url(path), **self.request_options(anonymous, kwargs))

    def get(self, path: str, *, anonymous: bool = False, **kwargs: Any) -> requests.Response:
        return requests.get(self.url(path), **self.request_options(anonymous, kwargs))

    def request_options(self, anonymous: bool, options: dict[str, Any]) -> dict[str, Any]:
        """Request options with the demo key added unless `anonymous` or credentials are already given."""
        headers = dict(options.get("headers") or {})
        named = {name.lower() for name in headers}
        if not anonymous and not named & {"x-api-key", "authorization"}:
            headers["X-API-Key"] = self.api_key
        return {"timeout": 30, **options, "headers": headers}

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
