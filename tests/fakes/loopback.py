"""What every vendor fake shares: an aiohttp application served on a loopback port from a thread.

`with Fake() as fake:` starts it (on a free port, `fake.url`), and leaving the block stops it. A fake
says only what it serves, in `_application()`.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from types import TracebackType
from typing import Self

from aiohttp import web

START_SECONDS = 10


class LoopbackFake:
    _thread_name = "fake"
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _port: int

    def _application(self) -> web.Application:
        raise NotImplementedError

    def _tls(self) -> ssl.SSLContext | None:
        """The server's TLS context, for a vendor whose SDK speaks only HTTPS; None: plain HTTP."""
        return None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> Self:
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True, name=self._thread_name)
        self._thread.start()
        if not started.wait(START_SECONDS):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_SECONDS)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self._application(), handler_cancellation=True, shutdown_timeout=1)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._tls())
        self._loop.run_until_complete(site.start())
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self._port = server.sockets[0].getsockname()[1]
        started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()
