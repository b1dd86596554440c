"""Application Insights' ingestion endpoint, as the Azure Monitor exporter talks to it.

With `IngestionEndpoint=<this url>/` in the connection string, `azure-monitor-opentelemetry` POSTs JSON
arrays of telemetry envelopes to `<endpoint>/v2.1/track` (it adds a slash of its own, so a trailing
slash in the connection string makes `//v2.1/track`; gzip when it compresses) and reads back
`{"itemsReceived", "itemsAccepted", "errors"}`. An envelope's `name` is its type
(`Microsoft.ApplicationInsights.Request` for server spans, `.RemoteDependency` for client and internal
spans, `.Message` for logs, `.Metric`), `tags["ai.operation.id"]` its trace id, and a span's attributes
are its `data.baseData.properties`. Facts: team notes, security-observability.md ("Azure Monitor
exporter on the wire"); the exporter's `_generated` client.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackFake


@dataclass
class FakeAppInsights(LoopbackFake):
    _thread_name = "app-insights"
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._track)
        return app

    async def _track(self, request: web.Request) -> web.Response:
        if not request.path.endswith("/v2.1/track"):
            raise web.HTTPNotFound(text=f"no {request.path} here")
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        items = json.loads(body)
        with self._lock:
            self.envelopes.extend(items)
        return web.json_response({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})

    def received(self, kind: str) -> list[dict[str, Any]]:
        """The envelopes of one type, e.g. `Request` or `RemoteDependency`."""
        with self._lock:
            return [e for e in self.envelopes if e.get("name") == f"Microsoft.ApplicationInsights.{kind}"]
