"""OpenTelemetry for the whole app: set up once per worker, and the spans and metrics the product emits.

Where it goes: Azure Monitor (`configure_azure_monitor`) when APPLICATIONINSIGHTS_CONNECTION_STRING is
set, OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (both receive everything when both are set), and
nowhere otherwise. Metrics are also kept in this process for `/api/metrics` (Prometheus text): a few
in-memory additions per turn. Spans exist only when an exporter is configured; without one no tracer
provider is installed and every span helper here returns before touching OpenTelemetry.

The SDK and its exporters are imported by `configure`, on a function's first call, never when the app is
imported (tests/unit/test_cold_start_imports.py). Attribute values never carry what a caller said or
their number: span helpers take only ids, names and counts, and mask every string they are given.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from shared.security.log_masking import masked

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, UpDownCounter
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Span, Tracer

    from shared.config import Settings
    from shared.models import ModelUsage, TurnRecord

log = logging.getLogger(__name__)

SCOPE = "voice_agent"
"""Instrumentation scope of every span and metric the product makes."""
TRACEPARENT = "traceparent"
Attributes = Mapping[str, str | int | float | bool]


class _State:
    configured = False
    tracing = False
    store_spans = False


_state = _State()
_lock = threading.Lock()


def configure(
    settings: Settings,
    *,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> None:
    """Install the providers and exporters the settings ask for, once per process (later calls do nothing).

    `span_processors` and `metric_readers` are added to the configured ones: tests pass OpenTelemetry's
    in-memory exporters, and a span processor alone turns tracing on.
    """
    with _lock:
        if _state.configured:
            return
        _state.configured = True  # first: an exporter that fails to start is not retried on every request
        try:
            _install(settings, list(span_processors), list(metric_readers))
        except Exception:
            log.exception("telemetry could not be set up; the app runs without it")


def configure_once() -> None:
    """`configure` from the process's settings; a flag check once it has run (called on every request)."""
    if not _state.configured:
        from shared.config import get_settings

        try:
            settings = get_settings()
        except Exception:  # the app reports bad settings on its own; telemetry stays off
            _state.configured = True
            return
        configure(settings)


def tracing() -> bool:
    """Whether spans are recorded and exported in this process."""
    return _state.tracing


def _install(settings: Settings, span_processors: list[SpanProcessor], readers: list[MetricReader]) -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create({SERVICE_NAME: settings.otel_service_name})
    views = _views()
    readers = [PrometheusMetricReader(), *readers]
    log_processors: list[Any] = []
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
    if endpoint:
        span_processors, readers, log_processors = _otlp(endpoint, span_processors, readers)
    connection_string = settings.applicationinsights_connection_string.get_secret_value()
    if connection_string:
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=connection_string,
            resource=resource,
            span_processors=span_processors,
            metric_readers=readers,
            log_record_processors=log_processors,
            views=views,
            enable_live_metrics=False,
            instrumentation_options={"azure_sdk": {"enabled": settings.telemetry_store_spans}},
        )
        _state.tracing = True
        _trace_stores(settings)
        log.info("telemetry: exporting to Azure Monitor%s", " and OTLP" if endpoint else "")
        return
    metrics.set_meter_provider(MeterProvider(metric_readers=readers, resource=resource, views=views))
    if span_processors:
        provider = TracerProvider(resource=resource)
        for processor in span_processors:
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _state.tracing = True
        _trace_stores(settings)
    if log_processors:
        _export_logs(resource, log_processors)
    if endpoint:
        log.info("telemetry: exporting to OTLP")


SECONDS_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""The GenAI conventions' advice for `gen_ai.client.operation.duration` (the SDK's default buckets are for ms)."""
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
"""The GenAI conventions' advice for `gen_ai.client.token.usage`."""
COST_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
"""US dollars of one conversation: fractions of a cent to a few dollars."""


def _views() -> list[Any]:
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    def buckets(name: str, bounds: Sequence[float]) -> View:
        return View(instrument_name=name, aggregation=ExplicitBucketHistogramAggregation(list(bounds)))

    return [
        buckets("gen_ai.client.operation.*", SECONDS_BUCKETS),
        buckets("gen_ai.client.token.usage", TOKEN_BUCKETS),
        buckets("voice_agent.conversation.cost", COST_BUCKETS),
    ]


