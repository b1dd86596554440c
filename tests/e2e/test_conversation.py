"""Whole conversations through a devhost subprocess: typed and spoken turns, the API's contract."""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
import pytest
import requests

from devhost.process import DevHost
from shared.speech.audio import decode_wav, encode_wav
from shared.speech.espeak import EspeakSynthesizer
from tests.e2e.conftest import StartDevHost
from tests.e2e.polling import wait_until

MAX_REQUEST_BYTES = 400_000


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    return start_devhost(TURNS_PER_GENERATION="3", MAX_REQUEST_BYTES=str(MAX_REQUEST_BYTES))


def start(host: DevHost, **body: Any) -> dict[str, Any]:
    response = host.post("/api/conversations", json=body or None)
    assert response.status_code == 201, response.text
    return dict(response.json())


def say(host: DevHost, conversation_id: str, text: str, **kwargs: Any) -> dict[str, Any]:
    response = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": text}, **kwargs)
    assert response.status_code == 200, f"{text!r}: {response.status_code} {response.text}\n{host.log_tail()}"
    return dict(response.json())


def conversation(host: DevHost, conversation_id: str) -> dict[str, Any]:
    response = host.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wav_duration(host: DevHost, url: str) -> float:
    response = requests.get(url, headers={"X-API-Key": host.api_key}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("audio/wav")
    return decode_wav(response.content).duration_seconds


def error_of(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_six_turn_typed_conversation(host: DevHost) -> None:
    started = start(host, agent="demo")
    conversation_id = started["conversation_id"]
    assert "Chai Point Cafe" in started["reply"]["text"]
    assert wav_duration(host, started["reply"]["audio_url"]) > 1.0

    script = [
        ("hello there", "greeting", "Hello"),
        ("what are your opening hours", "question", "8 am to 10 pm"),
        ("how much does delivery cost", "question", "40 rupees"),
        ("how are you today", "small_talk", "doing well"),
        ("do you have vegan options", "question", "oat milk chai"),
        ("goodbye", "goodbye", "Goodbye"),
    ]
    durations = []
    for number, (text, intent, needle) in enumerate(script, start=1):
        turn = say(host, conversation_id, text)
        assert turn["turn"] == number
        assert turn["transcript"] == text
        assert turn["intent"] == intent, turn
        assert needle in turn["reply"]["text"]
        assert set(turn["timings_ms"]) == {"stt", "agent", "tts", "first_audio", "overhead", "total"}
        assert 0 < turn["timings_ms"]["first_audio"] < turn["timings_ms"]["total"]
        assert turn["timings_ms"]["stt"] is None
        assert turn["timings_ms"]["agent"] > 0
        assert turn["timings_ms"]["tts"] > 0
        durations.append((len(turn["reply"]["text"]), wav_duration(host, turn["reply"]["audio_url"])))

    error_of(say_raw(host, conversation_id, {"text": "one more thing"}), 409, "conversation_completed")
    for characters, seconds in durations:
        assert 0.04 * characters < seconds < 0.2 * characters + 1, (characters, seconds)

    final = wait_until(lambda: conversation(host, conversation_id), lambda c: c["status"] == "completed")
    assert final["outcome"] == "completed"
    assert final["summary"].startswith("7 turns; intents: ")
    assert final["summary"].endswith("; last request: 'goodbye'")
    assert final["extraction"] == {"caller_name": None, "callback_time": None}
    assert final["aftercall_llm"]["provider"] == "offline"
    assert [t["turn"] for t in final["turns"]] == list(range(7))
    assert [t["text"] for t in final["turns"][1:]] == [text for text, _, _ in script]
    assert final["turns"][0]["kind"] == "greeting"

    instance = wait_until(
        lambda: host.get(f"/devhost/instances/{conversation_id}").json(), lambda i: i["runtimeStatus"] != "Running"
    )
    assert instance["runtimeStatus"] == "Completed"
    assert instance["generation"] >= 1, "continue-as-new ran (TURNS_PER_GENERATION=3)"
    assert instance["output"]["outcome"] == "completed"

    error_of(say_raw(host, conversation_id, {"text": "hello again"}), 409, "conversation_completed")


def say_raw(host: DevHost, conversation_id: str, body: Any, **kwargs: Any) -> requests.Response:
    return host.post(f"/api/conversations/{conversation_id}/turns", json=body, **kwargs)


def test_turn_rows_are_stored_once_each(host: DevHost) -> None:
    conversation_id = start(host)["conversation_id"]
    for text in ("hello", "where are you located", "can i book a table"):
        say(host, conversation_id, text)
    database_url = host.env["DATABASE_URL"]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT turn, kind, user_text, intent, reply_text, audio_blob, agent_ms, tts_ms FROM turns"
            " WHERE conversation_id = %s ORDER BY turn",
            (conversation_id,),
        ).fetchall()
    assert [row[0] for row in rows] == [0, 1, 2, 3]
    assert [row[1] for row in rows] == ["greeting", "utterance", "utterance", "utterance"]
    assert rows[2][3] == "question"
    assert all(row[5] and row[5].endswith(".wav") for row in rows)
    assert all(row[7] is not None for row in rows)


def unsigned(url: str) -> str:
    """An audio link without its signature, which differs when signed a second later."""
    return re.sub(r"token=[^&]*&?", "", url)


def test_a_retried_request_gets_the_same_turn_and_no_second_row(host: DevHost) -> None:
    conversation_id = start(host)["conversation_id"]
    key = {"Idempotency-Key": "provider-retry-1"}
    first = say(host, conversation_id, "what are your opening hours", headers=key)
    again = say(host, conversation_id, "what are your opening hours", headers=key)
    assert again["turn"] == first["turn"] == 1
    assert again["reply"]["text"] == first["reply"]["text"]
    assert unsigned(again["reply"]["audio_url"]) == unsigned(first["reply"]["audio_url"]), "the same turn's audio"
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert again["timings_ms"]["overhead"] is None
    greeting_key = say(host, conversation_id, "where are you located", headers={"Idempotency-Key": "greeting"})
    assert greeting_key["turn"] == 2, "a client key never collides with the system's own request ids"
    following = say(host, conversation_id, "thank you")
    assert following["turn"] == 3
    assert [t["turn"] for t in conversation(host, conversation_id)["turns"]] == [0, 1, 2, 3]


def test_spoken_turn_is_transcribed_and_answered(host: DevHost) -> None:
    conversation_id = start(host)["conversation_id"]
    speech = EspeakSynthesizer().synthesize("what are your opening hours", "en-US", "")
    response = host.post(
        f"/api/conversations/{conversation_id}/turns",
        data=encode_wav(speech),
        headers={"Content-Type": "audio/wav"},
    )
    assert response.status_code == 200, response.text
    turn = response.json()
    assert "opening hours" in turn["transcript"]
    assert turn["intent"] == "question"
    assert "8 am" in turn["reply"]["text"]
    assert turn["timings_ms"]["stt"] > 0


def test_ending_a_conversation_finalizes_it(host: DevHost) -> None:
    conversation_id = start(host, language="en-GB")["conversation_id"]
    say(host, conversation_id, "what is on the menu")
    response = host.post(f"/api/conversations/{conversation_id}/end")
    assert response.status_code == 202, response.text
    final = wait_until(lambda: conversation(host, conversation_id), lambda c: c["status"] == "completed")
    assert final["outcome"] == "ended_by_client"
    assert final["language"] == "en-GB"
    assert final["summary"] == "2 turns; intents: question x1; last request: 'what is on the menu'"
    error_of(host.post(f"/api/conversations/{conversation_id}/end"), 409, "conversation_completed")
    error_of(say_raw(host, conversation_id, {"text": "hello"}), 409, "conversation_completed")


def test_after_the_call_get_shows_its_summary_and_the_agents_extraction_fields(host: DevHost) -> None:
    conversation_id = start(host)["conversation_id"]
    say(host, conversation_id, "my name is Priya")
    callback = say(host, conversation_id, "please call me back tomorrow at 5 pm")
    assert callback["intent"] == "callback"
    assert "tomorrow at 5 pm" in callback["reply"]["text"]
    active = conversation(host, conversation_id)
    assert (active["summary"], active["extraction"], active["aftercall_llm"]) == (None, None, None)

    response = host.post(f"/api/conversations/{conversation_id}/end")
    assert response.status_code == 202, response.text
    final = wait_until(lambda: conversation(host, conversation_id), lambda c: c["status"] == "completed")

    assert final["extraction"] == {"caller_name": "Priya", "callback_time": "tomorrow at 5 pm"}
    assert final["summary"].startswith("3 turns; intents: ")
    assert "; noted: caller_name 'Priya', callback_time 'tomorrow at 5 pm'; " in final["summary"]
    assert final["summary"].endswith("last request: 'please call me back tomorrow at 5 pm'")
    usage = final["aftercall_llm"]
    assert (usage["provider"], usage["model"], usage["cost_usd"]) == ("offline", "offline-agent", 0.0)
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0


def test_each_sentence_of_a_reply_is_served_and_together_they_make_the_turns_audio(host: DevHost) -> None:
    conversation_id = start(host)["conversation_id"]
    turn = say(host, conversation_id, "how much does delivery cost")
    base = f"/api/conversations/{conversation_id}/audio/{turn['turn']}"

    sentences = []
    for index in range(10):
        response = host.get(f"{base}/{index}")
        if response.status_code == 404:
            break
        assert response.headers["Content-Type"].startswith("audio/wav")
        sentences.append(decode_wav(response.content).duration_seconds)
    whole = decode_wav(host.get(base).content).duration_seconds

    assert len(sentences) == len(turn["reply"]["text"].split(". ")) >= 2
    assert sum(sentences) == pytest.approx(whole, abs=0.01)
    for missing in (f"{base}/999", f"{base}/x", f"/api/conversations/{conversation_id}/audio/77/0"):
        response = host.get(missing)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "audio_not_found")


