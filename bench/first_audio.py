"""Time to the caller's first audio: replies streamed sentence by sentence vs the whole reply first.

Providers are the test fakes on loopback at a realistic profile: the chat model (OpenAI-compatible)
answers its first token after 300 ms, then 30 tokens a second; Sarvam speaks a sentence in 200 ms
and hears an utterance in 150 ms. Each reply has three sentences; the second reply opens with a
clause. For each reply two devhosts run the same stack, one streaming the model's answer (the
default) and one with LLM_STREAMING=false (the model's whole answer first, then speech), and the
same spoken and typed turns go to both. Figures only: nothing
here passes or fails.

    make bench
    python bench/first_audio.py --turns 12
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import record
from devhost.process import DevHost
from shared.speech.audio import encode_wav
from shared.speech.espeak import EspeakSynthesizer
from shared.speech.sentences import SENTENCE_END, opening_clause_end
from shared.spoken_reply import OPENING_CLAUSE_MIN_WORDS
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.sarvam_server import FakeSarvamServer

FIRST_TOKEN_SECONDS = 0.3
TOKENS_PER_SECOND = 30.0
TTS_SECONDS_PER_SENTENCE = 0.2
STT_SECONDS = 0.15
SENTENCE_FIRST = json.dumps(
    {
        "text": "We are open from 8 am to 10 pm on weekdays. On Sundays we open at 9 am and close at 6 pm. "
        "We are closed on public holidays.",
        "intent": "question",
        "cites": [],
    }
)
CLAUSE_FIRST = json.dumps(
    {
        "text": "Yes, we are open every day, from 8 am to 10 pm on weekdays. On Sundays we open at 9 am and "
        "close at 6 pm. We are closed on public holidays.",
        "intent": "question",
        "cites": [],
    }
)
"""Replies in the order the prompt asks for: the text first, so the caller hears it while the rest is
written. The first opens with a whole sentence, the second with a clause that can be spoken before its
sentence is complete (`shared/spoken_reply.py`)."""
TASK_SCHEDULED, EVENT_RAISED = 4, 15


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def provider_seconds_to_first_audio(reply: str, spoken: bool) -> float:
    """What the simulated providers alone take before the reply's first clip can play."""
    text = json.loads(reply)["text"]
    sentence_end = SENTENCE_END.search(text + " ")
    assert sentence_end is not None
    first_clip_end = min(sentence_end.start(1) + 1, opening_clause_end(text, OPENING_CLAUSE_MIN_WORDS) or len(text))
    tokens = len(re.findall(r"\s*\S+", reply[: reply.index(text) + first_clip_end])) + 1  # the space completing it
    return (
        (STT_SECONDS if spoken else 0.0) + FIRST_TOKEN_SECONDS + tokens / TOKENS_PER_SECOND + TTS_SECONDS_PER_SENTENCE
    )


def dispatches_before_reply(host: DevHost, conversation_id: str) -> list[int]:
    """Per utterance: activities the orchestrator scheduled between the event and the turn's hand-over."""
    history = host.get(f"/devhost/instances/{conversation_id}").json()["history"]
    counts: list[int] = []
    for event in history:
        if event["EventType"] == EVENT_RAISED and str(event.get("Name", "")).startswith("utterance-"):
            counts.append(0)
        elif event["EventType"] == TASK_SCHEDULED and counts and event["Name"] == "answer_turn":
            counts[-1] += 1
    return counts


