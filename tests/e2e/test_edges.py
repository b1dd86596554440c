"""The edges of a conversation (issue 13, findings 7, 8, 9 and 12): nothing is lost, nothing stalls.

Each test plays what a client, a crashed worker or an operator does at a boundary: a turn that
outlives its lock at continue-as-new, an instance terminated from outside, a slow greeting, an
Idempotency-Key re-used after its hand-off copy expired, a lock left by a worker that died.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests

from devhost.process import DevHost
from shared.speech.audio import encode_wav
from shared.speech.espeak import EspeakSynthesizer
from shared.storage.handoff import TurnKeys
from tests.e2e.conftest import StartDevHost
from tests.e2e.instances import running_activities
from tests.e2e.polling import wait_until

DURABLE = "/runtime/webhooks/durabletask"


def start(host: DevHost, **headers: str) -> requests.Response:
    return host.post("/api/conversations", json={}, headers=headers)


def started(host: DevHost) -> str:
    response = start(host)
    assert response.status_code == 201, f"{response.text}\n{host.log_tail()}"
    return str(response.json()["conversation_id"])


def say(host: DevHost, conversation_id: str, text: str, key: str | None = None) -> requests.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return host.post(f"/api/conversations/{conversation_id}/turns", json={"text": text}, headers=headers)


def conversation(host: DevHost, conversation_id: str) -> dict[str, Any]:
    response = host.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def keys(host: DevHost, conversation_id: str) -> TurnKeys:
    return TurnKeys(host.env["REDIS_KEY_PREFIX"], conversation_id)


def cache(host: DevHost) -> redis.Redis:
    return redis.Redis.from_url(host.env["REDIS_URL"])


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    return start_devhost(
        TURNS_PER_GENERATION="2",
        DEVHOST_SLOW_ACTIVITIES="summarize=2,answer_turn?audio_blob=5",
        TURN_REPLY_TIMEOUT_SECONDS="60",
    )


def test_finding_7_an_utterance_raised_into_an_ending_generation_is_answered_in_the_next(host: DevHost) -> None:
    """A request whose lock outlived the turn raises its utterance while the generation continues as new.

    The event reaches the open waiter of the ending generation (during the slow `summarize`); the
    Durable runtime drops events an execution never looked at, so the orchestrator carries it over.
    """
    conversation_id = started(host)
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(say, host, conversation_id, "hello")
        wait_until(lambda: running_activities(host, conversation_id), lambda names: "summarize" in names)
        status = host.get(f"{DURABLE}/instances/{conversation_id}").json()
        expecting = status["customStatus"]["expecting"]
        utterance = {"request_id": "key:late-lock", "text": "where are you located", "audio_blob": None}
        raised = host.post(f"{DURABLE}/instances/{conversation_id}/raiseEvent/{expecting}", json=json.dumps(utterance))
        assert raised.status_code == 202, raised.text
        assert first.result().status_code == 200, first.result().text
    turns = wait_until(lambda: conversation(host, conversation_id)["turns"], lambda t: len(t) == 3)
    assert turns[2]["text"] == "where are you located"
    assert turns[2]["intent"] == "question"
    late = say(host, conversation_id, "where are you located", key="late-lock")
    assert late.status_code == 200, late.text
    assert (late.json()["turn"], late.json()["replayed"]) == (2, True)
    following = wait_until(lambda: say(host, conversation_id, "thank you"), lambda r: r.status_code == 200)
    assert following.json()["turn"] == 3


def test_finding_8_a_terminated_instance_is_closed_and_every_route_agrees(host: DevHost) -> None:
    conversation_id = started(host)
    terminated = host.post(f"{DURABLE}/instances/{conversation_id}/terminate?reason=operator")
    assert terminated.status_code == 202, terminated.text
    closed = conversation(host, conversation_id)
    assert (closed["status"], closed["outcome"]) == ("completed", "terminated")
    turn = say(host, conversation_id, "hello")
    assert (turn.status_code, turn.json()["error"]["code"]) == (409, "conversation_completed")
    ended = host.post(f"/api/conversations/{conversation_id}/end")
    assert (ended.status_code, ended.json()["error"]["code"]) == (409, "conversation_completed")


def test_finding_8_terminated_under_a_waiting_turn_the_turn_learns_at_once(host: DevHost) -> None:
    """The turn waits on a 60 s deadline; it hears of the terminate within seconds (409), not a 504."""
    conversation_id = started(host)
    question = encode_wav(EspeakSynthesizer().synthesize("how much does delivery cost", "en-US", ""))
    with ThreadPoolExecutor(max_workers=1) as pool:
        turn = pool.submit(
            host.post,
            f"/api/conversations/{conversation_id}/turns",
            data=question,
            headers={"Content-Type": "audio/wav"},
        )
        wait_until(lambda: running_activities(host, conversation_id), lambda names: "answer_turn (spoken)" in names)
        assert host.post(f"{DURABLE}/instances/{conversation_id}/terminate?reason=x").status_code == 202
        answer = turn.result()
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "conversation_completed"), answer.text
    assert conversation(host, conversation_id)["outcome"] == "terminated"


def test_finding_8_a_turn_to_a_terminated_instance_closes_the_conversation(host: DevHost) -> None:
    conversation_id = started(host)
    assert host.post(f"{DURABLE}/instances/{conversation_id}/terminate?reason=x").status_code == 202
    turn = say(host, conversation_id, "hello")
    assert (turn.status_code, turn.json()["error"]["code"]) == (409, "conversation_completed")
    assert conversation(host, conversation_id)["outcome"] == "terminated"


def test_finding_12_a_key_reused_after_its_reply_expired_gets_the_same_turn(host: DevHost) -> None:
    conversation_id = started(host)
    first = say(host, conversation_id, "hello", key="old-key")
    assert first.status_code == 200, first.text
    cache(host).delete(keys(host, conversation_id).reply("key:old-key"))  # as after REPLY_TTL_SECONDS
    again = say(host, conversation_id, "hello", key="old-key")
    assert again.status_code == 200, again.text
    assert (again.json()["turn"], again.json()["replayed"]) == (1, True)
    assert say(host, conversation_id, "what is on the menu").json()["turn"] == 2, "no turn number is skipped"


def test_finding_12_replays_after_the_hand_off_copy_expired_still_answer(host: DevHost) -> None:
    """A start or a turn retried after its Redis copy expired (1 h) gets its stored answer, ended or not."""
    first = start(host, **{"Idempotency-Key": "start-old"})
    assert first.status_code == 201, first.text
    conversation_id = first.json()["conversation_id"]
    assert say(host, conversation_id, "hello", key="turn-old").status_code == 200
    assert host.post(f"/api/conversations/{conversation_id}/end").status_code == 202
    wait_until(lambda: conversation(host, conversation_id)["status"], lambda status: status == "completed")
    for request_id in ("greeting", "key:turn-old"):
        cache(host).delete(keys(host, conversation_id).reply(request_id))
    again = start(host, **{"Idempotency-Key": "start-old"})
    assert again.status_code == 201, again.text
    assert (again.json()["conversation_id"], again.json()["replayed"]) == (conversation_id, True)
    turn = say(host, conversation_id, "hello", key="turn-old")
    assert turn.status_code == 200, turn.text
    assert (turn.json()["turn"], turn.json()["replayed"]) == (1, True)


def test_text_that_spells_a_nul_escape_is_an_ordinary_turn(host: DevHost) -> None:
    """A backslash followed by `u0000` is text, not a NUL: the devhost's store check must not refuse it."""
    conversation_id = started(host)
    turn = say(host, conversation_id, "my path is C:\\u0000x")
    assert turn.status_code == 200, turn.text
    assert turn.json()["transcript"] == "my path is C:\\u0000x"


