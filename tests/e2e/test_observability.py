"""Observability through a devhost: one trace per turn sent over OTLP to a collector (the fake), the
Prometheus metrics behind their scope, and readiness naming a stopped dependency.

The devhost exports to `tests/fakes/otlp_collector.py` (OTLP/HTTP protobuf, as a real collector takes it),
its model is the OpenAI fake, and its Redis is one of this module's own, stopped by the last test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devhost import standins
from devhost.__main__ import TWILIO_TOKEN_FILE
from devhost.phone_sim import TwilioCall
from devhost.process import DevHost
from shared.security.roles import Scope
from tests.e2e.conftest import StartDevHost
from tests.e2e.credentials import key_header
from tests.fakes.app_insights import FakeAppInsights
from tests.fakes.openai_server import Answer, FakeOpenAIServer
from tests.fakes.otlp_collector import FakeOtlpCollector, ReceivedSpan

SECRET_KEY = "sk-e2e-telemetry-never-exported"
MODEL = "fake-e2e-model"
MODEL_SAYS = '{"intent": "question", "text": "We open at seven."}'
CALLER_NUMBER = "+442079460958"
CALLER_SAYS = f"when do you open, call me back on {CALLER_NUMBER}"
EXPORT_SECONDS = 15
INSTRUMENTATION_KEY = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def collector() -> Iterator[FakeOtlpCollector]:
    with FakeOtlpCollector() as fake:
        yield fake


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[standins.Standin]:
    """A Redis of this module's own, so a test can stop it."""
    server = standins.start_redis(Path(tmp_path_factory.mktemp("redis")), port=0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def host(
    start_devhost: StartDevHost,
    model_server: FakeOpenAIServer,
    collector: FakeOtlpCollector,
    own_redis: standins.Standin,
) -> DevHost:
    return start_devhost(
        REDIS_URL=own_redis.url,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        OTEL_METRIC_EXPORT_INTERVAL="500",
        PYTHON_ENABLE_OPENTELEMETRY="true",  # the worker makes the host's trace context current
        TELEMETRY_STORE_SPANS="true",
        OPENAI_BASE_URL=f"{model_server.url}/v1",
        OPENAI_API_KEY=SECRET_KEY,
        OPENAI_MODEL=MODEL,
        LLM_TIMEOUT_SECONDS="5",
        LLM_MAX_RETRIES="0",
    )


def _start(host: DevHost) -> str:
    started = host.post("/api/conversations", json={"agent": "demo"})
    assert started.status_code == 201, started.text
    return str(started.json()["conversation_id"])


def _say(host: DevHost, conversation_id: str, text: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    turn = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": text}, headers=headers, timeout=60)
    assert turn.status_code == 200, f"{turn.text}\n{host.log_tail()}"
    return dict(turn.json())


def _spans_of(collector: FakeOtlpCollector, trace_id: str, until: str) -> list[ReceivedSpan]:
    """The trace's spans once one named `until` has arrived (spans are exported in batches)."""
    deadline = time.monotonic() + EXPORT_SECONDS
    while time.monotonic() < deadline:
        spans = [s for s in collector.received_spans() if s.trace_id == trace_id]
        if any(s.name == until for s in spans):
            return spans
        time.sleep(0.1)
    raise AssertionError(f"no {until} span in trace {trace_id}: {[s.name for s in collector.received_spans()]}")


def _traceparent(trace_id_hex: str) -> tuple[str, str]:
    """A caller's W3C traceparent, and the trace id as OTLP's JSON mapping spells it (base64)."""
    import base64

    return f"00-{trace_id_hex}-00f067aa0ba902b7-01", base64.b64encode(bytes.fromhex(trace_id_hex)).decode()


def test_a_turn_is_one_trace_from_the_request_through_the_activity_to_the_model_and_speech(
    host: DevHost, model_server: FakeOpenAIServer, collector: FakeOtlpCollector
) -> None:
    model_server.script(Answer(MODEL_SAYS))
    conversation_id = _start(host)
    header, trace_id = _traceparent("4bf92f3577b34da6a3ce929d0e0e4736")

    _say(host, conversation_id, CALLER_SAYS, headers={"traceparent": header})

    spans = _spans_of(collector, trace_id, until="take_turn")
    by_name = {s.name: s for s in spans}
    request, turn, model = by_name["take_turn"], by_name["answer_turn"], by_name[f"chat {MODEL}"]
    assert request.kind == "SPAN_KIND_SERVER"
    assert request.parent_span_id, "the request joins the caller's trace"
    assert request.attributes["http.response.status_code"] == 200
    assert turn.parent_span_id == request.span_id, "the activity joins the request through the Durable input"
    assert turn.attributes["voice_agent.conversation.id"] == conversation_id
    assert turn.attributes["voice_agent.turn"] == 1
    assert model.parent_span_id == turn.span_id
    assert model.kind == "SPAN_KIND_CLIENT"
    assert model.attributes["gen_ai.operation.name"] == "chat"
    assert model.attributes["gen_ai.provider.name"] == model.attributes["gen_ai.system"] == "openai"
    assert model.attributes["gen_ai.request.model"] == model.attributes["gen_ai.response.model"] == MODEL
    assert model.attributes["gen_ai.usage.output_tokens"] == len(MODEL_SAYS.split())
    assert model.attributes["gen_ai.usage.input_tokens"] > 0
    assert model.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    speech = [s for s in spans if s.name.startswith("tts ")]
    assert speech, [s.name for s in spans]
    assert all(s.parent_span_id == turn.span_id for s in speech)


def test_a_turns_postgres_redis_and_blob_calls_are_spans_of_its_trace_without_values(
    host: DevHost, model_server: FakeOpenAIServer, collector: FakeOtlpCollector
) -> None:
    model_server.script(Answer(MODEL_SAYS))
    conversation_id = _start(host)
    header, trace_id = _traceparent("7bf92f3577b34da6a3ce929d0e0e4739")

    _say(host, conversation_id, CALLER_SAYS, headers={"traceparent": header})

    spans = _spans_of(collector, trace_id, until="take_turn")
    [turn] = [s for s in spans if s.name == "answer_turn"]
    below_turn = _descendants(spans, turn.span_id)
    postgres = [s for s in below_turn if s.attributes.get("db.system") == "postgresql"]
    redis = [s for s in below_turn if s.attributes.get("db.system") == "redis"]
    blob = [s for s in below_turn if s.name == "ContainerClient.upload_blob"]
    storage_requests = [s for s in below_turn if str(s.attributes.get("url.full", "")).startswith("http")]
    assert postgres, sorted({s.name for s in below_turn})
    assert redis, sorted({s.name for s in below_turn})
    assert blob, sorted({s.name for s in below_turn})
    assert all(s.kind == "SPAN_KIND_CLIENT" for s in postgres + redis)
    assert any("INSERT" in str(s.attributes.get("db.statement", "")) for s in postgres)
    assert storage_requests, "the Azure SDK's HTTP requests are spans too"
    assert not any("sig=" in str(s.attributes["url.full"]) for s in storage_requests)
    commands = [line.split() for s in redis for line in str(s.attributes.get("db.statement", "")).splitlines()]
    assert all(set(arguments) <= {"?"} for _, *arguments in commands), "Redis arguments are replaced by ?"
    for span in spans:
        exported = json.dumps(span.attributes)
        assert "when do you open" not in exported, span
        assert CALLER_NUMBER[-10:] not in exported, span
        assert conversation_id not in str(span.attributes.get("db.statement", "")), "no parameter values in SQL"


def _descendants(spans: list[ReceivedSpan], ancestor: str) -> list[ReceivedSpan]:
    """Every span below `ancestor` in the trace."""
    children: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id, []).append(span)
    found: list[ReceivedSpan] = []
    pending = [ancestor]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child.span_id)
    return found


