"""Each invocation's context as the Functions host and the Python worker make it.

The host runs every execution inside a span of its own (Azure's request telemetry for an HTTP trigger,
its dependency telemetry for an activity), continuing the caller's W3C trace when the request has a
`traceparent` header, and passes that span to the worker as the invocation's trace context. The worker
gives it to a function that takes a `context` parameter (`func.Context.trace_context`) and, with
PYTHON_ENABLE_OPENTELEMETRY on, makes it the current OpenTelemetry context before an async function
runs (not inside the thread of a sync one). The devhost exports no spans of its own: the host's span is
a remote parent, as Azure's is to the app's exporter.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from devhost import worker_index

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})")


def host_trace(headers: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The host's span for one execution as a traceparent (in the caller's trace when it sent a valid one,
    else in a new trace), and the tracestate carried along."""
    headers = headers or {}
    incoming = TRACEPARENT.fullmatch(headers.get("traceparent", "").strip().lower())
    if incoming is not None and incoming.group(1) != "0" * 32:
        trace_id, flags, state = incoming.group(1), incoming.group(2), headers.get("tracestate", "")
    else:
        trace_id, flags, state = secrets.token_hex(16), "01", ""
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}", state


def context(function_name: str, headers: Mapping[str, str] | None = None) -> Any:
    """A new invocation's `func.Context`, its trace context the host's span for it."""
    trace_parent, trace_state = host_trace(headers)
    return worker_index.invocation_context(function_name, str(uuid.uuid4()), trace_parent, trace_state)


def attach_when_enabled(invocation: Any) -> None:
    """The worker's own step for an async function, when the app setting turns it on."""
    if os.environ.get("PYTHON_ENABLE_OPENTELEMETRY", "").strip().lower() in {"true", "1"}:
        worker_index.attach_invocation_trace(invocation)