def test_a_retry_whose_original_died_before_raising_its_utterance_raises_it_itself(host: DevHost) -> None:
    conversation_id = started(host)
    cache(host).set(keys(host, conversation_id).lock, "key:orphan", ex=600)  # the worker died right here
    retried = say(host, conversation_id, "hello", key="orphan")
    assert retried.status_code == 200, retried.text
    assert retried.json()["turn"] == 1
    assert say(host, conversation_id, "thank you").status_code == 200, "the lock was released with the turn"


@pytest.fixture(scope="module")
def slow_greeting_host(start_devhost: StartDevHost) -> DevHost:
    return start_devhost(DEVHOST_SLOW_ACTIVITIES="answer_turn=2", TURN_REPLY_TIMEOUT_SECONDS="1")


def test_finding_9_a_slow_greeting_answers_504_with_the_conversation_and_takes_turns(
    slow_greeting_host: DevHost,
) -> None:
    host = slow_greeting_host
    response = start(host, **{"Idempotency-Key": "start-1"})
    assert response.status_code == 504, response.text
    conversation_id = response.json()["conversation_id"]
    assert response.headers["Location"] == f"/api/conversations/{conversation_id}"
    assert conversation(host, conversation_id)["status"] == "active"
    during = say(host, conversation_id, "hello", key="during-greeting")
    assert during.status_code in (200, 504), f"accepted while the greeting is spoken: {during.text}"
    answered = wait_until(
        lambda: say(host, conversation_id, "hello", key="during-greeting"), lambda r: r.status_code == 200
    )
    assert answered.json()["turn"] == 1
    retried = wait_until(lambda: start(host, **{"Idempotency-Key": "start-1"}), lambda r: r.status_code == 201)
    assert retried.json()["conversation_id"] == conversation_id, "a retried start makes no second conversation"
    assert retried.json()["replayed"] is True
