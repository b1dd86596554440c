"""Time to a web client's first audio: from the utterance leaving the client to its first `reply.audio`
arriving, through the devhost's local Web PubSub and Microsoft's Python client.

Providers are the test fakes at the profile of `bench/first_audio.py` (first token 300 ms, 30 tokens a
second, Sarvam TTS 200 ms a sentence, STT 150 ms); each reply has three sentences and opens with a whole
sentence. Turns alternate typed (JSON) and spoken (a WAV as a binary event). Printed: p50/p95 of the
client's first audio, the ratio of its median to the simulated providers' floor (what they alone take
before the first sentence can play), and how much of it is delivery (client time minus the turn's own
`first_audio`, measured in the activity). Figures only: nothing here passes or fails.

    python bench/web_first_audio.py --turns 12
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import (
    CallbackType,
    OnGroupDataMessageArgs,
    WebPubSubDataType,
    WebPubSubProtocolType,
)

from bench.results import record
from devhost.process import DevHost
from shared.speech.audio import Audio, encode_wav
from shared.speech.espeak import EspeakSynthesizer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.sarvam_server import FakeSarvamServer

FIRST_TOKEN_SECONDS = 0.3
TOKENS_PER_SECOND = 30.0
TTS_SECONDS_PER_SENTENCE = 0.2
STT_SECONDS = 0.15
REPLY = json.dumps(
    {
        "text": "We are open from 8 am to 10 pm on weekdays. On Sundays we open at 9 am and close at 6 pm. "
        "We are closed on public holidays.",
        "intent": "question",
        "cites": [],
    }
)
"""The reply and profile of `bench/first_audio.py` (a script of its own, so not imported)."""
WAIT_SECONDS = 60


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def provider_seconds_to_first_sentence(spoken: bool) -> float:
    """What the simulated providers alone take before the first sentence can play."""
    text = json.loads(REPLY)["text"]
    first_sentence_end = REPLY.index(text) + text.index(".") + 1
    tokens = len(re.findall(r"\s*\S+", REPLY[:first_sentence_end])) + 1  # the space that completes it
    listening = STT_SECONDS if spoken else 0.0
    return listening + FIRST_TOKEN_SECONDS + tokens / TOKENS_PER_SECOND + TTS_SECONDS_PER_SENTENCE


def run(turns: int, model: FakeOpenAIServer, sarvam: FakeSarvamServer, folder: Path) -> list[dict[str, Any]]:
    env = {
        "OPENAI_BASE_URL": f"{model.url}/v1",
        "OPENAI_MODEL": "bench-model",
        "LLM_MAX_RETRIES": "0",
        "SARVAM_API_KEY": sarvam.api_key,
        "SARVAM_BASE_URL": sarvam.url,
        "TURNS_PER_GENERATION": "50",
    }
    host = DevHost(env, folder / "devhost.log")
    host.start()
    question = EspeakSynthesizer().synthesize("what are your opening hours", "en-US", "")
    arrived: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
    results: list[dict[str, Any]] = []
    try:
        negotiated = host.post("/api/realtime/negotiate", json={}, timeout=60).json()
        client = WebPubSubClient(
            credential=WebPubSubClientCredential(negotiated["url"]),
            protocol_type=WebPubSubProtocolType.JSON,
            ack_timeout=2,
        )

        def on_group(args: OnGroupDataMessageArgs) -> None:
            arrived.put((time.time(), dict(args.data)))

        client.subscribe(CallbackType.GROUP_MESSAGE, on_group)
        with client:
            for number in range(turns + 1):
                spoken = number % 2 == 1
                sent = time.time()
                if spoken:  # a WAV's id is its digest: each turn's differs by a sample of silence
                    samples = np.concatenate([question.samples, np.zeros(number, dtype=question.samples.dtype)])
                    wav = encode_wav(Audio(samples, question.rate))
                    client.send_event("utterance", memoryview(wav), WebPubSubDataType.BINARY)
                else:
                    client.send_event("utterance", {"id": f"t{number}", "text": "hours?"}, WebPubSubDataType.JSON)
                first = None
                while True:
                    at, message = arrived.get(timeout=WAIT_SECONDS)
                    if message["type"] == "reply.audio" and first is None:
                        first = at
                    if message["type"] == "reply.done":
                        break
                if number == 0 or first is None:
                    continue  # the worker's first model call loads the SDKs
                results.append(
                    {
                        "spoken": spoken,
                        "client_ms": (first - sent) * 1000,
                        "turn_ms": message["timings_ms"]["first_audio"],
                        "floor_ms": provider_seconds_to_first_sentence(spoken) * 1000,
                    }
                )
    finally:
        host.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=12, help="turns, half typed and half spoken")
    args = parser.parse_args()
    print("devhost, fakes at the profile: first token 300 ms, 30 tokens/s, TTS 200 ms, STT 150 ms", file=sys.stderr)
    with (
        tempfile.TemporaryDirectory(prefix="bench-web-first-audio-") as folder,
        FakeOpenAIServer(REPLY, first_token_seconds=FIRST_TOKEN_SECONDS, tokens_per_second=TOKENS_PER_SECOND) as model,
        FakeSarvamServer(
            transcript="what are your opening hours",
            detected_language="en-IN",
            stt_seconds=STT_SECONDS,
            tts_seconds_per_sentence=TTS_SECONDS_PER_SENTENCE,
        ) as sarvam,
    ):
        results = run(args.turns, model, sarvam, Path(folder))
    print(f"web client, utterance sent → first reply.audio received, {len(results)} turns (half spoken):")
    for name, chosen in (("typed", False), ("spoken", True)):
        client = [r["client_ms"] for r in results if r["spoken"] is chosen]
        floor = statistics.median(r["floor_ms"] for r in results if r["spoken"] is chosen)
        print(
            f"  {name:<7} p50 {percentile(client, 0.5):6.0f} ms   p95 {percentile(client, 0.95):6.0f} ms   "
            f"floor {floor:.0f} ms   ratio {statistics.median(client) / floor:.2f}x (median / floor)"
        )
        record(f"web {name}: end of speech to first audio p50", percentile(client, 0.5), "ms")
        record(f"web {name}: end of speech to first audio / provider floor", statistics.median(client) / floor, "x")
    delivery = [r["client_ms"] - r["turn_ms"] for r in results if r["turn_ms"] is not None]
    print(
        "  of which delivery (client time - the turn's own first_audio, which starts at the event handler): "
        f"p50 {percentile(delivery, 0.5):.0f} ms   p95 {percentile(delivery, 0.95):.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
