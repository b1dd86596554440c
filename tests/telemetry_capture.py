"""The app's telemetry set up afresh in this test process, with OpenTelemetry's in-memory exporters.

OpenTelemetry lets a process install its providers once; tests that need their own start over the
way OpenTelemetry's own test utilities do (resetting the API's set-once guards), and shut the
providers down afterwards so a later test module in the same worker starts clean too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from shared import telemetry
from shared.config import Settings


@dataclass
class Captured:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        """Every data point of the metric `name` recorded so far (cumulative)."""
        data = self.metrics.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


def _reset() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
    meter_provider = metrics.get_meter_provider()
    if isinstance(meter_provider, MeterProvider):
        meter_provider.shutdown()
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    telemetry._state.configured = telemetry._state.tracing = telemetry._state.store_spans = False
    telemetry.meters.cache_clear()


@contextmanager
def captured_telemetry(settings: Settings, *, tracing: bool = True) -> Iterator[Captured]:
    """The app's `telemetry.configure` with in-memory exporters added (a span processor only if `tracing`)."""
    _reset()
    captured = Captured(InMemorySpanExporter(), InMemoryMetricReader())
    processors = [SimpleSpanProcessor(captured.spans)] if tracing else []
    telemetry.configure(settings, span_processors=processors, metric_readers=[captured.metrics])
    try:
        yield captured
    finally:
        _reset()