def test_without_a_traceparent_the_request_joins_the_functions_invocations_own_trace(
    host: DevHost, model_server: FakeOpenAIServer, collector: FakeOtlpCollector
) -> None:
    model_server.script(Answer(MODEL_SAYS))
    conversation_id = _start(host)

    _say(host, conversation_id, "when do you open")

    def turn_and_request() -> tuple[ReceivedSpan, ReceivedSpan] | None:
        spans = collector.received_spans()
        turns = [
            s
            for s in spans
            if s.name == "answer_turn"
            and s.attributes["voice_agent.conversation.id"] == conversation_id
            and s.attributes["voice_agent.turn"] == 1
        ]
        requests = {s.span_id: s for s in spans if s.name == "take_turn"}
        return next(((t, requests[t.parent_span_id]) for t in turns if t.parent_span_id in requests), None)

    deadline = time.monotonic() + EXPORT_SECONDS
    while (found := turn_and_request()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert found is not None
    turn, request = found
    exported = {s.span_id for s in collector.received_spans()}
    assert request.parent_span_id, "the request's span is a child of the host's span for this invocation"
    assert request.parent_span_id not in exported, "the host's span is Azure's request telemetry, not ours"
    assert turn.trace_id == request.trace_id


def test_finalize_is_a_span_of_its_own_under_the_activitys_invocation(
    host: DevHost, model_server: FakeOpenAIServer, collector: FakeOtlpCollector
) -> None:
    model_server.script(Answer(MODEL_SAYS))
    conversation_id = _start(host)
    _say(host, conversation_id, "when do you open")

    assert host.post(f"/api/conversations/{conversation_id}/end").status_code in (200, 202)

    def finalized() -> ReceivedSpan | None:
        return next(
            (
                s
                for s in collector.received_spans()
                if s.name == "finalize" and s.attributes["voice_agent.conversation.id"] == conversation_id
            ),
            None,
        )

    deadline = time.monotonic() + EXPORT_SECONDS
    while (span := finalized()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert span is not None, sorted({s.name for s in collector.received_spans()})
    assert span.parent_span_id, "the activity's span is a child of the host's span for its invocation"
    assert span.parent_span_id not in {s.span_id for s in collector.received_spans()}


def test_the_greeting_joins_the_trace_of_the_request_that_started_the_conversation(
    host: DevHost, collector: FakeOtlpCollector
) -> None:
    header, trace_id = _traceparent("6bf92f3577b34da6a3ce929d0e0e4738")
    started = host.post("/api/conversations", json={"agent": "demo"}, headers={"traceparent": header})
    assert started.status_code == 201, started.text

    spans = _spans_of(collector, trace_id, until="answer_turn")
    [request] = [s for s in spans if s.name == "start_conversation"]
    [greeting] = [s for s in spans if s.name == "answer_turn"]
    assert greeting.parent_span_id == request.span_id
    assert greeting.attributes["voice_agent.turn"] == 0


def test_replays_of_the_orchestration_add_no_spans_one_activity_span_per_turn(
    host: DevHost, model_server: FakeOpenAIServer, collector: FakeOtlpCollector
) -> None:
    conversation_id = _start(host)
    traces = []
    for index in range(3):
        model_server.script(Answer(MODEL_SAYS))
        header, trace_id = _traceparent(f"{index + 1:032x}")
        _say(host, conversation_id, f"question number {index}", headers={"traceparent": header})
        traces.append(trace_id)

    for trace_id in traces:
        spans = _spans_of(collector, trace_id, until="answer_turn")
        assert [s.name for s in spans].count("answer_turn") == 1, [s.name for s in spans]
        assert [s.name for s in spans].count(f"chat {MODEL}") == 1
    turns = [
        s.attributes["voice_agent.turn"]
        for s in collector.received_spans()
        if s.name == "answer_turn" and s.attributes["voice_agent.conversation.id"] == conversation_id
    ]
    assert sorted(turns) == [0, 1, 2, 3], "the greeting and three turns, each once, across every replay"


def test_a_host_killed_and_restarted_replays_the_conversation_without_repeating_a_span(
    host: DevHost, model_server: FakeOpenAIServer, collector: FakeOtlpCollector
) -> None:
    conversation_id = _start(host)
    model_server.script(Answer(MODEL_SAYS))
    header, before = _traceparent(f"{0xB1:032x}")
    _say(host, conversation_id, "before the crash", headers={"traceparent": header})
    _spans_of(collector, before, until="answer_turn")

    host.kill()
    host.start()
    model_server.script(Answer(MODEL_SAYS))
    header, after = _traceparent(f"{0xA1:032x}")
    _say(host, conversation_id, "after the restart", headers={"traceparent": header})

    _spans_of(collector, after, until="answer_turn")
    turns = [
        s.attributes["voice_agent.turn"]
        for s in collector.received_spans()
        if s.name == "answer_turn" and s.attributes["voice_agent.conversation.id"] == conversation_id
    ]
    assert sorted(turns) == [0, 1, 2], "the restarted host replayed the history and ran no turn again"


def test_no_secret_or_caller_number_is_exported_in_any_span_metric_or_log(
    host: DevHost, model_server: FakeOpenAIServer, collector: FakeOtlpCollector
) -> None:
    model_server.script(Answer(MODEL_SAYS))
    conversation_id = _start(host)
    _say(host, conversation_id, CALLER_SAYS)
    deadline = time.monotonic() + EXPORT_SECONDS
    while not collector.log_records and time.monotonic() < deadline:
        time.sleep(0.1)

    exported = b"".join(collector.raw)
    assert collector.spans, "spans were exported"
    assert collector.log_records, "logs were exported"
    assert any(record.get("traceId") for record in collector.log_records), "logs carry their span's trace"
    assert SECRET_KEY.encode() not in exported
    assert CALLER_NUMBER.encode() not in exported
    assert CALLER_NUMBER[-10:].encode() not in exported
    for span in collector.received_spans():
        assert all(CALLER_NUMBER[-4:] not in str(v) or k.endswith("id") for k, v in span.attributes.items()), span


def test_a_phone_turn_is_traced_from_the_webhook_without_the_callers_number(
    host: DevHost, model_server: FakeOpenAIServer, collector: FakeOtlpCollector
) -> None:
    phone = TwilioCall(host.base, (host.data_dir / TWILIO_TOKEN_FILE).read_text().strip(), caller=CALLER_NUMBER)
    phone.answer()
    model_server.script(Answer(MODEL_SAYS))
    phone.say("when do you open")

    def first_turn_under_a_webhook() -> ReceivedSpan | None:
        spans = collector.received_spans()
        webhooks = {s.span_id for s in spans if s.name == "twilio_gather"}
        answered = (s for s in spans if s.name == "answer_turn" and s.attributes["voice_agent.turn"] == 1)
        return next((s for s in answered if s.parent_span_id in webhooks), None)

    deadline = time.monotonic() + EXPORT_SECONDS
    while (turn := first_turn_under_a_webhook()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert turn is not None, sorted({s.name for s in collector.received_spans()})
    [webhook] = [s for s in collector.received_spans() if s.span_id == turn.parent_span_id]
    assert webhook.kind == "SPAN_KIND_SERVER"
    phone.hang_up()
    exported = b"".join(collector.raw)
    assert CALLER_NUMBER.encode() not in exported
    assert CALLER_NUMBER[-10:].encode() not in exported


def test_metrics_need_the_metrics_scope_and_show_turn_stages_tokens_and_conversations(
    host: DevHost, model_server: FakeOpenAIServer, collector: FakeOtlpCollector
) -> None:
    model_server.script(Answer(MODEL_SAYS))
    _say(host, _start(host), "when do you open")

    assert host.get("/api/metrics", anonymous=True).status_code == 401
    refused = host.get("/api/metrics", headers=key_header(host, scopes={Scope.CONVERSATIONS_READ}))
    assert refused.status_code == 403
    assert "metrics:read" in refused.json()["error"]["message"]
    scraped = host.get("/api/metrics", headers=key_header(host, scopes={Scope.METRICS_READ}))
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {
        (sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if not k.startswith("otel_"))))
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    for stage in ("model_total", "model_first_token", "tts_first_audio", "overhead"):
        assert ("voice_agent_turn_stage_duration_milliseconds_count", (("stage", stage),)) in samples, stage
    names = {name for name, _ in samples}
    assert {
        "voice_agent_turn_first_audio_milliseconds_count",
        "gen_ai_client_token_usage_count",
        "gen_ai_client_operation_duration_seconds_count",
        "voice_agent_conversations_active",
        "voice_agent_tts_characters_total",
        "voice_agent_errors_total",
    } <= names, sorted(names)
    assert ("voice_agent_errors_total", (("error_type", "forbidden"), ("where", "metrics"))) in samples
    deadline = time.monotonic() + EXPORT_SECONDS
    while "voice_agent.turn.stage.duration" not in collector.metric_names and time.monotonic() < deadline:
        time.sleep(0.1)
    assert {"voice_agent.turn.stage.duration", "gen_ai.client.operation.duration"} <= collector.metric_names


def test_metrics_cover_every_tenant_so_another_tenants_metrics_reader_is_refused(host: DevHost) -> None:
    operator = host.get("/api/metrics", headers=key_header(host, scopes={Scope.METRICS_READ}))
    assert operator.status_code == 200, "the devhost's operator tenant is the demo tenant"

    other = host.get("/api/metrics", headers=key_header(host, tenant="acme", scopes={Scope.METRICS_READ}))

    assert other.status_code == 403, other.text
    assert other.json()["error"]["code"] == "operator_only"
    assert "voice_agent" not in other.text


def test_ready_reports_each_dependency_and_a_stopped_redis_without_naming_its_address(
    host: DevHost, own_redis: standins.Standin
) -> None:
    ready = host.get("/api/ready", anonymous=True)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"postgres", "redis", "blob"}
    assert all(check["ok"] and check["ms"] >= 0 for check in body["checks"].values())
    assert body["providers"]["openai"]["configured"]
    assert body["providers"]["openai"]["ok"]
    assert body["providers"]["sarvam"] == {"configured": False, "ok": None, "ms": None, "error": None}

    own_redis.stop()
    stopped = host.get("/api/ready", anonymous=True)

    assert stopped.status_code == 503, stopped.text
    body = stopped.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"] == "ConnectionError"
    assert body["checks"]["postgres"]["ok"]
    assert body["checks"]["blob"]["ok"]
    port = own_redis.url.rsplit(":", 1)[1].split("/")[0]
    assert "127.0.0.1" not in stopped.text
    assert port not in stopped.text


def test_with_a_connection_string_the_turn_reaches_application_insights_as_one_operation(
    start_devhost: StartDevHost, model_server: FakeOpenAIServer
) -> None:
    with FakeAppInsights() as ingestion:
        host = start_devhost(
            APPLICATIONINSIGHTS_CONNECTION_STRING=f"InstrumentationKey={INSTRUMENTATION_KEY};"
            f"IngestionEndpoint={ingestion.url}/",
            OTEL_TRACES_SAMPLER="always_on",  # the distro samples by rate: a short run's spans would be dropped
            APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
            OTEL_BSP_SCHEDULE_DELAY="100",
            OPENAI_BASE_URL=f"{model_server.url}/v1",
            OPENAI_API_KEY=SECRET_KEY,
            OPENAI_MODEL=MODEL,
            LLM_MAX_RETRIES="0",
        )
        model_server.script(Answer(MODEL_SAYS))
        header, _ = _traceparent("5bf92f3577b34da6a3ce929d0e0e4737")
        _say(host, _start(host), CALLER_SAYS, headers={"traceparent": header})

        deadline = time.monotonic() + EXPORT_SECONDS
        operation = "5bf92f3577b34da6a3ce929d0e0e4737"
        while time.monotonic() < deadline:
            calls = [e for e in ingestion.received("RemoteDependency") if e["tags"]["ai.operation.id"] == operation]
            requests = [e for e in ingestion.received("Request") if e["tags"]["ai.operation.id"] == operation]
            if requests and {"answer_turn", f"chat {MODEL}"} <= {e["data"]["baseData"]["name"] for e in calls}:
                break
            time.sleep(0.1)
        host.stop()

    [request] = requests
    names = {e["data"]["baseData"]["name"] for e in calls}
    assert {"answer_turn", f"chat {MODEL}"} <= names, names
    [chat] = [e for e in calls if e["data"]["baseData"]["name"] == f"chat {MODEL}"]
    assert chat["data"]["baseData"]["properties"]["gen_ai.provider.name"] == "openai"
    assert request["data"]["baseData"]["responseCode"] == "200"
    exported = json.dumps(ingestion.envelopes)
    assert SECRET_KEY not in exported
    assert CALLER_NUMBER not in exported
