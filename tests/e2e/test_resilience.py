"""Crashes, deadlines and silence: the conversation survives and every turn is stored exactly once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from devhost.process import DevHost
from shared.speech.audio import encode_wav
from shared.speech.espeak import EspeakSynthesizer
from tests.e2e.conftest import StartDevHost
from tests.e2e.instances import running_activities
from tests.e2e.polling import wait_until

SLOW_TRANSCRIBE_SECONDS = 6.0
REPLY_TIMEOUT_SECONDS = 3.0
"""Typed turns answer well within it even on a loaded machine; spoken ones (slowed) never do."""


@pytest.fixture(scope="module")
def slow_host(start_devhost: StartDevHost) -> DevHost:
    """Spoken turns take longer than the reply deadline (typed turns stay fast)."""
    return start_devhost(
        DEVHOST_SLOW_ACTIVITIES=f"answer_turn?audio_blob={SLOW_TRANSCRIBE_SECONDS}",
        TURN_REPLY_TIMEOUT_SECONDS=str(REPLY_TIMEOUT_SECONDS),
        TURNS_PER_GENERATION="4",
    )


@pytest.fixture(scope="module")
def spoken_question() -> bytes:
    return encode_wav(EspeakSynthesizer().synthesize("how much does delivery cost", "en-US", ""))


def start(host: DevHost) -> str:
    response = host.post("/api/conversations", json={})
    assert response.status_code == 201, f"{response.text}\n{host.log_tail()}"
    return str(response.json()["conversation_id"])


def say(host: DevHost, conversation_id: str, text: str) -> dict[str, Any]:
    response = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": text})
    assert response.status_code == 200, f"{response.text}\n{host.log_tail()}"
    return dict(response.json())


def turns(host: DevHost, conversation_id: str) -> list[dict[str, Any]]:
    response = host.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["turns"])


def speak(host: DevHost, conversation_id: str, wav: bytes, key: str) -> requests.Response:
    return host.post(
        f"/api/conversations/{conversation_id}/turns",
        data=wav,
        headers={"Content-Type": "audio/wav", "Idempotency-Key": key},
    )


def test_past_the_deadline_the_turn_answers_504_and_still_completes(slow_host: DevHost, spoken_question: bytes) -> None:
    conversation_id = start(slow_host)
    response = speak(slow_host, conversation_id, spoken_question, "late-1")
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "turn_timeout"
    stored = wait_until(lambda: turns(slow_host, conversation_id), lambda t: len(t) == 2)
    assert stored[1]["intent"] == "question"
    assert "40 rupees" in stored[1]["reply"]["text"]
    retried = wait_until(
        lambda: speak(slow_host, conversation_id, spoken_question, "late-1"), lambda r: r.status_code == 200
    )
    assert retried.json()["turn"] == 1, "the retry gets the finished turn, not a new one"
    assert say(slow_host, conversation_id, "thank you")["turn"] == 2, "the conversation is still healthy"


def test_killed_between_turns_the_conversation_continues(slow_host: DevHost) -> None:
    conversation_id = start(slow_host)
    say(slow_host, conversation_id, "hello")
    say(slow_host, conversation_id, "where are you located")
    slow_host.kill()
    slow_host.start()
    assert say(slow_host, conversation_id, "what is on the menu")["turn"] == 3
    assert say(slow_host, conversation_id, "how are you")["turn"] == 4
    assert say(slow_host, conversation_id, "can i book a table")["turn"] == 5, "continue-as-new after a restart"
    assert [t["turn"] for t in turns(slow_host, conversation_id)] == [0, 1, 2, 3, 4, 5]


def test_killed_while_a_turn_is_in_flight_the_turn_completes_once(slow_host: DevHost, spoken_question: bytes) -> None:
    conversation_id = start(slow_host)
    say(slow_host, conversation_id, "hello")
    outcome: list[BaseException | requests.Response] = []

    def send() -> None:
        try:
            outcome.append(speak(slow_host, conversation_id, spoken_question, "in-flight-1"))
        except requests.RequestException as error:
            outcome.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: running_activities(slow_host, conversation_id), lambda names: "answer_turn (spoken)" in names)
    slow_host.kill()
    sender.join(timeout=30)
    assert len(outcome) == 1
    assert isinstance(outcome[0], requests.RequestException), "the crash cut the request off mid-turn"
    slow_host.start()
    stored = wait_until(lambda: turns(slow_host, conversation_id), lambda t: len(t) == 3, timeout=60)
    assert stored[2]["intent"] == "question"
    retried = wait_until(
        lambda: speak(slow_host, conversation_id, spoken_question, "in-flight-1"), lambda r: r.status_code == 200
    )
    assert retried.json()["turn"] == 2
    assert say(slow_host, conversation_id, "goodbye")["turn"] == 3
    assert [t["turn"] for t in turns(slow_host, conversation_id)] == [0, 1, 2, 3]


def test_a_silent_caller_is_reprompted_then_hung_up_on(start_devhost: StartDevHost) -> None:
    host = start_devhost(SILENCE_TIMEOUT_SECONDS="1", MAX_SILENCES="1")
    conversation_id = start(host)
    final = wait_until(
        lambda: host.get(f"/api/conversations/{conversation_id}").json(),
        lambda c: c["status"] == "completed",
        timeout=30,
    )
    assert final["outcome"] == "no_response"
    assert [t["kind"] for t in final["turns"]] == ["greeting", "reprompt"]
    assert "Are you still there" in final["turns"][1]["reply"]["text"]


def test_a_failing_activity_ends_the_conversation_as_failed_and_keeps_its_turns(
    start_devhost: StartDevHost, spoken_question: bytes
) -> None:
    """The waiting request learns of the failure at once (502), not after its 120 s deadline (504)."""
    host = start_devhost(DEVHOST_FAILING_ACTIVITIES="answer_turn?audio_blob", TURN_REPLY_TIMEOUT_SECONDS="120")
    conversation_id = start(host)
    assert say(host, conversation_id, "hello")["turn"] == 1
    doomed = speak(host, conversation_id, spoken_question, "doomed-1")
    assert doomed.status_code == 502, doomed.text
    assert doomed.json()["error"]["code"] == "turn_failed"
    final = wait_until(
        lambda: host.get(f"/api/conversations/{conversation_id}").json(), lambda c: c["status"] == "completed"
    )
    assert final["outcome"] == "failed"
    instance = host.get(f"/devhost/instances/{conversation_id}").json()
    assert "failed on purpose" in instance["customStatus"]["error"], "the failure stays visible in the status"
    assert [t["turn"] for t in final["turns"]] == [0, 1]
    response = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": "hello?"})
    assert response.status_code == 409, response.text
