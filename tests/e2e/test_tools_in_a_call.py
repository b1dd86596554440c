"""Every tool path end to end: a devhost, the offline model calling tools by rule, real Postgres and HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devhost.process import DevHost
from shared.config import REPOSITORY_ROOT
from tests.e2e.conftest import StartDevHost
from tests.e2e.polling import wait_until
from tests.fakes.tool_endpoint import ToolEndpoint

ORDER_TOOL = """
[[tools]]
name = "order_status"
description = "Look up where an order is."
url = "{url}/status"
offline_pattern = "order (?P<order_id>[0-9]+)"
offline_reply = "Your order is {{status}}."
[tools.parameters]
type = "object"
required = ["order_id"]
properties = {{ order_id = {{ type = "string", pattern = "^[0-9]+$" }} }}
"""


@pytest.fixture(scope="module")
def endpoint() -> Iterator[ToolEndpoint]:
    with ToolEndpoint() as server:
        yield server


@pytest.fixture(scope="module")
def agents_dir(tmp_path_factory: pytest.TempPathFactory, endpoint: ToolEndpoint) -> Path:
    folder = tmp_path_factory.mktemp("agents")
    demo = (REPOSITORY_ROOT / "agents" / "demo.toml").read_text(encoding="utf-8")
    (folder / "demo.toml").write_text(demo + ORDER_TOOL.format(url=endpoint.url), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost, agents_dir: Path) -> DevHost:
    return start_devhost(
        AGENTS_DIR=str(agents_dir), HTTP_TOOL_ALLOWED_HOSTS="127.0.0.1", HTTP_TOOL_ALLOW_PRIVATE_NETWORKS="true"
    )


def begin(host: DevHost) -> str:
    started = host.post("/api/conversations", json={"agent": "demo"}, timeout=60)
    assert started.status_code == 201, started.text
    return str(started.json()["conversation_id"])


def say(host: DevHost, conversation_id: str, text: str) -> dict[str, Any]:
    turn = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": text}, timeout=60)
    assert turn.status_code == 200, f"{turn.text}\n{host.log_tail()}"
    return dict(turn.json())


def shown(host: DevHost, conversation_id: str) -> dict[str, Any]:
    return dict(host.get(f"/api/conversations/{conversation_id}").json())


def test_an_http_tool_a_callback_and_a_transfer_in_one_call(host: DevHost, endpoint: ToolEndpoint) -> None:
    conversation_id = begin(host)

    order = say(host, conversation_id, "where is my order 4711")
    callback = say(host, conversation_id, "please call me back tomorrow at 5 pm")
    retry = host.post(
        f"/api/conversations/{conversation_id}/turns",
        json={"text": "transfer me to a real person"},
        headers={"Idempotency-Key": "transfer-1"},
        timeout=60,
    )
    transfer = host.post(
        f"/api/conversations/{conversation_id}/turns",
        json={"text": "transfer me to a real person"},
        headers={"Idempotency-Key": "transfer-1"},
        timeout=60,
    )

    assert order["reply"]["text"] == "Your order is on its way."
    [sent] = [r for r in endpoint.requests if r.body and b"4711" in r.body]
    assert sent.headers["Idempotency-Key"] == f"{conversation_id}:1:0"
    assert callback["intent"] == "callback"
    assert callback["reply"]["text"] == "Sure, someone from the cafe will call you back tomorrow at 5 pm."
    assert retry.status_code == transfer.status_code == 200
    assert transfer.json()["replayed"] is True
    assert (transfer.json()["action"], transfer.json()["transfer_to"]) == ("transfer", "+918045550100")

    final = wait_until(lambda: shown(host, conversation_id), lambda c: c["status"] == "completed")
    assert final["outcome"] == "transferred"
    calls = {t["turn"]: t["tool_calls"] for t in final["turns"]}
    assert [(c["name"], c["arguments"], c["error"]) for c in calls[1]] == [
        ("order_status", {"order_id": "4711"}, False)
    ]
    assert [c["name"] for c in calls[2]] == ["schedule_callback"]
    assert [c["name"] for c in calls[3]] == ["transfer_to_human"]
    assert len(final["turns"]) == 4, "the retried transfer made no second turn"
    with psycopg.connect(host.env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT turn, phone_number, requested_time FROM callbacks WHERE conversation_id = %s", (conversation_id,)
        ).fetchall()
    assert rows == [(2, "caller", "tomorrow at 5 pm")]


def test_goodbye_ends_the_call_through_end_call(host: DevHost) -> None:
    conversation_id = begin(host)

    goodbye = say(host, conversation_id, "goodbye")
    after = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": "wait"}, timeout=60)

    assert goodbye["action"] == "end_call"
    assert (after.status_code, after.json()["error"]["code"]) == (409, "conversation_completed"), after.text
    final = wait_until(lambda: shown(host, conversation_id), lambda c: c["status"] == "completed")
    assert final["outcome"] == "completed"
    assert [c["name"] for c in final["turns"][1]["tool_calls"]] == ["end_call"]


def test_with_production_egress_the_tool_cannot_reach_a_loopback_endpoint(
    start_devhost: StartDevHost, agents_dir: Path, endpoint: ToolEndpoint
) -> None:
    production = start_devhost(AGENTS_DIR=str(agents_dir), HTTP_TOOL_ALLOWED_HOSTS="127.0.0.1")
    before = len(endpoint.requests)
    conversation_id = begin(production)

    order = say(production, conversation_id, "where is my order 99")

    assert order["reply"]["text"] == "Sorry, I could not do that right now."
    assert len(endpoint.requests) == before, "no request left the host"
    [call] = shown(production, conversation_id)["turns"][1]["tool_calls"]
    assert call["error"] is True
    assert "may not reach: 127.0.0.1" in call["result"]
