"""The client address is the entry Azure's front end (and each trusted proxy) appended, never one the client wrote."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import azure.functions as func
import pytest

from shared.security.client_ip import client_ip


def headers(**values: str) -> Mapping[str, str]:
    """Headers as the Functions worker hands them to a handler (case-insensitive)."""
    request = func.HttpRequest("GET", "https://api.example.com/api/x", headers=values, body=b"")
    received: Mapping[str, str] = request.headers
    return received


@pytest.mark.parametrize(
    ("forwarded_for", "address"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("203.0.113.7:51234", "203.0.113.7"),
        ("[2001:db8::1]:51234", "2001:db8::1"),
        ("[2001:DB8:0:0::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("  10.1.2.3  ", "10.1.2.3"),
    ],
)
def test_the_front_ends_entry_in_each_spelling_azure_and_proxies_use(forwarded_for: str, address: str) -> None:
    assert client_ip(headers(**{"X-Forwarded-For": forwarded_for})) == ipaddress.ip_address(address)


def test_entries_the_client_wrote_to_the_left_are_ignored() -> None:
    spoofed = headers(**{"X-Forwarded-For": "1.1.1.1, 8.8.8.8:443, 203.0.113.7:51234"})

    assert client_ip(spoofed) == ipaddress.ip_address("203.0.113.7")


def test_behind_front_door_the_address_is_the_one_front_door_appended() -> None:
    chain = headers(**{"x-forwarded-for": "1.1.1.1, 198.51.100.9, 147.243.1.2:61000"})

    assert client_ip(chain, hops=2) == ipaddress.ip_address("198.51.100.9")


@pytest.mark.parametrize(
    "forwarded_for",
    [
        "",
        "unknown",
        "example.com",
        "203.0.113.7:http",
        "203.0.113.7:",
        "[2001:db8::1]x",
        "fe80::1%eth0",
        "203.0.113.7 198.51.100.9",
        "1.1.1.1, " + "9" * 65,
        "256.1.1.1",
        "２０３.0.113.7",
        "203.0.113.7:٣",
    ],
)
def test_anything_but_one_address_is_no_address(forwarded_for: str) -> None:
    assert client_ip(headers(**{"X-Forwarded-For": forwarded_for})) is None


def test_no_header_or_fewer_entries_than_trusted_proxies_is_no_address() -> None:
    assert client_ip(headers()) is None
    assert client_ip(headers(**{"X-Forwarded-For": "203.0.113.7"}), hops=2) is None


def test_a_huge_header_costs_only_the_entries_that_matter() -> None:
    flood = headers(**{"X-Forwarded-For": "1.1.1.1," * 100_000 + " 203.0.113.7:1"})

    assert client_ip(flood) == ipaddress.ip_address("203.0.113.7")


def test_at_least_one_proxy_is_trusted() -> None:
    with pytest.raises(ValueError, match="front end"):
        client_ip(headers(), hops=0)