def test_every_answer_carries_the_security_headers_and_json_is_never_cached(host: DevHost) -> None:
    conversation_id = start(host)["conversation_id"]
    answers = {
        "json": host.get(f"/api/conversations/{conversation_id}"),
        "error": host.get(f"/api/conversations/{uuid.uuid4()}"),
        "audio": host.get(f"/api/conversations/{conversation_id}/audio/0"),
        "health": host.get("/api/health"),
    }

    for name, answer in answers.items():
        assert answer.headers["X-Content-Type-Options"] == "nosniff", name
        assert answer.headers["Referrer-Policy"] == "no-referrer", name
        assert answer.headers["Strict-Transport-Security"].startswith("max-age="), name
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"], name
    assert answers["error"].status_code == 404
    assert answers["json"].headers["Cache-Control"] == answers["error"].headers["Cache-Control"] == "no-store"
    assert answers["audio"].headers["Cache-Control"] == "private, max-age=3600"


def test_bad_input_gets_clear_errors(host: DevHost) -> None:
    conversation_id = start(host)["conversation_id"]
    turns = f"/api/conversations/{conversation_id}/turns"
    error_of(host.get(f"/api/conversations/{uuid.uuid4()}"), 404, "not_found")
    error_of(host.get("/api/conversations/not-a-uuid"), 404, "not_found")
    error_of(say_raw(host, str(uuid.uuid4()), {"text": "hi"}), 404, "not_found")
    error_of(host.post("/api/conversations", json={"agent": "nobody"}), 404, "unknown_agent")
    error_of(host.post("/api/conversations", json={"agent": 5}), 422, "invalid_request")
    error_of(say_raw(host, conversation_id, {"text": ""}), 422, "empty_text")
    error_of(say_raw(host, conversation_id, {"text": "  \n\t "}), 422, "empty_text")
    error_of(say_raw(host, conversation_id, {"words": "hi"}), 422, "invalid_request")
    error_of(say_raw(host, conversation_id, ["hi"]), 400, "malformed_json")
    error_of(
        host.post(turns, data=b'{"text": "hi"', headers={"Content-Type": "application/json"}), 400, "malformed_json"
    )
    error_of(host.post(turns, data=b"hi", headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")
    error_of(host.post(turns, data=b"hi"), 415, "unsupported_media_type")
    error_of(host.post(turns, data=b"RIFF\x00\x00garbage", headers={"Content-Type": "audio/wav"}), 422, "invalid_audio")
    too_big = b"RIFF" + bytes(MAX_REQUEST_BYTES)
    error_of(host.post(turns, data=too_big, headers={"Content-Type": "audio/wav"}), 413, "payload_too_large")
    error_of(host.get(f"/api/conversations/{conversation_id}/audio/99"), 404, "audio_not_found")
    error_of(host.get(f"/api/conversations/{conversation_id}/audio/²"), 404, "audio_not_found")
    long_key = {"Idempotency-Key": "k" * 201}
    error_of(say_raw(host, conversation_id, {"text": "hi"}, headers=long_key), 400, "invalid_idempotency_key")
    assert say(host, conversation_id, "hello")["turn"] == 1, "the conversation survived every bad request"


def test_health_reports_every_backing_service(host: DevHost) -> None:
    response = host.get("/api/health")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert set(checks) == {"postgres", "redis", "blob"}
    assert all(check["ok"] for check in checks.values())
