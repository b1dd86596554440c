"""A devhost whose speech engine is Sarvam (the fake): a Hindi agent's spoken turns are heard and
answered by Sarvam, and by the offline engines while Sarvam fails; the key never reaches the log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.process import DevHost
from shared.speech.audio import decode_wav, encode_wav
from shared.speech.espeak import EspeakSynthesizer
from shared.speech.sentences import sentences
from tests.e2e.conftest import StartDevHost
from tests.fakes.sarvam_server import SECONDS_PER_CHARACTER, FakeSarvamServer, ServerError

SECRET_KEY = "sk-sarvam-e2e-never-logged"
GREETING = "नमस्ते, मैं चाय पॉइंट कैफ़े से आशा बोल रही हूँ। मैं आपकी क्या मदद कर सकती हूँ?"
HINDI_AGENT = f"""
name = "hindi"
display_name = "आशा, चाय पॉइंट कैफ़े"
language = "hi-IN"
voice = ""
speaker = "priya"
greeting = "{GREETING}"
reprompt = "क्या आप अभी भी वहाँ हैं?"
not_understood = "माफ़ कीजिए, मैं समझ नहीं पाई।"

[intents.greeting]
phrases = ["नमस्ते", "hello"]
reply = "नमस्ते! आप मेनू, समय या डिलीवरी के बारे में पूछ सकते हैं।"

[[knowledge]]
title = "समय"
text = "हम सुबह आठ बजे से रात दस बजे तक खुले रहते हैं।"
"""


@pytest.fixture(scope="module")
def sarvam() -> Iterator[FakeSarvamServer]:
    with FakeSarvamServer(api_key=SECRET_KEY, transcript="नमस्ते") as server:
        yield server


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost, sarvam: FakeSarvamServer, tmp_path_factory: pytest.TempPathFactory) -> DevHost:
    agents: Path = tmp_path_factory.mktemp("agents")
    (agents / "hindi.toml").write_text(HINDI_AGENT, encoding="utf-8")
    return start_devhost(
        SARVAM_API_KEY=SECRET_KEY,
        SARVAM_BASE_URL=sarvam.url,
        SPEECH_TIMEOUT_SECONDS="5",
        AGENTS_DIR=str(agents),
        DEFAULT_AGENT="hindi",
    )


def spoken_turn(host: DevHost, conversation_id: str) -> dict[str, object]:
    speech = EspeakSynthesizer().synthesize("namaste", "hi-IN", "")
    response = host.post(
        f"/api/conversations/{conversation_id}/turns",
        data=encode_wav(speech),
        headers={"Content-Type": "audio/wav"},
        timeout=60,
    )
    assert response.status_code == 200, f"{response.text}\n{host.log_tail()}"
    body: dict[str, object] = response.json()
    return body


def test_a_hindi_agent_listens_and_speaks_through_sarvam(host: DevHost, sarvam: FakeSarvamServer) -> None:
    sarvam.reset()
    started = host.post("/api/conversations", json={"agent": "hindi"}, timeout=60)
    assert started.status_code == 201, f"{started.text}\n{host.log_tail()}"
    conversation_id = started.json()["conversation_id"]
    assert started.json()["reply"]["text"] == GREETING

    turn = spoken_turn(host, conversation_id)

    assert turn["transcript"] == "नमस्ते", "the transcript is the fake Sarvam's"
    stt = [r for r in sarvam.requests if r.path == "/speech-to-text"]
    tts = [r for r in sarvam.requests if r.path == "/text-to-speech"]
    assert [r.fields["language_code"] for r in stt] == ["hi-IN"]
    assert {r.fields["speaker"] for r in tts} == {"priya"}
    assert {r.fields["speech_sample_rate"] for r in tts} == {16000}
    shown = host.get(f"/api/conversations/{conversation_id}").json()
    greeting, answered = shown["turns"]
    assert (greeting["stt_engine"], greeting["tts_engine"]) == (None, "sarvam"), "nobody listened to the greeting"
    assert (answered["stt_engine"], answered["tts_engine"]) == ("sarvam", "sarvam")
    audio = host.get(f"/api/conversations/{conversation_id}/audio/1")
    assert audio.status_code == 200
    assert audio.headers["Content-Type"].startswith("audio/wav")
    wav = decode_wav(audio.content, max_seconds=120)
    assert wav.rate == 16000
    said = sentences(answered["reply"]["text"])
    # Sentences are spoken two at a time (shared/spoken_reply.py), so the requests may arrive in either
    # order; the reply's audio keeps the sentences' order (its duration below is their sum).
    assert sorted(str(r.fields["text"]) for r in tts[-len(said) :]) == sorted(said), "one request per sentence"
    assert wav.duration_seconds == pytest.approx(sum(map(len, said)) * SECONDS_PER_CHARACTER, abs=0.05)
    assert SECRET_KEY not in host.log_tail(lines=1_000_000)


def test_while_sarvam_fails_the_turn_is_heard_and_spoken_offline(host: DevHost, sarvam: FakeSarvamServer) -> None:
    sarvam.reset()
    sarvam.always = ServerError()
    try:
        started = host.post("/api/conversations", json={"agent": "hindi"}, timeout=60)
        assert started.status_code == 201, f"{started.text}\n{host.log_tail()}"
        conversation_id = started.json()["conversation_id"]
        spoken_turn(host, conversation_id)
    finally:
        sarvam.always = None

    assert sarvam.requests, "Sarvam was asked first"
    shown = host.get(f"/api/conversations/{conversation_id}").json()
    greeting, answered = shown["turns"]
    assert greeting["tts_engine"] == "espeak"
    assert (answered["stt_engine"], answered["tts_engine"]) == ("pocketsphinx", "espeak")
    audio = host.get(f"/api/conversations/{conversation_id}/audio/1")
    assert audio.status_code == 200
    assert decode_wav(audio.content, max_seconds=120).duration_seconds > 0.5
    log = host.log_tail(lines=1_000_000)
    assert "unavailable" in log, "the fallback is logged"
    assert SECRET_KEY not in log
