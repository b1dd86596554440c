"""Agents' HTTP tools over real HTTP on loopback: what is sent, and every way a call is refused (no SSRF)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator

import pytest

from shared.agent.http_tools import ToolFailed, call_http_tool
from shared.models import HttpMethod, HttpTool
from shared.security.egress import EgressPolicy, EgressRefused
from tests.fakes.tool_endpoint import ToolEndpoint

ORDER_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"order_id": {"type": "string", "pattern": "^[0-9]+$"}},
    "required": ["order_id"],
    "additionalProperties": False,
}
LOCAL_TESTING = EgressPolicy(allowed_hosts=("127.0.0.1", "localhost"), allow_private_networks=True)
PRODUCTION = EgressPolicy(allowed_hosts=("127.0.0.1", "localhost"), allow_private_networks=False)


@pytest.fixture
def endpoint() -> Iterator[ToolEndpoint]:
    with ToolEndpoint() as server:
        yield server


def tool(url: str, method: HttpMethod = HttpMethod.POST, timeout: float = 5.0) -> HttpTool:
    return HttpTool(
        name="order_status", description="d", url=url, method=method, parameters=ORDER_SCHEMA, timeout_seconds=timeout
    )


def test_a_post_tool_sends_its_arguments_as_json_with_an_idempotency_key(endpoint: ToolEndpoint) -> None:
    answer = call_http_tool(tool(f"{endpoint.url}/status"), {"order_id": "4711"}, LOCAL_TESTING, "c1:3:0")

    assert json.loads(answer) == {"status": "on its way", "path": "/status"}
    [sent] = endpoint.requests
    assert (sent.method, json.loads(sent.body)) == ("POST", {"order_id": "4711"})
    assert sent.headers["Idempotency-Key"] == "c1:3:0"
    assert sent.headers["Host"] == f"127.0.0.1:{endpoint.port}"


def test_a_get_tool_sends_its_arguments_as_query_parameters(endpoint: ToolEndpoint) -> None:
    call_http_tool(tool(f"{endpoint.url}/status", HttpMethod.GET), {"order_id": "4711"}, LOCAL_TESTING, "k")

    [sent] = endpoint.requests
    assert (sent.method, sent.query, sent.body) == ("GET", {"order_id": "4711"}, b"")


def test_a_loopback_address_is_refused_in_production_even_when_the_host_is_allowed(endpoint: ToolEndpoint) -> None:
    with pytest.raises(ToolFailed, match=r"addresses tools may not reach: 127\.0\.0\.1"):
        call_http_tool(tool(f"{endpoint.url}/status"), {"order_id": "1"}, PRODUCTION, "k")
    with pytest.raises(ToolFailed, match="may not reach"):
        call_http_tool(tool(f"http://localhost:{endpoint.port}/status"), {"order_id": "1"}, PRODUCTION, "k")
    assert endpoint.requests == []


def test_a_host_missing_from_the_allow_list_is_refused_before_it_is_resolved(endpoint: ToolEndpoint) -> None:
    nothing_allowed = EgressPolicy(allowed_hosts=(), allow_private_networks=True)

    with pytest.raises(ToolFailed, match="not in HTTP_TOOL_ALLOWED_HOSTS"):
        call_http_tool(tool(f"{endpoint.url}/status"), {"order_id": "1"}, nothing_allowed, "k")
    assert endpoint.requests == []


def test_a_redirect_is_not_followed(endpoint: ToolEndpoint) -> None:
    with pytest.raises(ToolFailed, match="HTTP 302"):
        call_http_tool(tool(f"{endpoint.url}/redirect"), {"order_id": "1"}, LOCAL_TESTING, "k")
    assert [r.path for r in endpoint.requests] == ["/redirect"]


def test_a_slow_or_failing_endpoint_is_a_tool_failure_not_a_crash(endpoint: ToolEndpoint) -> None:
    with pytest.raises(ToolFailed, match=r"did not answer within 0\.5 s"):
        call_http_tool(tool(f"{endpoint.url}/slow", timeout=0.5), {"order_id": "1"}, LOCAL_TESTING, "k")
    with pytest.raises(ToolFailed, match="answered HTTP 500"):
        call_http_tool(tool(f"{endpoint.url}/fail"), {"order_id": "1"}, LOCAL_TESTING, "k")


def test_arguments_that_break_the_tools_schema_are_refused_before_any_request(endpoint: ToolEndpoint) -> None:
    with pytest.raises(ToolFailed, match="order_id"):
        call_http_tool(tool(f"{endpoint.url}/status"), {"order_id": "../admin"}, LOCAL_TESTING, "k")
    with pytest.raises(ToolFailed, match="Additional properties"):
        call_http_tool(tool(f"{endpoint.url}/status"), {"order_id": "1", "x": 1}, LOCAL_TESTING, "k")
    assert endpoint.requests == []


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_no_private_loopback_link_local_or_reserved_address_is_reachable_in_production(address: str) -> None:
    assert not PRODUCTION.address_allowed(ipaddress.ip_address(address))


def test_public_addresses_are_reachable_and_wildcards_cover_subdomains_only() -> None:
    policy = EgressPolicy.from_setting(" api.example.com, *.partner.example ", allow_private_networks=False)

    assert policy.address_allowed(ipaddress.ip_address("20.42.65.92"))
    assert policy.address_allowed(ipaddress.ip_address("2606:4700::1111"))
    assert policy.host_allowed("API.example.com.")
    assert policy.host_allowed("eu.partner.example")
    assert not policy.host_allowed("partner.example")
    assert not policy.host_allowed("evil-partner.example")
    assert not policy.host_allowed("api.example.com.evil.test")


def test_a_host_that_does_not_resolve_is_refused() -> None:
    policy = EgressPolicy(allowed_hosts=("no-such-host.invalid",))

    with pytest.raises(EgressRefused, match="does not resolve"):
        policy.resolve("no-such-host.invalid", 443)
