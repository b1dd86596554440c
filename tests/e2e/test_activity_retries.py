"""Activity faults and terminations against a running devhost: retries absorb the transient ones."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import requests

from devhost.management import PREFIX
from devhost.process import DevHost
from shared.speech.audio import encode_wav
from shared.speech.espeak import EspeakSynthesizer
from tests.e2e.conftest import StartDevHost
from tests.e2e.polling import wait_until
from tests.e2e.test_resilience import say, speak, start, turns
from tests.fakes.openai_server import Answer, FakeOpenAIServer, Unauthorized

TASK_FAILED = 6
TASK_SCHEDULED = 4


def instance(host: DevHost, conversation_id: str) -> dict[str, Any]:
    response = host.get(f"/devhost/instances/{conversation_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def attempts(host: DevHost, conversation_id: str, activity: str) -> tuple[int, int]:
    """(attempts scheduled, attempts failed) of an activity in the instance's current generation."""
    events = instance(host, conversation_id)["history"]
    scheduled = [e["EventId"] for e in events if e["EventType"] == TASK_SCHEDULED and e["Name"] == activity]
    failed = [e for e in events if e["EventType"] == TASK_FAILED and e["TaskScheduledId"] in scheduled]
    return len(scheduled), len(failed)


def test_finding_10_a_transient_activity_failure_costs_one_retry_and_no_turn(start_devhost: StartDevHost) -> None:
    host = start_devhost(DEVHOST_FAILING_ACTIVITIES="answer_turn:1")
    conversation_id = start(host)
    assert say(host, conversation_id, "hello")["turn"] == 1
    assert say(host, conversation_id, "where are you located")["turn"] == 2
    assert [t["turn"] for t in turns(host, conversation_id)] == [0, 1, 2], "every turn once"
    assert attempts(host, conversation_id, "answer_turn") == (6, 3), "each of the 3 calls failed once, then passed"
    assert instance(host, conversation_id)["runtimeStatus"] == "Running"


def test_finding_10_a_transient_finalize_failure_still_closes_the_call_once(start_devhost: StartDevHost) -> None:
    host = start_devhost(DEVHOST_FAILING_ACTIVITIES="finalize:1")
    conversation_id = start(host)
    assert say(host, conversation_id, "goodbye")["action"] == "end_call"
    final = wait_until(
        lambda: host.get(f"/api/conversations/{conversation_id}").json(), lambda c: c["status"] == "completed"
    )
    assert final["outcome"] == "completed"
    wait_until(lambda: instance(host, conversation_id), lambda i: i["runtimeStatus"] == "Completed")
    assert attempts(host, conversation_id, "finalize") == (2, 1)


def test_finding_10_a_permanent_failure_still_ends_the_call_failed_with_every_turn(
    start_devhost: StartDevHost,
) -> None:
    with FakeOpenAIServer() as model:
        model.script(Answer('{"intent": "greeting", "text": "Hello there."}'), *[Unauthorized()] * 3)
        host = start_devhost(OPENAI_BASE_URL=f"{model.url}/v1", LLM_MAX_RETRIES="0", TURN_REPLY_TIMEOUT_SECONDS="5")
        conversation_id = start(host)
        assert say(host, conversation_id, "hello")["turn"] == 1
        question = encode_wav(EspeakSynthesizer().synthesize("how much does delivery cost", "en-US", ""))
        assert speak(host, conversation_id, question, "doomed-1").status_code != 200
        final = wait_until(
            lambda: host.get(f"/api/conversations/{conversation_id}").json(),
            lambda c: c["status"] == "completed",
            timeout=60,
        )
    assert final["outcome"] == "failed"
    assert [t["turn"] for t in final["turns"]] == [0, 1], "the greeting and the answered turn are kept"
    assert attempts(host, conversation_id, "answer_turn") == (5, 3), "greeting and hello once, the doomed turn 3 times"
    error = instance(host, conversation_id)["customStatus"]["error"]
    assert error.startswith("Activity function 'answer_turn' failed:  ")
    assert "Error code: 401" in error


def test_finding_8_terminate_at_random_moments_of_a_conversation_never_answers_5xx(
    start_devhost: StartDevHost,
) -> None:
    host = start_devhost(TURN_REPLY_TIMEOUT_SECONDS="3")
    moments = random.Random(13)
    turn_statuses: list[int] = []

    def talk(conversation_id: str) -> None:
        for text in ("hello", "where are you located", "what is on the menu"):
            try:
                reply = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": text}, timeout=30)
            except requests.RequestException:
                return
            turn_statuses.append(reply.status_code)
            if reply.status_code != 200:
                return

    for _ in range(8):
        conversation_id = start(host)
        talker = threading.Thread(target=talk, args=(conversation_id,))
        talker.start()
        time.sleep(moments.uniform(0, 1.5))
        terminate = f"{PREFIX}/instances/{conversation_id}/terminate?reason=test"
        assert host.post(terminate).status_code == 202, host.log_tail()
        assert host.post(terminate).status_code == 410
        talker.join(timeout=60)
        assert instance(host, conversation_id)["runtimeStatus"] == "Terminated"
    assert host.post(f"{PREFIX}/instances/nobody/terminate").status_code == 404
    assert requests.delete(host.url(f"{PREFIX}/instances/nobody"), timeout=10).status_code == 404
    assert 500 not in turn_statuses, host.log_tail()
    assert host.get("/api/health").status_code == 200
