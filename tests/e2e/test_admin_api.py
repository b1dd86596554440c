"""The admin API through a devhost, as a client sees it: the API key lifecycle, the conversation list and
usage per day, whose figures must be the sums of what each conversation shows."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from devhost.process import DevHost
from shared.security.roles import Scope
from tests.e2e.conftest import StartDevHost
from tests.e2e.credentials import issue_key
from tests.e2e.polling import wait_until


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    return start_devhost(SILENCE_TIMEOUT_SECONDS="3600")  # no re-prompt changes a count mid-test


def as_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def create_key(host: DevHost, *scopes: str, key: str | None = None, **extra: Any) -> requests.Response:
    headers = as_key(key) if key else {}
    return host.post("/api/keys", json={"name": "svc", "scopes": list(scopes), **extra}, headers=headers)


def issued(host: DevHost, *scopes: str, key: str | None = None) -> dict[str, Any]:
    response = create_key(host, *scopes, key=key)
    assert response.status_code == 201, response.text
    return dict(response.json())


def delete(host: DevHost, path: str, key: str | None = None) -> requests.Response:
    return requests.delete(host.url(path), headers=as_key(key or host.api_key), timeout=30)


def error_code(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


def reads(host: DevHost, key: str) -> int:
    return host.get("/api/conversations", headers=as_key(key)).status_code


def test_a_key_is_made_used_rotated_and_revoked_and_each_old_secret_stops_working_at_once(host: DevHost) -> None:
    made = issued(host, "conversations:read")
    assert made["key"].startswith(f"{made['prefix']}_")
    assert (made["name"], made["scopes"], made["revoked_at"]) == ("svc", ["conversations:read"], None)
    assert made["created_by"].startswith("api_key:")
    assert reads(host, made["key"]) == 200

    rotated = host.post(f"/api/keys/{made['id']}/rotate")
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert (new["name"], new["scopes"]) == (made["name"], made["scopes"])
    assert new["id"] != made["id"]
    assert error_code(host.get("/api/conversations", headers=as_key(made["key"])), 401) == "invalid_api_key"
    assert reads(host, new["key"]) == 200

    revoked = delete(host, f"/api/keys/{new['id']}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert "key" not in revoked.json()
    assert reads(host, new["key"]) == 401
    assert delete(host, f"/api/keys/{new['id']}").status_code == 200  # again: no error
    assert error_code(host.post(f"/api/keys/{new['id']}/rotate"), 404) == "not_found"


def test_a_key_without_keys_admin_may_not_manage_keys(host: DevHost) -> None:
    reader = issued(host, "conversations:read")["key"]
    assert error_code(create_key(host, "conversations:read", key=reader), 403) == "forbidden"
    assert error_code(host.get("/api/keys", headers=as_key(reader)), 403) == "forbidden"


def test_a_caller_grants_only_scopes_it_holds_and_rotates_only_keys_within_them(host: DevHost) -> None:
    admin = issued(host, "keys:admin", "conversations:read")["key"]
    refused = create_key(host, "conversations:read", "usage:read", key=admin)
    assert error_code(refused, 403) == "forbidden"
    assert "usage:read" in refused.json()["error"]["message"]
    assert issued(host, "conversations:read", key=admin)["scopes"] == ["conversations:read"]

    wider = issued(host, "usage:read")
    assert error_code(host.post(f"/api/keys/{wider['id']}/rotate", headers=as_key(admin)), 403) == "forbidden"
    assert reads(host, wider["key"]) == 403  # still valid (usage only), not rotated


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "x", "scopes": ["tenant:admin"]}, 422),
        ({"name": "x", "scopes": []}, 422),
        ({"name": "   ", "scopes": ["usage:read"]}, 422),
        ({"name": "x" * 201, "scopes": ["usage:read"]}, 422),
        ({"name": "x", "scopes": ["usage:read", "usage:read"]}, 422),
        ({"name": "x", "scopes": ["usage:read"], "expires_at": "2001-01-01T00:00:00Z"}, 422),
        ({"name": "x", "scopes": ["usage:read"], "expires_at": "9999-12-31T23:59:59-05:00"}, 422),
        ({"name": "x", "scopes": ["usage:read"], "expires_at": "2030-01-01T00:00:00"}, 422),
        ({"name": "x\u0000", "scopes": ["usage:read"]}, 422),
        ({"name": "x", "scopes": ["usage:read"], "admin": True}, 422),
    ],
)
def test_a_bad_key_request_is_a_4xx_json_error(host: DevHost, body: dict[str, Any], status: int) -> None:
    response = host.post("/api/keys", json=body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}


def test_a_key_may_expire_at_a_time_it_names(host: DevHost) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    made = issued(host, "usage:read")
    dated = create_key(host, "usage:read", expires_at=expires.isoformat())
    assert dated.status_code == 201, dated.text
    assert datetime.fromisoformat(dated.json()["expires_at"]) == expires
    assert made["expires_at"] is None


def test_the_list_pages_through_every_key_newest_first_and_never_shows_a_secret(host: DevHost) -> None:
    secrets = [issued(host, "conversations:read")["key"] for _ in range(3)] + [host.api_key]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = host.get("/api/keys", params=params)
        assert page.status_code == 200, page.text
        assert all(secret not in page.text for secret in secrets)
        assert "hash" not in page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len({item["id"] for item in seen}) >= 4
    created = [item["created_at"] for item in seen]
    assert created == sorted(created, reverse=True)
    assert set(seen[0]) == {
        "id", "prefix", "name", "scopes", "created_by", "created_at",
        "expires_at", "last_used_at", "revoked_at", "replaced_by",
    }  # fmt: skip
    assert "make dev" in {item["name"] for item in seen}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": "garbage"}, "invalid_cursor"),
        ({"limit": "0"}, "invalid_query"),
        ({"limit": "201"}, "invalid_query"),
        ({"limit": "ten"}, "invalid_query"),
        ({"page": "2"}, "invalid_query"),
    ],
)
def test_a_bad_key_list_query_is_a_400(host: DevHost, params: dict[str, str], code: str) -> None:
    assert error_code(host.get("/api/keys", params=params), 400) == code


@pytest.fixture(scope="module")
def other_tenants_key(host: DevHost) -> tuple[str, str]:
    made = issue_key(host, "other", {Scope.KEYS_ADMIN})
    return made.record.id, made.key


def test_a_key_of_another_tenant_is_as_unknown_as_none(host: DevHost, other_tenants_key: tuple[str, str]) -> None:
    key_id, key = other_tenants_key
    assert error_code(host.post(f"/api/keys/{key_id}/rotate"), 404) == "not_found"
    assert error_code(delete(host, f"/api/keys/{key_id}"), 404) == "not_found"
    assert key_id not in host.get("/api/keys", params={"limit": 200}).text
    assert host.get("/api/keys", headers=as_key(key)).status_code == 200  # untouched
    assert error_code(delete(host, "/api/keys/not-a-key-id"), 404) == "not_found"


def start(host: DevHost) -> str:
    response = host.post("/api/conversations", json={"agent": "demo"})
    assert response.status_code == 201, response.text
    return str(response.json()["conversation_id"])


def say(host: DevHost, conversation_id: str, text: str) -> None:
    response = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": text})
    assert response.status_code == 200, response.text


def unsigned(detail: dict[str, Any]) -> dict[str, Any]:
    """A transcript with its audio links' signatures taken out: two reads a second apart sign differently."""
    unsigned_links: dict[str, Any] = json.loads(re.sub(r"token=[^&\"]*&?", "", json.dumps(detail)))
    return unsigned_links


