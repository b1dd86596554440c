"""One tenant can reach nothing of another's through any route: what belongs to another tenant answers
exactly as what does not exist (404, absent from lists), for API keys and signed-in people alike.

Two tenants on one devhost: `demo` (the key `make dev` makes; its file agent `demo`, an API agent, a
phone number and their audit entries) and `acme`, made with the operator's
command and given a key and a person of its own. Row-level security below is tested in SQL in
tests/integration/test_row_level_security.py; this is the same promise at the front door.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devhost.process import DevHost
from shared.agent.catalog import load_agent_file
from shared.config import REPOSITORY_ROOT
from tests.e2e.conftest import StartDevHost
from tests.e2e.credentials import issue_key
from tests.fakes.oidc_server import AUDIENCE, FakeOpenIdProvider

ACME = "acme"
DEMO_NUMBER = "+14155552671"


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeOpenIdProvider]:
    with FakeOpenIdProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost, idp: FakeOpenIdProvider) -> DevHost:
    return start_devhost(AUTH_OIDC_CONFIG_URL=idp.config_url, AUTH_AUDIENCE=AUDIENCE)


@pytest.fixture(scope="module")
def acme_key(host: DevHost) -> str:
    return issue_key(host, ACME).key


@pytest.fixture(scope="module", params=["api_key", "person"])
def acme(request: pytest.FixtureRequest, acme_key: str, idp: FakeOpenIdProvider) -> dict[str, str]:
    """Acme's credentials: its service key, or its owner signed in."""
    if request.param == "api_key":
        return {"X-API-Key": acme_key}
    return {"Authorization": f"Bearer {idp.issue(extension_tenant=ACME, roles=['owner'])}"}


@pytest.fixture(scope="module")
def demo_conversation(host: DevHost) -> dict[str, Any]:
    started = host.post("/api/conversations", json={}, headers={"Idempotency-Key": "shared-key"})
    assert started.status_code == 201, started.text
    conversation_id = started.json()["conversation_id"]
    turn = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": "what are your opening hours"})
    assert turn.status_code == 200, turn.text
    return {"id": conversation_id, "audio_url": turn.json()["reply"]["audio_url"]}


@pytest.fixture(scope="module")
def demo_key_id(host: DevHost) -> str:
    listed = host.get("/api/keys")
    assert listed.status_code == 200, listed.text
    return str(listed.json()["items"][0]["id"])


@pytest.fixture(scope="module")
def demo_agent(host: DevHost) -> str:
    """Demo's API agent `helpdesk`, with demo's number routed to it (both audited in demo's log)."""
    made = host.post("/api/agents", json=profile("helpdesk"))
    assert made.status_code == 201, made.text
    number = host.post("/api/phone-numbers", json={"number": DEMO_NUMBER, "agent": "helpdesk", "provider": "twilio"})
    assert number.status_code == 201, number.text
    return "helpdesk"


def profile(name: str) -> dict[str, Any]:
    return load_agent_file(REPOSITORY_ROOT / "agents" / "demo.toml").model_dump(mode="json") | {"name": name}


def send(host: DevHost, method: str, path: str, headers: dict[str, str], **options: Any) -> requests.Response:
    return requests.request(method, host.url(path), headers=headers, timeout=30, **options)


def not_found(response: requests.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] in {"not_found", "audio_not_found"}


def test_another_tenants_conversation_is_not_there_for_any_route(
    host: DevHost, acme: dict[str, str], demo_conversation: dict[str, Any]
) -> None:
    path = f"/api/conversations/{demo_conversation['id']}"
    not_found(host.get(path, headers=acme))
    not_found(host.post(f"{path}/turns", json={"text": "hello"}, headers=acme))
    not_found(host.post(f"{path}/end", headers=acme))
    not_found(host.get(f"{path}/audio/1", headers=acme))
    not_found(host.get(f"{path}/audio/1/0", headers=acme))
    not_found(send(host, "DELETE", path, acme))
    assert host.get(path).json()["status"] == "active", "demo's conversation is untouched"


def test_another_tenants_conversations_keys_and_usage_are_not_in_any_list(
    host: DevHost, acme: dict[str, str], demo_conversation: dict[str, Any], demo_key_id: str
) -> None:
    listed = host.get("/api/conversations", headers=acme, params={"limit": 200})
    assert listed.status_code == 200, listed.text
    assert demo_conversation["id"] not in listed.text
    keys = host.get("/api/keys", headers=acme, params={"limit": 200})
    assert keys.status_code == 200, keys.text
    assert demo_key_id not in keys.text
    today = host.get("/api/conversations").json()["items"][0]["created_at"][:10]
    usage = host.get("/api/usage", headers=acme, params={"from": today, "to": today}).json()
    assert [day["conversations"] for day in usage["days"]] == [0]
    assert host.get("/api/usage", params={"from": today, "to": today}).json()["days"][0]["conversations"] >= 1


def test_another_tenants_key_cannot_be_rotated_or_revoked(
    host: DevHost, acme: dict[str, str], demo_key_id: str
) -> None:
    not_found(host.post(f"/api/keys/{demo_key_id}/rotate", headers=acme))
    not_found(requests.delete(host.url(f"/api/keys/{demo_key_id}"), headers=acme, timeout=30))
    assert host.get("/api/keys").status_code == 200, "demo's key still works"