def run(
    streaming: bool, turns: int, reply: str, *, model: FakeOpenAIServer, sarvam: FakeSarvamServer, folder: Path
) -> dict[str, Any]:
    env = {
        "OPENAI_BASE_URL": f"{model.url}/v1",
        "OPENAI_MODEL": "bench-model",
        "LLM_MAX_RETRIES": "0",
        "LLM_STREAMING": "true" if streaming else "false",
        "SARVAM_API_KEY": sarvam.api_key,
        "SARVAM_BASE_URL": sarvam.url,
        "TURNS_PER_GENERATION": "50",
        "TURN_REPLY_TIMEOUT_SECONDS": "30",
    }
    host = DevHost(env, folder / f"devhost-{'streamed' if streaming else 'whole'}.log")
    host.start()
    wav = encode_wav(EspeakSynthesizer().synthesize("what are your opening hours", "en-US", ""))
    first_audio: list[float] = []
    all_audio: list[float] = []
    overhead: list[float] = []
    try:
        conversation_id = host.post("/api/conversations", json={}, timeout=60).json()["conversation_id"]
        cold = None
        for number in range(turns + 1):
            spoken = number % 2 == 1
            request: dict[str, Any] = (
                {"data": wav, "headers": {"Content-Type": "audio/wav"}} if spoken else {"json": {"text": "hours?"}}
            )
            response = host.post(f"/api/conversations/{conversation_id}/turns", timeout=60, **request)
            response.raise_for_status()
            timings = response.json()["timings_ms"]
            if number == 0:
                cold = timings["first_audio"]  # the worker's first model call loads the SDKs
                continue
            first_audio.append(timings["first_audio"])
            all_audio.append(timings["total"])
            overhead.append(timings["first_audio"] - provider_seconds_to_first_audio(reply, spoken) * 1000)
        dispatches = dispatches_before_reply(host, conversation_id)
    finally:
        host.stop()
    return {
        "first_audio": first_audio,
        "all_audio": all_audio,
        "overhead": overhead,
        "dispatches": dispatches,
        "cold": cold,
    }


def report(title: str, turns: int, streamed: dict[str, Any], whole: dict[str, Any], label: str) -> None:
    print(f"{title}: time from the utterance to audio over {turns} turns each (half spoken), three-sentence replies:")
    rows = (
        ("streamed: first clip", streamed["first_audio"]),
        ("whole answer, then each sentence", whole["first_audio"]),
        ("whole answer and all its audio", whole["all_audio"]),
    )
    for name, values in rows:
        print(f"  {name:<34} p50 {percentile(values, 0.5):7.0f} ms   p95 {percentile(values, 0.95):7.0f} ms")
    streamed_p50 = statistics.median(streamed["first_audio"])
    for name, values in rows[1:]:
        print(f"  ratio to streamed, {name:<34} {statistics.median(values) / streamed_p50:.2f}x (medians)")
    over = streamed["overhead"]
    print(
        f"  our overhead, streamed (first audio - provider time): p50 {percentile(over, 0.5):.0f} ms   "
        f"p95 {percentile(over, 0.95):.0f} ms"
    )
    print(
        f"  first turn of a fresh worker (SDKs load): {streamed['cold']:.0f} ms streamed, {whole['cold']:.0f} ms whole"
    )
    print(f"  Durable dispatches between an utterance and its first audio: {sorted(set(streamed['dispatches']))}")
    record(f"{label}: streamed first audio p50", percentile(streamed["first_audio"], 0.5), "ms")
    record(f"{label}: whole reply first audio p50", percentile(whole["first_audio"], 0.5), "ms")
    record(f"{label}: whole / streamed first audio", statistics.median(whole["first_audio"]) / streamed_p50, "x")
    record(f"{label}: our overhead to first audio p50", percentile(over, 0.5), "ms")
    record(f"{label}: our overhead to first audio p95", percentile(over, 0.95), "ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=12, help="turns per pipeline, half typed and half spoken")
    args = parser.parse_args()
    print(
        "devhosts, fakes at the profile: first token 300 ms, 30 tokens/s, TTS 200 ms, STT 150 ms",
        file=sys.stderr,
    )
    replies = (
        ("reply opening with a sentence", "sentence first", SENTENCE_FIRST),
        ("reply opening with a clause", "clause first", CLAUSE_FIRST),
    )
    for title, label, reply in replies:
        with (
            tempfile.TemporaryDirectory(prefix="bench-first-audio-") as folder,
            FakeOpenAIServer(
                reply, first_token_seconds=FIRST_TOKEN_SECONDS, tokens_per_second=TOKENS_PER_SECOND
            ) as model,
            FakeSarvamServer(
                transcript="what are your opening hours",
                detected_language="en-IN",
                stt_seconds=STT_SECONDS,
                tts_seconds_per_sentence=TTS_SECONDS_PER_SENTENCE,
            ) as sarvam,
        ):
            streamed = run(True, args.turns, reply, model=model, sarvam=sarvam, folder=Path(folder))
            whole = run(False, args.turns, reply, model=model, sarvam=sarvam, folder=Path(folder))
        report(title, args.turns, streamed, whole, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
