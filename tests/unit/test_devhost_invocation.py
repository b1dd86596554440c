"""The devhost's invocation context, as the Functions host and the worker make it: the host's span in the
caller's trace (or a new one), handed over as `func.Context.trace_context` by the worker's own code."""

from __future__ import annotations

import azure.functions as func

from devhost import invocation

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_hosts_span_continues_the_callers_trace_under_a_span_of_its_own() -> None:
    parent, state = invocation.host_trace({"traceparent": CALLER, "tracestate": "vendor=1"})

    version, trace_id, span_id, flags = parent.split("-")
    assert (version, trace_id, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert len(span_id) == 16
    assert span_id != "00f067aa0ba902b7"
    assert state == "vendor=1"


def test_without_a_valid_traceparent_the_host_starts_a_new_trace() -> None:
    for headers in ({}, {"traceparent": "garbage"}, {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"}):
        parent, state = invocation.host_trace(headers)
        assert invocation.TRACEPARENT.fullmatch(parent), parent
        assert parent.split("-")[1] not in {"4bf92f3577b34da6a3ce929d0e0e4736", "0" * 32}
        assert state == ""
    assert invocation.host_trace()[0] != invocation.host_trace()[0]


def test_the_context_is_the_workers_own_with_the_hosts_trace_context() -> None:
    context = invocation.context("take_turn", {"traceparent": CALLER})

    assert context.function_name == "take_turn"
    assert context.invocation_id
    assert context.trace_context.trace_parent.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert hasattr(func.Context, "trace_context"), "the shape the app reads on Azure"
