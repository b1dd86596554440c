"""Calling an agent's HTTP tool: arguments checked against its schema, the host against the egress policy.

The request goes to the address the policy checked (the URL's host kept in `Host` and in TLS's
server name), never follows redirects, and reads a bounded answer. An `Idempotency-Key` names the
conversation, turn and call, so an endpoint can tell a retried turn's call from a new one: a turn
that is retried after a crash calls its tools again.
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit, urlunsplit

from shared.models import HttpMethod, HttpTool
from shared.security.egress import EgressPolicy

MAX_ANSWER_BYTES = 64 * 1024
"""An answer is for a model to read aloud from: anything longer is cut."""
QUERY_METHODS = frozenset({HttpMethod.GET, HttpMethod.DELETE})


class ToolFailed(Exception):
    """The tool could not be called or answered with an error; the message is safe to show the model."""


def check_arguments(tool: HttpTool, arguments: dict[str, object]) -> None:
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(tool.parameters).iter_errors(arguments), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "arguments"
        raise ToolFailed(f"invalid arguments for {tool.name}: {where}: {errors[0].message}")


def call_http_tool(tool: HttpTool, arguments: dict[str, object], policy: EgressPolicy, idempotency_key: str) -> str:
    """The tool's answer as text (cut to MAX_ANSWER_BYTES); ToolFailed for anything that went wrong."""
    import httpx

    from shared.security.egress import EgressRefused

    check_arguments(tool, arguments)
    url = urlsplit(tool.url)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        address = policy.resolve(host, port)
    except EgressRefused as refused:
        raise ToolFailed(f"{tool.name} refused: {refused}") from None
    literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    pinned = urlunsplit(url._replace(netloc=f"{literal}:{port}"))
    headers = {
        "Host": url.netloc.rpartition("@")[2],
        "Idempotency-Key": idempotency_key,
        "Accept": "application/json, text/plain;q=0.9",
        "User-Agent": "voice-agent-orchestrator",
    }
    query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()}
    try:
        with (
            httpx.Client(timeout=tool.timeout_seconds, follow_redirects=False, trust_env=False) as client,
            client.stream(
                tool.method.value,
                pinned,
                params=query if tool.method in QUERY_METHODS else None,
                json=None if tool.method in QUERY_METHODS else arguments,
                headers=headers,
                extensions={"sni_hostname": host},
            ) as answer,
        ):
            body = bytearray()
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) >= MAX_ANSWER_BYTES:
                    break
            status = answer.status_code
    except httpx.TimeoutException:
        raise ToolFailed(f"{tool.name} did not answer within {tool.timeout_seconds} s") from None
    except httpx.HTTPError as error:
        raise ToolFailed(f"{tool.name} could not be reached: {type(error).__name__}") from None
    text = bytes(body[:MAX_ANSWER_BYTES]).decode("utf-8", errors="replace")
    if status >= 300:
        raise ToolFailed(f"{tool.name} answered HTTP {status}: {text[:200]}")
    return text