def _otlp(
    endpoint: str, span_processors: list[SpanProcessor], readers: list[MetricReader]
) -> tuple[list[SpanProcessor], list[MetricReader], list[Any]]:
    """OTLP over HTTP: each signal at `<endpoint>/v1/<signal>`, as the specification builds the URLs from
    OTEL_EXPORTER_OTLP_ENDPOINT (headers still come from OTEL_EXPORTER_OTLP_HEADERS)."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return (
        [*span_processors, BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))],
        [*readers, PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))],
        [BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs"))],
    )


def _export_logs(resource: Any, processors: list[Any]) -> None:
    """Log records go out with the trace and span ids of the span they were written in (already masked:
    `log_masking` masks each record as it is made)."""
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler

    provider = LoggerProvider(resource=resource)
    for processor in processors:
        provider.add_log_record_processor(processor)
    set_logger_provider(provider)
    logging.getLogger().addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))


# Traces


def _trace_stores(settings: Settings) -> None:
    """With TELEMETRY_STORE_SPANS: Postgres and Redis clients are instrumented as they are made, and Blob,
    Web PubSub and AI Search calls are client spans through the Azure SDK's OpenTelemetry plugin (what
    `configure_azure_monitor` sets too when asked; the OTLP path needs it set here)."""
    _state.store_spans = settings.telemetry_store_spans
    if not _state.store_spans:
        return
    from azure.core.settings import settings as azure_settings
    from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan

    azure_settings.tracing_implementation = OpenTelemetrySpan


def instrument_postgres(connection: Any) -> None:
    """Each statement of this psycopg connection as a client span (`db.statement` is the SQL with its
    placeholders; parameter values are never recorded). Nothing unless store spans are on."""
    configure_once()
    if _state.store_spans:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        PsycopgInstrumentor.instrument_connection(connection)


@contextmanager
def untraced() -> Iterator[None]:
    """Instrumented clients make no span inside the block: plumbing every unit of work repeats (the pool's
    liveness check, the tenant's `set_config`) would be two of every three Postgres spans of a turn."""
    if not _state.tracing:
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def instrument_redis(client: Any) -> None:
    """Each command of this Redis client (sync or asyncio) as a client span, its arguments replaced by
    `?` (the instrumentation's own sanitising). Nothing unless store spans are on."""
    configure_once()
    if _state.store_spans:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor.instrument_client(client)


def _tracer() -> Tracer:
    from opentelemetry import trace

    return trace.get_tracer(SCOPE)


def _safe(attributes: Attributes) -> dict[str, str | int | float | bool]:
    """Strings masked as log lines are, but our own ids (`*.id`, UUIDs whose digit runs look like numbers)."""
    return {
        key: masked(value) if isinstance(value, str) and not key.endswith(".id") else value
        for key, value in attributes.items()
    }


def traceparent() -> str | None:
    """The current span as a W3C `traceparent`, to carry in a Durable input; None when not tracing."""
    configure_once()
    if not _state.tracing:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


@contextmanager
def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: str = "INTERNAL",
    parent: str | None = None,
    headers: Mapping[str, str] | None = None,
    invocation: str | None = None,
    current: bool = True,
) -> Iterator[Span | None]:
    """A span around the block (None when not tracing): a child of `parent` (a traceparent carried in a
    Durable input), else of an incoming request's W3C `traceparent` header, else of `invocation` (the
    Functions invocation's own traceparent, whose span is Azure's request or dependency telemetry), else
    of the current span (an invalid traceparent starts a new trace).

    `current=False` keeps it from becoming the parent of spans started inside the block (a streamed
    model call, whose chunks feed speech started elsewhere). A failure marks the span with its error
    type only: exception texts may quote a caller.
    """
    configure_once()
    if not _state.tracing:
        yield None
        return
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    if parent is None and headers is not None:
        parent = next((value for key, value in headers.items() if key.lower() == TRACEPARENT), None)
    if parent is None:
        parent = invocation or None
    context = None if parent is None else propagate.extract({TRACEPARENT: parent})
    made = _tracer().start_span(name, context=context, kind=SpanKind[kind], attributes=_safe(attributes or {}))
    try:
        if current:
            with trace.use_span(made, record_exception=False, set_status_on_exception=False):
                yield made
        else:
            yield made
    except GeneratorExit:  # a stream its reader stopped early: not a failure
        raise
    except BaseException as error:
        made.set_attribute("error.type", type(error).__qualname__)
        made.set_status(Status(StatusCode.ERROR))
        raise
    finally:
        made.end()