def detail(host: DevHost, conversation_id: str) -> dict[str, Any]:
    response = host.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def conversations(host: DevHost) -> list[str]:
    """Four conversations, oldest first: two with turns, one of them ended and finalized."""
    made = [start(host) for _ in range(4)]
    say(host, made[0], "what are your opening hours")
    say(host, made[0], "how much does delivery cost")
    say(host, made[1], "hello there")
    assert host.post(f"/api/conversations/{made[1]}/end").status_code == 202
    wait_until(lambda: detail(host, made[1]), lambda c: c["status"] == "completed")
    return made


def listing(host: DevHost, **params: str | int) -> dict[str, Any]:
    response = host.get("/api/conversations", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_list_pages_newest_first_with_turn_counts_and_transcript_links(
    host: DevHost, conversations: list[str]
) -> None:
    seen: list[dict[str, Any]] = []
    page = listing(host, limit=3)
    seen += page["items"]
    assert len(page["items"]) == 3
    assert page["next_cursor"]
    page = listing(host, limit=3, cursor=page["next_cursor"])
    seen += page["items"]
    assert page["next_cursor"] is None
    assert [item["conversation_id"] for item in seen] == conversations[::-1]
    for item in seen:
        shown = detail(host, item["conversation_id"])
        assert item["turns"] == len(shown["turns"])
        assert (item["agent"], item["channel"], item["language"]) == ("demo", "api", shown["language"])
        assert (item["status"], item["outcome"]) == (shown["status"], shown["outcome"])
        linked = requests.get(item["transcript_url"], headers=as_key(host.api_key), timeout=30).json()
        assert unsigned(linked) == unsigned(shown)
    assert seen[-1]["turns"] == 3  # the greeting and two turns


def ids(page: dict[str, Any]) -> list[str]:
    return [item["conversation_id"] for item in page["items"]]


def test_the_list_filters_by_status_outcome_agent_and_time(host: DevHost, conversations: list[str]) -> None:
    assert ids(listing(host, status="completed")) == [conversations[1]]
    assert ids(listing(host, outcome="ended_by_client")) == [conversations[1]]
    assert ids(listing(host, status="active")) == [c for c in conversations[::-1] if c != conversations[1]]
    assert ids(listing(host, agent="nobody")) == []
    assert len(ids(listing(host, agent="demo"))) == 4
    third = detail(host, conversations[2])["created_at"]
    assert ids(listing(host, since=third)) == conversations[:1:-1]
    assert ids(listing(host, until=third)) == conversations[1::-1]
    assert ids(listing(host, since=datetime.now(UTC).isoformat().replace("+00:00", "Z"))) == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"status": "sleeping"}, "invalid_query"),
        ({"outcome": "won"}, "invalid_query"),
        ({"agent": "Not An Agent"}, "invalid_query"),
        ({"since": "yesterday"}, "invalid_query"),
        ({"since": "2026-01-01T00:00:00"}, "invalid_query"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "invalid_query"),
        ({"limit": "1000"}, "invalid_query"),
        ({"stauts": "active"}, "invalid_query"),
        ({"cursor": "eyJub3QiOiJhIGN1cnNvciJ9"}, "invalid_cursor"),
        ({"cursor": "x" * 300}, "invalid_query"),
    ],
)
def test_a_bad_list_query_is_a_400(host: DevHost, params: dict[str, str], code: str) -> None:
    assert error_code(host.get("/api/conversations", params=params), 400) == code


