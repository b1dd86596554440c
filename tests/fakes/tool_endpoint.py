"""An agent owner's HTTP endpoint on loopback, for the agents' HTTP tools: records requests, answers by path.

`/status` answers JSON about an order, `/redirect` sends a 302 towards `/secret` (which must never be
reached: tools do not follow redirects), `/slow` answers after two seconds, `/fail` answers 500.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class ToolRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class ToolEndpoint:
    requests: list[ToolRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ToolEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read `requests`."""

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                endpoint.requests.append(
                    ToolRequest(
                        self.command,
                        parts.path,
                        dict(parse_qsl(parts.query)),
                        dict(self.headers),
                        self.rfile.read(length),
                    )
                )
                if parts.path == "/redirect":
                    self._answer(302, b"", {"Location": "/secret"})
                elif parts.path == "/slow":
                    time.sleep(2)
                    self._answer(200, b'{"status": "late"}')
                elif parts.path == "/fail":
                    self._answer(500, b'{"error": "boom"}')
                else:
                    self._answer(200, json.dumps({"status": "on its way", "path": parts.path}).encode())

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a caller that timed out
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="tool-endpoint").start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
