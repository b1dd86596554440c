"""Every route but health needs credentials: the demo key `make dev` makes, a scoped key, or a bearer token.

Through a devhost, as a client sees it: 401 with a challenge for none or bad ones, 400 for two at once,
403 naming the permission a key lacks, and a signed-in person (a real RS256 token from the OpenID fake)
acting within their role.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devhost.process import DevHost
from shared.security.roles import Scope
from shared.tenancy import DEMO_TENANT
from tests.e2e.conftest import StartDevHost
from tests.e2e.credentials import issue_key
from tests.fakes.oidc_server import AUDIENCE, FakeOpenIdProvider

GUARDED = [
    ("POST", "/api/conversations"),
    ("GET", "/api/conversations"),
    ("GET", "/api/keys"),
    ("POST", "/api/keys"),
    ("POST", "/api/keys/0123456789ab/rotate"),
    ("DELETE", "/api/keys/0123456789ab"),
    ("GET", "/api/usage"),
    ("GET", "/api/agents"),
    ("POST", "/api/agents"),
    ("GET", "/api/agents/demo"),
    ("PUT", "/api/agents/demo"),
    ("DELETE", "/api/agents/demo"),
    ("GET", "/api/agents/demo/versions"),
    ("GET", "/api/phone-numbers"),
    ("POST", "/api/phone-numbers"),
    ("PUT", "/api/phone-numbers/+14155552671"),
    ("DELETE", "/api/phone-numbers/+14155552671"),
    ("GET", "/api/audit"),
    ("POST", "/api/conversations/{id}/turns"),
    ("GET", "/api/conversations/{id}"),
    ("POST", "/api/conversations/{id}/end"),
    ("GET", "/api/conversations/{id}/audio/0"),
    ("GET", "/api/conversations/{id}/audio/0/0"),
]


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeOpenIdProvider]:
    with FakeOpenIdProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost, idp: FakeOpenIdProvider) -> DevHost:
    return start_devhost(AUTH_OIDC_CONFIG_URL=idp.config_url, AUTH_AUDIENCE=AUDIENCE)


@pytest.fixture(scope="module")
def conversation_id(host: DevHost) -> str:
    started = host.post("/api/conversations", json={})
    assert started.status_code == 201, started.text
    return str(started.json()["conversation_id"])


def key_with(host: DevHost, *scopes: Scope) -> str:
    return issue_key(host, scopes=scopes).key


def call(host: DevHost, method: str, path: str, conversation_id: str, **kwargs: Any) -> tuple[int, dict[str, str]]:
    if method in {"PUT", "DELETE"}:
        kwargs = host.request_options(kwargs.pop("anonymous", False), kwargs)
        response = requests.request(method, host.url(path), json={}, **kwargs)
    else:
        send = host.post if method == "POST" else host.get
        response = send(path.format(id=conversation_id), json={"text": "hello"} if method == "POST" else None, **kwargs)
    body = response.json()
    return response.status_code, body.get("error", {}) | {"challenge": response.headers.get("WWW-Authenticate", "")}


def test_make_dev_keeps_the_demo_key_for_its_owner_only(host: DevHost) -> None:
    key_file = host.data_dir / "api-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("vao_")


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_without_credentials_every_route_but_health_answers_401_with_a_challenge(
    host: DevHost, conversation_id: str, method: str, path: str
) -> None:
    status, error = call(host, method, path, conversation_id, anonymous=True)
    assert (status, error["code"]) == (401, "unauthenticated")
    assert error["challenge"].startswith("Bearer")
    assert host.get("/api/health", anonymous=True).status_code == 200


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"X-API-Key": "vao_000000000000_" + "a" * 43}, "invalid_api_key"),
        ({"X-API-Key": "not a key"}, "invalid_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_token"),
        ({"Authorization": "Bearer not.a.token"}, "invalid_token"),
    ],
)
def test_bad_credentials_are_401_and_say_nothing_of_what_was_sent(
    host: DevHost, conversation_id: str, headers: dict[str, str], code: str
) -> None:
    response = host.get(f"/api/conversations/{conversation_id}", headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (401, code)
    assert all(value not in response.text for value in headers.values())


def test_a_key_and_a_token_at_once_are_refused_rather_than_guessed_at(host: DevHost, idp: FakeOpenIdProvider) -> None:
    headers = {"X-API-Key": host.api_key, "Authorization": f"Bearer {idp.issue(extension_tenant=DEMO_TENANT)}"}
    response = host.post("/api/conversations", json={}, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "ambiguous_credentials")


def test_a_read_only_key_reads_but_may_not_start_speak_or_end(host: DevHost, conversation_id: str) -> None:
    reader = {"X-API-Key": key_with(host, Scope.CONVERSATIONS_READ)}
    assert host.get(f"/api/conversations/{conversation_id}", headers=reader).status_code == 200
    for method, path in GUARDED:
        if method == "POST" and path.startswith("/api/conversations"):
            status, error = call(host, method, path, conversation_id, headers=reader)
            assert (status, error["code"]) == (403, "forbidden"), path
            assert "conversations:write" in error["message"]


def test_a_key_without_conversation_scopes_may_not_read_either(host: DevHost, conversation_id: str) -> None:
    agents_only = {"X-API-Key": key_with(host, Scope.AGENTS_READ)}
    response = host.get(f"/api/conversations/{conversation_id}", headers=agents_only)
    assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")


def test_a_signed_in_builder_talks_and_a_viewer_only_reads(host: DevHost, idp: FakeOpenIdProvider) -> None:
    builder = {"Authorization": f"Bearer {idp.issue(extension_tenant=DEMO_TENANT, roles=['builder'])}"}
    started = host.post("/api/conversations", json={}, headers=builder)
    assert started.status_code == 201, started.text
    conversation_id = started.json()["conversation_id"]
    turn = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": "hello"}, headers=builder)
    assert turn.status_code == 200, turn.text

    viewer = {"Authorization": f"Bearer {idp.issue(extension_tenant=DEMO_TENANT, roles=['viewer'])}"}
    assert host.get(f"/api/conversations/{conversation_id}", headers=viewer).status_code == 200
    refused = host.post(f"/api/conversations/{conversation_id}/end", headers=viewer)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")


def test_an_expired_token_is_refused(host: DevHost, idp: FakeOpenIdProvider, conversation_id: str) -> None:
    expired = idp.issue(extension_tenant=DEMO_TENANT, exp=1_000_000_000, nbf=999_999_000, iat=999_999_000)
    response = host.get(f"/api/conversations/{conversation_id}", headers={"Authorization": f"Bearer {expired}"})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_token")
