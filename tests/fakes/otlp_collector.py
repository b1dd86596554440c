"""An OpenTelemetry collector's OTLP/HTTP receiver: what the app's OTLP exporters send, decoded.

It speaks OTLP/HTTP in binary protobuf as the specification has it
(https://opentelemetry.io/docs/specs/otlp/#otlphttp): `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with
`Content-Type: application/x-protobuf` (gzip when the exporter compresses), each answered 200 with the
signal's empty `Export…ServiceResponse`. The messages are decoded with the `opentelemetry-proto`
classes the exporters encode them with.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.fakes.loopback import LoopbackFake

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    attributes: dict[str, Any]


def _value(any_value: dict[str, Any]) -> Any:
    """An OTLP AnyValue (as MessageToDict spells it) as a plain Python value."""
    if "arrayValue" in any_value:
        return [_value(v) for v in any_value["arrayValue"].get("values", [])]
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in any_value:
            return any_value[key]
    if "intValue" in any_value:
        return int(any_value["intValue"])
    return None


def attributes_of(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _value(item.get("value", {})) for item in items}


@dataclass
class FakeOtlpCollector(LoopbackFake):
    _thread_name = "otlp-collector"
    spans: list[ReceivedSpan] = field(default_factory=list)
    metric_names: set[str] = field(default_factory=set)
    log_records: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    """Every decoded request body, for checks that nothing secret was sent at all."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        app.router.add_post("/v1/logs", self._logs)
        return app

    @staticmethod
    async def _body(request: web.Request) -> bytes:
        if request.content_type != PROTOBUF:
            raise web.HTTPUnsupportedMediaType(text="OTLP/HTTP here takes application/x-protobuf")
        body = await request.read()
        return gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body

    def _answer(self, response: Any) -> web.Response:
        return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)

    async def _traces(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        message = MessageToDict(ExportTraceServiceRequest.FromString(body))
        received = [
            ReceivedSpan(
                name=span.get("name", ""),  # proto3 leaves an empty name out
                trace_id=span["traceId"],
                span_id=span["spanId"],
                parent_span_id=span.get("parentSpanId", ""),
                kind=span.get("kind", ""),
                attributes=attributes_of(span.get("attributes", [])),
            )
            for resource in message.get("resourceSpans", [])
            for scope in resource.get("scopeSpans", [])
            for span in scope.get("spans", [])
        ]
        with self._lock:
            self.spans.extend(received)
            self.raw.append(body)
        return self._answer(ExportTraceServiceResponse())

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        message = MessageToDict(ExportMetricsServiceRequest.FromString(body))
        names = {
            metric["name"]
            for resource in message.get("resourceMetrics", [])
            for scope in resource.get("scopeMetrics", [])
            for metric in scope.get("metrics", [])
        }
        with self._lock:
            self.metric_names |= names
            self.raw.append(body)
        return self._answer(ExportMetricsServiceResponse())

    async def _logs(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        message = MessageToDict(ExportLogsServiceRequest.FromString(body))
        records = [
            record
            for resource in message.get("resourceLogs", [])
            for scope in resource.get("scopeLogs", [])
            for record in scope.get("logRecords", [])
        ]
        with self._lock:
            self.log_records.extend(records)
            self.raw.append(body)
        return self._answer(ExportLogsServiceResponse())

    def received_spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)