def test_usage_per_day_is_the_sum_of_what_each_conversation_shows(host: DevHost, conversations: list[str]) -> None:
    today = datetime.now(UTC).date()
    response = host.get("/api/usage", params={"from": str(today - timedelta(days=1)), "to": str(today)})
    assert response.status_code == 200, response.text
    report = response.json()
    assert [day["day"] for day in report["days"]] == [str(today - timedelta(days=1)), str(today)]
    total = {key: sum(day[key] for day in report["days"]) for key in report["days"][0] if key != "day"}

    shown = [detail(host, conversation_id) for conversation_id in conversations]
    turns = [turn for conversation in shown for turn in conversation["turns"]]
    ended = [c for c in shown if c["ended_at"] is not None]
    minutes = sum(
        (datetime.fromisoformat(c["ended_at"]) - datetime.fromisoformat(c["created_at"])).total_seconds() / 60
        for c in ended
    )
    assert total["conversations"] == 4
    assert total["turns"] == len(turns) == 4 + 3
    assert total["tts_characters"] == sum(len(t["reply"]["text"]) for t in turns if t["tts_engine"]) > 0
    assert total["input_tokens"] == sum((t["llm"] or {}).get("input_tokens") or 0 for t in turns)
    assert total["output_tokens"] == sum((t["llm"] or {}).get("output_tokens") or 0 for t in turns)
    assert total["cost_usd"] == pytest.approx(sum((t["llm"] or {}).get("cost_usd") or 0 for t in turns))
    assert len(ended) == 1
    assert total["minutes"] == pytest.approx(minutes, abs=0.01)


def test_usage_without_calls_is_every_day_at_zero(host: DevHost) -> None:
    report = host.get("/api/usage", params={"from": "2001-01-01", "to": "2001-12-31"}).json()
    assert len(report["days"]) == 365
    assert {day["conversations"] + day["turns"] + day["minutes"] for day in report["days"]} == {0}
    assert (report["from"], report["to"]) == ("2001-01-01", "2001-12-31")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"from": "2026-01-01"},
        {"from": "2026-01-02", "to": "2026-01-01"},
        {"from": "2024-01-01", "to": "2025-01-01"},
        {"from": "2026-02-30", "to": "2026-03-01"},
        {"from": "2026-01-01", "to": "2026-01-02", "tz": "UTC"},
    ],
)
def test_a_bad_usage_range_is_a_400(host: DevHost, params: dict[str, str]) -> None:
    assert error_code(host.get("/api/usage", params=params), 400) == "invalid_query"


def test_usage_needs_usage_read(host: DevHost) -> None:
    reader = issued(host, "conversations:read")["key"]
    response = host.get("/api/usage", params={"from": "2026-01-01", "to": "2026-01-01"}, headers=as_key(reader))
    assert error_code(response, 403) == "forbidden"