def annotate(current: Span | None, attributes: Attributes) -> None:
    """Add attributes to a span made by `span` (nothing when not tracing)."""
    if current is not None:
        current.set_attributes(_safe(attributes))


@dataclass
class ModelCall:
    """One call to a chat model provider, as the GenAI semantic conventions describe it.

    https://opentelemetry.io/docs/specs/semconv/gen-ai/ (`gen_ai.*` attributes, `chat {model}` spans,
    `gen_ai.client.operation.duration` and `gen_ai.client.operation.time_to_first_chunk` in seconds).
    `gen_ai.system` is sent beside its successor `gen_ai.provider.name` for backends that still read it.
    """

    provider: str
    model: str
    started: float = field(default_factory=time.perf_counter)
    first_chunk_seconds: float | None = None
    span: Span | None = None

    def attributes(self) -> dict[str, str]:
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self.provider,
            "gen_ai.system": self.provider,
            "gen_ai.request.model": self.model,
        }

    def first_chunk(self) -> None:
        if self.first_chunk_seconds is None:
            self.first_chunk_seconds = time.perf_counter() - self.started

    def answered(
        self,
        response_model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        finish_reason: str | None,
    ) -> None:
        attributes: dict[str, str | int | Sequence[str]] = {}
        if response_model:
            attributes["gen_ai.response.model"] = response_model
        if input_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = input_tokens
        if output_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = output_tokens
        if finish_reason:
            attributes["gen_ai.response.finish_reasons"] = [finish_reason]
        if self.span is not None:
            self.span.set_attributes(attributes)


@contextmanager
def model_call(provider: str, model: str) -> Iterator[ModelCall]:
    """Time one provider call (its span when tracing, its duration and first-chunk metrics always); a
    failure that hands the turn to the next model counts as a failover of this provider."""
    call = ModelCall(provider, model)
    with span(f"chat {model}", call.attributes(), kind="CLIENT", current=False) as current:
        call.span = current
        try:
            yield call
        except Exception as error:
            meters().failovers.add(1, {"capability": "llm", "provider": provider, "error.type": type(error).__name__})
            raise
        finally:
            labels = {"gen_ai.provider.name": provider, "gen_ai.request.model": model}
            meters().model_duration.record(time.perf_counter() - call.started, labels)
            if call.first_chunk_seconds is not None:
                meters().model_first_chunk.record(call.first_chunk_seconds, labels)
                meters().stage.record(call.first_chunk_seconds * 1000, {"stage": "model_first_token"})
            meters().stage.record((time.perf_counter() - call.started) * 1000, {"stage": "model_total"})


@contextmanager
def speech_call(capability: str, provider: str, language: str, characters: int | None = None) -> Iterator[None]:
    """One speech engine's call (`capability` is stt or tts): its span, and a failover of `provider` when
    it is unavailable and the next engine takes over (`SpeechUnavailable`, which only the fallback
    chain catches)."""
    from shared.speech.ports import SpeechUnavailable

    attributes: dict[str, str | int] = {
        "voice_agent.speech.provider": provider,
        "voice_agent.speech.language": language,
    }
    if characters is not None:
        attributes["voice_agent.tts.characters"] = characters
    with span(f"{capability} {provider}", attributes, kind="CLIENT"):
        try:
            yield
        except SpeechUnavailable as unavailable:
            failover = {"capability": capability, "provider": provider, "error.type": type(unavailable).__name__}
            meters().failovers.add(1, failover)
            raise


# Metrics


@dataclass(frozen=True)
class Meters:
    """Every instrument the product records: names, units and attributes are the dashboards' contract."""

    stage: Histogram
    first_audio: Histogram
    active_conversations: UpDownCounter
    conversations_ended: Counter
    failovers: Counter
    errors: Counter
    tokens: Histogram
    tts_characters: Counter
    cost: Counter
    conversation_cost: Histogram
    model_duration: Histogram
    model_first_chunk: Histogram