def test_another_tenants_agent_cannot_be_talked_to(host: DevHost, acme: dict[str, str]) -> None:
    refused = host.post("/api/conversations", json={"agent": "demo"}, headers=acme)
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "unknown_agent")


def test_another_tenants_agent_documents_cannot_be_listed_read_uploaded_or_deleted(
    host: DevHost, acme: dict[str, str]
) -> None:
    demo_docs, nobody_docs = "/api/agents/demo/documents", "/api/agents/nobody/documents"
    text = {"Content-Type": "text/plain"}
    ours = host.post(
        demo_docs, data=b"Demo's secret: the chai is brewed twice.", params={"title": "Secret"}, headers=text
    )
    assert ours.status_code in {200, 201}, ours.text

    def refused(path: str) -> list[tuple[int, str]]:
        answers = [
            host.get(path, headers=acme),
            host.get(f"{path}/secret-txt", headers=acme),
            host.post(path, data=b"Acme was here.", params={"title": "Secret"}, headers={**acme, **text}),
            requests.delete(host.url(f"{path}/secret-txt"), headers=acme, timeout=30),
        ]
        return [(a.status_code, a.json()["error"]["code"]) for a in answers]

    assert refused(demo_docs) == refused(nobody_docs) == [(404, "unknown_agent")] * 4
    kept = host.get(f"{demo_docs}/secret-txt")
    assert (kept.status_code, kept.json()["size_bytes"]) == (200, len(b"Demo's secret: the chai is brewed twice."))


def test_the_same_idempotency_key_in_two_tenants_is_two_requests(
    host: DevHost, acme: dict[str, str], demo_conversation: dict[str, Any]
) -> None:
    again = host.post("/api/conversations", json={}, headers={"Idempotency-Key": "shared-key"})
    assert again.json()["conversation_id"] == demo_conversation["id"], "within demo: the same conversation"
    theirs = host.post("/api/conversations", json={"agent": "demo"}, headers={**acme, "Idempotency-Key": "shared-key"})
    assert theirs.status_code == 404, "acme has no agent demo: its request is its own, not a replay of demo's"


def test_a_person_whose_tenant_is_not_ours_may_do_nothing(host: DevHost, idp: FakeOpenIdProvider) -> None:
    stranger = {"Authorization": f"Bearer {idp.issue(extension_tenant='globex', roles=['owner'])}"}
    refused = host.get("/api/conversations", headers=stranger)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "unknown_tenant")


def test_another_tenants_agents_are_not_there_to_read_list_change_or_delete(
    host: DevHost, acme: dict[str, str], demo_agent: str
) -> None:
    for name in ("demo", demo_agent):  # from a file, and made through the API
        not_found(host.get(f"/api/agents/{name}", headers=acme))
        not_found(host.get(f"/api/agents/{name}/versions", headers=acme))
        not_found(send(host, "PUT", f"/api/agents/{name}", acme, json=profile(name)))
        not_found(send(host, "DELETE", f"/api/agents/{name}", acme))
    listed = host.get("/api/agents", headers=acme, params={"limit": 200})
    assert listed.status_code == 200, listed.text
    assert {agent["name"] for agent in listed.json()["items"]} & {"demo", demo_agent} == set()
    ours = host.get(f"/api/agents/{demo_agent}")
    assert (ours.status_code, ours.json()["version"]) == (200, 1), "demo's agent is untouched"


def test_another_tenants_numbers_are_not_listed_changed_released_or_taken(
    host: DevHost, acme: dict[str, str], demo_agent: str
) -> None:
    listed = host.get("/api/phone-numbers", headers=acme, params={"limit": 200})
    assert listed.status_code == 200, listed.text
    assert DEMO_NUMBER not in listed.text
    change = {"agent": demo_agent, "provider": "vonage"}
    not_found(send(host, "PUT", f"/api/phone-numbers/{DEMO_NUMBER}", acme, json=change))
    not_found(send(host, "DELETE", f"/api/phone-numbers/{DEMO_NUMBER}", acme))
    assert host.post("/api/agents", json=profile("front"), headers=acme).status_code in {201, 409}  # acme's own
    taken = host.post(
        "/api/phone-numbers", json={"number": DEMO_NUMBER, "agent": "front", "provider": "twilio"}, headers=acme
    )
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "number_taken"), taken.text
    assert "demo" not in taken.text
    assert demo_agent not in taken.text
    ours = host.get("/api/phone-numbers").json()["items"]
    assert [(n["number"], n["agent"], n["provider"]) for n in ours] == [(DEMO_NUMBER, demo_agent, "twilio")]


def test_another_tenants_audit_entries_are_not_in_the_log(
    host: DevHost, acme: dict[str, str], demo_agent: str, demo_key_id: str
) -> None:
    theirs = host.get("/api/audit", headers=acme, params={"limit": 200})
    assert theirs.status_code == 200, theirs.text
    for demos in (demo_agent, DEMO_NUMBER, demo_key_id):
        assert demos not in theirs.text
    ours = {entry["target"] for entry in host.get("/api/audit", params={"limit": 200}).json()["items"]}
    assert {demo_agent, DEMO_NUMBER, demo_key_id} <= ours
