"""CORS: only the allow-listed origins get CORS headers, and ALLOWED_ORIGINS takes nothing but origins."""

from __future__ import annotations

import pydantic
import pytest

from shared.config import Settings
from shared.security.cors import CorsPolicy, parse_origins

APP = "https://app.example.com"
LOCAL = "http://localhost:5173"
POLICY = CorsPolicy.from_setting(f"{APP}, {LOCAL}")


def test_an_allowed_origin_is_echoed_with_vary_and_the_headers_clients_read() -> None:
    assert POLICY.response_headers(APP) == {
        "Vary": "Origin",
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Expose-Headers": "Location, Retry-After, ETag",
    }
    assert POLICY.response_headers(LOCAL)["Access-Control-Allow-Origin"] == LOCAL


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "https://evil.example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "null",
        "*",
        "https://app.example.com.evil.example",
        "HTTPS://APP.EXAMPLE.COM",
    ],
)
def test_any_other_origin_gets_only_vary(origin: str | None) -> None:
    assert POLICY.response_headers(origin) == {"Vary": "Origin"}


def test_a_preflight_from_an_allowed_origin_is_answered_with_methods_headers_and_max_age() -> None:
    answer = POLICY.preflight(APP, "POST")

    assert answer.status == 204
    assert answer.headers == {
        "Vary": "Origin, Access-Control-Request-Method",
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
        "Access-Control-Allow-Headers": "Authorization, X-API-Key, Content-Type, Idempotency-Key, If-Match",
        "Access-Control-Max-Age": "7200",
    }


@pytest.mark.parametrize(
    ("origin", "method"),
    [("https://evil.example.com", "POST"), (None, "POST"), (APP, None), (APP, "PATCH"), (APP, "post")],
)
def test_other_preflights_are_refused_without_cors_headers(origin: str | None, method: str | None) -> None:
    answer = POLICY.preflight(origin, method)

    assert answer.status == 403
    assert not any(name.startswith("Access-Control-") for name in answer.headers)


def test_origins_are_kept_as_browsers_write_them() -> None:
    assert parse_origins(
        " https://App.Example.com ,http://localhost:5173,, https://x.example.com:443, http://[::1]:8080"
    ) == {
        "https://app.example.com",
        "http://localhost:5173",
        "https://x.example.com",
        "http://[::1]:8080",
    }
    assert parse_origins("") == frozenset()


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "https://app.example.com, *",
        "https://app.example.com/",
        "https://app.example.com/app",
        "https://app.example.com?x=1",
        "https://app.example.com#top",
        "https://user@app.example.com",
        "app.example.com",
        "ftp://app.example.com",
        "null",
        "https://",
        "https://app.example.com:99999",
        "https://app.example.com:port",
        "https://exa mple.com",
        "https://*.example.com",
    ],
)
def test_anything_but_an_origin_is_refused_at_startup(value: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="allowed_origins"):
        Settings(allowed_origins=value)


def test_no_origins_means_no_cross_origin_calls() -> None:
    nobody = CorsPolicy.from_setting(Settings(allowed_origins="").allowed_origins)

    assert nobody.response_headers(APP) == {"Vary": "Origin"}
    assert nobody.preflight(APP, "GET").status == 403