@cache
def meters() -> Meters:
    """The instruments, made on first use from the global meter provider (no-ops until one is installed)."""
    from opentelemetry import metrics

    configure_once()
    meter = metrics.get_meter(SCOPE)
    return Meters(
        stage=meter.create_histogram(
            "voice_agent.turn.stage.duration",
            unit="ms",
            description="Time of one stage of a turn: stt, model_first_token, model_total, tts_first_audio, overhead.",
        ),
        first_audio=meter.create_histogram(
            "voice_agent.turn.first_audio",
            unit="ms",
            description="From the caller's utterance reaching a channel to the first audio of the reply.",
        ),
        active_conversations=meter.create_up_down_counter(
            "voice_agent.conversations.active",
            unit="{conversation}",
            description="Conversations started minus conversations finished (sum it over every worker).",
        ),
        conversations_ended=meter.create_counter(
            "voice_agent.conversations.ended", unit="{conversation}", description="Conversations finished, by outcome."
        ),
        failovers=meter.create_counter(
            "voice_agent.provider.failovers",
            unit="{failover}",
            description="Provider calls that failed and handed the work to the next provider.",
        ),
        errors=meter.create_counter(
            "voice_agent.errors", unit="{error}", description="Refused or failed requests and activities, by kind."
        ),
        tokens=meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens of one model call, input or output."
        ),
        tts_characters=meter.create_counter(
            "voice_agent.tts.characters", unit="{character}", description="Characters spoken by text-to-speech."
        ),
        cost=meter.create_counter(
            "voice_agent.llm.cost", unit="USD", description="Estimated model cost (shared/agent/pricing.py)."
        ),
        conversation_cost=meter.create_histogram(
            "voice_agent.conversation.cost", unit="USD", description="Estimated model cost of a finished conversation."
        ),
        model_duration=meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Duration of one chat model call."
        ),
        model_first_chunk=meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="From sending a streamed chat request to its first chunk.",
        ),
    )


def error(kind: str, where: str) -> None:
    """Count a refused or failed request or activity (`kind` is an error code or exception type)."""
    meters().errors.add(1, {"error.type": kind, "where": where})


def turn_answered(turn: TurnRecord, first_sentence_tts_ms: float | None) -> None:
    """Record a turn's figures where the turn computes them: stage times, first audio, speech, tokens, cost."""
    figures = meters()
    if turn.stt_ms is not None:
        figures.stage.record(turn.stt_ms, {"stage": "stt"})
    if first_sentence_tts_ms is not None:
        figures.stage.record(first_sentence_tts_ms, {"stage": "tts_first_audio"})
    if turn.first_audio_ms is not None:
        figures.first_audio.record(turn.first_audio_ms, {"turn.kind": turn.kind.value})
    figures.tts_characters.add(len(turn.reply_text), {"engine": turn.tts_engine or "none"})
    if turn.llm is not None:
        labels = {"gen_ai.provider.name": turn.llm.provider, "gen_ai.response.model": turn.llm.model or "unknown"}
        for kind, count in (("input", turn.llm.input_tokens), ("output", turn.llm.output_tokens)):
            if count is not None:
                figures.tokens.record(count, {**labels, "gen_ai.token.type": kind})
        if turn.llm.cost_usd is not None:
            figures.cost.add(turn.llm.cost_usd, labels)


def turn_overhead(milliseconds: float) -> None:
    """Our own time in a turn: the request's whole time less the time inside speech and the agent."""
    meters().stage.record(max(0.0, milliseconds), {"stage": "overhead"})


def conversation_started() -> None:
    meters().active_conversations.add(1)


def conversation_ended(outcome: str, usages: Sequence[ModelUsage | None]) -> None:
    """A conversation closed (once): it leaves the active ones, counts under its outcome, and its models'
    estimated cost (turns and after-call report; unknown prices count as nothing) is recorded."""
    figures = meters()
    figures.active_conversations.add(-1)
    figures.conversations_ended.add(1, {"outcome": outcome})
    figures.conversation_cost.record(sum(u.cost_usd or 0.0 for u in usages if u is not None))


def prometheus_text() -> tuple[bytes, str]:
    """This process's metrics in the Prometheus text exposition format, and its content type."""
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

    meters()  # the reader is registered when telemetry is configured
    # Names escaped to underscores: the classic format every Prometheus (2.x and 3.x) scrapes.
    return generate_latest(REGISTRY), CONTENT_TYPE_PLAIN_0_0_4
