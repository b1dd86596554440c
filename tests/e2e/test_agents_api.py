"""Agents, phone numbers and the audit log through a devhost, as an admin client sees them: versions and
lost-update checks, agents from files read-only, soft delete against starting conversations, numbers
unique across tenants, and an audit entry for every admin write, API keys' included."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from devhost.process import DevHost
from shared.agent.catalog import load_agent_file
from shared.config import REPOSITORY_ROOT
from shared.security.api_keys import ApiKeys
from shared.security.roles import KEY_SCOPES
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.postgres import open_pool
from shared.storage.tenants import create_tenant
from shared.tenancy import tenant_scope
from tests.e2e.conftest import StartDevHost

NUMBER = "+14155552671"
OTHER_NUMBER = "+442071838750"


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    return start_devhost(SILENCE_TIMEOUT_SECONDS="3600")


@pytest.fixture(scope="module")
def demo_key_id(host: DevHost) -> str:
    return host.api_key.split("_")[1]


def profile(name: str, greeting: str = "Hello from the API.", **fields: Any) -> dict[str, Any]:
    base = load_agent_file(REPOSITORY_ROOT / "agents" / "demo.toml").model_dump(mode="json")
    return base | {"name": name, "greeting": greeting, "knowledge": []} | fields


def send(host: DevHost, method: str, path: str, **options: Any) -> requests.Response:
    return requests.request(method, host.url(path), **host.request_options(False, options))


def error_of(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    return str(response.json()["error"]["message"])


def created(host: DevHost, name: str, **fields: Any) -> dict[str, Any]:
    response = host.post("/api/agents", json=profile(name, **fields))
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_an_agent_is_made_changed_with_its_version_checked_and_every_version_listed(
    host: DevHost, demo_key_id: str
) -> None:
    made = host.post("/api/agents", json=profile("sales", "Hi, this is sales."))
    assert made.status_code == 201, made.text
    assert (made.headers["Location"], made.headers["ETag"]) == ("/api/agents/sales", '"1"')
    body = made.json()
    assert (body["name"], body["version"], body["source"]) == ("sales", 1, "api")
    assert body["profile"]["greeting"] == "Hi, this is sales."
    error_of(host.post("/api/agents", json=profile("sales")), 409, "agent_exists")

    read = host.get("/api/agents/sales")
    assert (read.status_code, read.headers["ETag"], read.json()) == (200, '"1"', body)
    listed = host.get("/api/agents").json()["items"]
    assert {(a["name"], a["source"], a["version"]) for a in listed} >= {("sales", "api", 1), ("demo", "file", 1)}

    changed = send(host, "PUT", "/api/agents/sales", json=profile("sales", "Version two."), headers={"If-Match": '"1"'})
    assert (changed.status_code, changed.headers["ETag"], changed.json()["version"]) == (200, '"2"', 2)
    stale = send(host, "PUT", "/api/agents/sales", json=profile("sales", "Lost."), headers={"If-Match": '"1"'})
    assert "version 2" in error_of(stale, 412, "version_mismatch")
    garbage = send(host, "PUT", "/api/agents/sales", json=profile("sales"), headers={"If-Match": "two"})
    error_of(garbage, 412, "version_mismatch")
    assert send(host, "PUT", "/api/agents/sales", json=profile("sales", "Three.")).json()["version"] == 3

    first = host.get("/api/agents/sales/versions", params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [(v["version"], v["profile"]["greeting"]) for v in page["items"]] == [(3, "Three."), (2, "Version two.")]
    assert {v["created_by"] for v in page["items"]} == {f"api_key:{demo_key_id}"}
    rest = host.get("/api/agents/sales/versions", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert ([v["version"] for v in rest["items"]], rest["next_cursor"]) == ([1], None)


def test_a_new_agent_answers_calls_and_once_deleted_starts_none_while_its_calls_go_on(host: DevHost) -> None:
    created(host, "kiosk", greeting="Welcome to the kiosk.")
    started = host.post("/api/conversations", json={"agent": "kiosk"})
    assert started.status_code == 201, started.text
    assert started.json()["reply"]["text"] == "Welcome to the kiosk."
    conversation_id = started.json()["conversation_id"]

    deleted = send(host, "DELETE", "/api/agents/kiosk")
    assert (deleted.status_code, deleted.content) == (204, b"")
    error_of(host.get("/api/agents/kiosk"), 404, "not_found")
    error_of(host.get("/api/agents/kiosk/versions"), 404, "not_found")
    error_of(send(host, "DELETE", "/api/agents/kiosk"), 404, "not_found")
    assert "kiosk" not in [a["name"] for a in host.get("/api/agents", params={"limit": 200}).json()["items"]]
    error_of(host.post("/api/conversations", json={"agent": "kiosk"}), 404, "unknown_agent")

    turn = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": "hello"})
    assert turn.status_code == 200, turn.text
    transcript = host.get(f"/api/conversations/{conversation_id}").json()
    assert (transcript["agent"], len(transcript["turns"])) == ("kiosk", 2)

    again = created(host, "kiosk", greeting="The kiosk is back.")
    assert again["version"] == 2, "a deleted name made again is its next version"
    assert host.post("/api/conversations", json={"agent": "kiosk"}).json()["reply"]["text"] == "The kiosk is back."


def test_an_agent_from_a_file_is_changed_in_its_file_not_here(host: DevHost) -> None:
    demo = host.get("/api/agents/demo")
    assert (demo.status_code, demo.json()["source"]) == (200, "file")
    assert "demo.toml" in error_of(
        send(host, "PUT", "/api/agents/demo", json=profile("demo")), 409, "agent_managed_by_file"
    )
    error_of(send(host, "DELETE", "/api/agents/demo"), 409, "agent_managed_by_file")
    error_of(host.post("/api/agents", json=profile("demo")), 409, "agent_managed_by_file")
    versions = host.get("/api/agents/demo/versions").json()["items"]
    assert [(v["version"], v["created_by"]) for v in versions] == [(1, "file:demo.toml")]
    assert host.post("/api/conversations", json={}).status_code == 201, "the file's agent still answers"


@pytest.mark.parametrize(
    ("body", "status", "code", "names"),
    [
        (json.dumps({"name": "x1", "display_name": "X"}), 422, "invalid_request", "greeting"),
        (json.dumps(profile("x2", model={"temperature": 9})), 422, "invalid_request", "model.temperature"),
        (json.dumps(profile("x3", knowledge=[{"title": "T", "path": "a.md"}])), 422, "invalid_request", "knowledge"),
        (json.dumps(profile("x4", surprise=1)), 422, "invalid_request", "surprise"),
        (json.dumps(profile("Bad Name")), 422, "invalid_request", "name"),
        (json.dumps(profile("x5", greeting="nul \u0000 here")), 422, "invalid_text", "greeting"),
        (json.dumps(profile("x6", intents={"greeting": {"phrases": ["\ud800"]}})), 422, "invalid_text", "phrases"),
        (json.dumps(profile("x7")).replace('"temperature": 0.3', '"temperature": NaN'), 400, "malformed_json", "NaN"),
        (
            json.dumps(profile("x8")).replace('"temperature": 0.3', '"temperature": 1e999'),
            400,
            "malformed_json",
            "finite",
        ),
        (
            json.dumps(profile("x9", instructions="x" * 7000, expected_phrases=["y" * 1000] * 60)),
            413,
            "payload_too_large",
            "65536",
        ),
        ("[1, 2]", 400, "malformed_json", "object"),
    ],
)
def test_a_bad_profile_is_a_4xx_naming_what_is_wrong(
    host: DevHost, body: str, status: int, code: str, names: str
) -> None:
    response = host.post("/api/agents", data=body.encode(), headers={"Content-Type": "application/json"})
    assert names in error_of(response, status, code)


def test_other_refusals_of_the_agent_routes(host: DevHost) -> None:
    error_of(
        host.post("/api/agents", data=b"name=x", headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"
    )
    error_of(host.get("/api/agents/NOT_A_NAME"), 404, "not_found")
    error_of(host.get("/api/agents/nobody"), 404, "not_found")
    error_of(send(host, "PUT", "/api/agents/nobody", json=profile("nobody")), 404, "not_found")
    created(host, "renamed")
    error_of(send(host, "PUT", "/api/agents/renamed", json=profile("other")), 422, "invalid_request")
    error_of(host.get("/api/agents", params={"cursor": "bogus"}), 400, "invalid_cursor")
    error_of(host.get("/api/agents/renamed/versions", params={"limit": 51}), 400, "invalid_query")


def test_reading_needs_agents_read_and_writing_agents_admin(host: DevHost) -> None:
    reader = host.post("/api/keys", json={"name": "reader", "scopes": ["agents:read"]}).json()["key"]
    as_reader = {"X-API-Key": reader}
    assert host.get("/api/agents", headers=as_reader).status_code == 200
    assert host.get("/api/phone-numbers", headers=as_reader).status_code == 200
    error_of(host.post("/api/agents", json=profile("nope"), headers=as_reader), 403, "forbidden")
    error_of(send(host, "DELETE", "/api/agents/sales", headers=as_reader), 403, "forbidden")
    error_of(host.post("/api/phone-numbers", json={}, headers=as_reader), 403, "forbidden")
    error_of(host.get("/api/audit", headers=as_reader), 403, "forbidden")


def test_a_number_routes_to_a_live_agent_and_is_changed_and_released(host: DevHost) -> None:
    created(host, "desk")
    made = host.post("/api/phone-numbers", json={"number": NUMBER, "agent": "desk", "provider": "twilio"})
    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in ("number", "agent", "provider")} == {
        "number": NUMBER,
        "agent": "desk",
        "provider": "twilio",
    }
    assert NUMBER in [n["number"] for n in host.get("/api/phone-numbers").json()["items"]]
    again = host.post("/api/phone-numbers", json={"number": NUMBER, "agent": "desk", "provider": "vonage"})
    error_of(again, 409, "number_exists")
    assert NUMBER in error_of(send(host, "DELETE", "/api/agents/desk"), 409, "agent_has_phone_numbers")

    moved = send(host, "PUT", f"/api/phone-numbers/{NUMBER}", json={"agent": "demo", "provider": "amazon_connect"})
    assert (moved.status_code, moved.json()["agent"], moved.json()["provider"]) == (200, "demo", "amazon_connect")
    assert send(host, "DELETE", "/api/agents/desk").status_code == 204
    to_deleted = send(host, "PUT", f"/api/phone-numbers/{NUMBER}", json={"agent": "desk", "provider": "twilio"})
    error_of(to_deleted, 422, "unknown_agent")
    released = send(host, "DELETE", f"/api/phone-numbers/{NUMBER}")
    assert released.status_code == 204
    error_of(send(host, "DELETE", f"/api/phone-numbers/{NUMBER}"), 404, "not_found")
    error_of(
        send(host, "PUT", f"/api/phone-numbers/{NUMBER}", json={"agent": "demo", "provider": "twilio"}),
        404,
        "not_found",
    )


@pytest.mark.parametrize(
    ("body", "code", "names"),
    [
        ({"number": "+1415555267", "agent": "demo", "provider": "twilio"}, "invalid_request", "number"),
        ({"number": "+19999999999", "agent": "demo", "provider": "twilio"}, "invalid_request", "E.164"),
        ({"number": "14155552671", "agent": "demo", "provider": "twilio"}, "invalid_request", "number"),
        ({"number": OTHER_NUMBER, "agent": "demo", "provider": "skype"}, "invalid_request", "provider"),
        ({"number": OTHER_NUMBER, "agent": "nobody", "provider": "twilio"}, "unknown_agent", "nobody"),
    ],
)
def test_a_bad_number_is_a_422(host: DevHost, body: dict[str, str], code: str, names: str) -> None:
    assert names in error_of(host.post("/api/phone-numbers", json=body), 422, code)


def test_every_admin_write_is_in_the_audit_log_with_who_and_no_secret(host: DevHost, demo_key_id: str) -> None:
    key = host.post("/api/keys", json={"name": "audited", "scopes": ["usage:read"]}).json()
    rotated = host.post(f"/api/keys/{key['id']}/rotate").json()
    send(host, "DELETE", f"/api/keys/{rotated['id']}")
    created(host, "logged")
    send(host, "PUT", "/api/agents/logged", json=profile("logged", "Changed."))
    send(host, "DELETE", "/api/agents/logged")
    host.post("/api/phone-numbers", json={"number": OTHER_NUMBER, "agent": "demo", "provider": "vonage"})

    response = host.get("/api/audit", params={"limit": 200})
    assert response.status_code == 200, response.text
    entries = response.json()["items"]
    mine = [(e["action"], e["target"]) for e in entries if e["target"] in {key["id"], "logged", OTHER_NUMBER}]
    assert mine == [
        ("phone_number.create", OTHER_NUMBER),
        ("agent.delete", "logged"),
        ("agent.update", "logged"),
        ("agent.create", "logged"),
        ("key.rotate", key["id"]),
        ("key.create", key["id"]),
    ]
    assert ("key.revoke", rotated["id"]) in [(e["action"], e["target"]) for e in entries]
    assert {e["actor"] for e in entries if e["target"] in {key["id"], "logged", OTHER_NUMBER}} == {
        f"api_key:{demo_key_id}"
    }
    assert ("key.create", "devhost") in [(e["action"], e["actor"]) for e in entries], "the devhost's own key"
    assert key["key"] not in response.text
    assert rotated["key"] not in response.text
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)

    only = host.get("/api/audit", params={"action": "agent.update"}).json()["items"]
    assert {e["action"] for e in only} == {"agent.update"}
    newest = entries[0]["at"]
    assert host.get("/api/audit", params={"until": entries[-1]["at"]}).json()["items"] == []
    assert len(host.get("/api/audit", params={"since": newest}).json()["items"]) >= 1
    paged = host.get("/api/audit", params={"limit": 1}).json()
    second = host.get("/api/audit", params={"limit": 1, "cursor": paged["next_cursor"]}).json()
    assert [paged["items"][0]["id"], second["items"][0]["id"]] == [entries[0]["id"], entries[1]["id"]]
    error_of(host.get("/api/audit", params={"action": "agent.explode"}), 400, "invalid_query")
    error_of(host.get("/api/audit", params={"since": newest, "until": newest}), 400, "invalid_query")


def test_a_number_another_tenant_holds_is_taken_without_saying_whose(host: DevHost) -> None:
    host.post("/api/phone-numbers", json={"number": OTHER_NUMBER, "agent": "demo", "provider": "vonage"})
    assert create_tenant(host.env["DATABASE_URL"], "globex", "Globex") is True
    pool = open_pool(host.env["DATABASE_URL"], 1)
    try:
        with tenant_scope("globex"):
            globex = {"X-API-Key": ApiKeys(ApiKeyRepository(pool)).create("globex", "g", KEY_SCOPES, "tests").key}
    finally:
        pool.close()
    created_there = host.post("/api/agents", json=profile("demo"), headers=globex)
    assert created_there.status_code == 201, "an agent name is per tenant"
    taken = host.post(
        "/api/phone-numbers", json={"number": OTHER_NUMBER, "agent": "demo", "provider": "twilio"}, headers=globex
    )
    message = error_of(taken, 409, "number_taken")
    assert "demo" not in message.lower()
    assert host.get("/api/phone-numbers", headers=globex).json()["items"] == []
