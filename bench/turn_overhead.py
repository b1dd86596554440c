"""Turn latency through the devhost with the offline stack: our overhead vs time inside the adapters.

Runs K conversations of typed turns plus one spoken turn each and prints p50/p95 of the turn
latency, split into the time spent inside the agent/STT/TTS adapters (as the activities measure
it) and everything else (HTTP, Durable replay and scheduling, Redis hand-off, Postgres writes), and
the CPU time of the whole stack per turn: the devhost process and its children (its embedded
Postgres) and the Redis and Azurite this script starts for it on free ports, adapters included.
Figures only: nothing here passes or fails.

    make bench                                  # embedded stand-ins in a temporary folder
    python bench/turn_overhead.py --conversations 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from bench.results import record
from devhost import standins
from devhost.process import DevHost
from shared.speech.audio import encode_wav
from shared.speech.espeak import EspeakSynthesizer

TYPED = [
    "hello there",
    "what are your opening hours",
    "how much does delivery cost",
    "do you have vegan options",
    "where are you located",
]
SPOKEN = "can i book a table"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def row(name: str, values: list[float]) -> str:
    return (
        f"  {name:<28} p50 {percentile(values, 0.5):8.1f} ms   p95 {percentile(values, 0.95):8.1f} ms   n={len(values)}"
    )


def stack_cpu_seconds() -> float:
    """User and system CPU seconds so far of every process this script started: the devhost and its
    children, Redis and Azurite (not this script: the client is not the stack)."""
    total = 0.0
    for process in psutil.Process().children(recursive=True):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=5)
    args = parser.parse_args()
    wav = encode_wav(EspeakSynthesizer().synthesize(SPOKEN, "en-US", ""))
    samples: dict[str, list[float]] = {
        k: [] for k in ("client wall", "server total", "inside adapters", "our overhead", "stt", "agent", "tts")
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as folder, ExitStack() as stack:
        redis = standins.start_redis(Path(folder), port=0)
        stack.callback(redis.stop)
        azurite = standins.start_azurite(Path(folder), in_memory=True, blob_port=0)
        stack.callback(azurite.stop)
        settings = {"TURNS_PER_GENERATION": "4", "REDIS_URL": redis.url, "BLOB_CONNECTION_STRING": azurite.url}
        host = DevHost(settings, Path(folder) / "devhost.log")
        print("starting devhost with embedded stand-ins ...", file=sys.stderr)
        host.start()
        try:
            cpu_before, warm_turns = 0.0, 0
            for index in range(args.conversations):
                conversation_id = host.post("/api/conversations", json={}).json()["conversation_id"]
                requests_to_send: list[dict[str, Any]] = [{"json": {"text": text}} for text in TYPED]
                requests_to_send.append({"data": wav, "headers": {"Content-Type": "audio/wav"}})
                for kwargs in requests_to_send:
                    started = time.perf_counter()
                    response = host.post(f"/api/conversations/{conversation_id}/turns", **kwargs)
                    wall = (time.perf_counter() - started) * 1000
                    response.raise_for_status()
                    timings = response.json()["timings_ms"]
                    inside = sum(timings[k] or 0.0 for k in ("stt", "agent", "tts"))
                    samples["client wall"].append(wall)
                    samples["server total"].append(timings["total"])
                    samples["inside adapters"].append(inside)
                    samples["our overhead"].append(timings["total"] - inside)
                    for stage in ("stt", "agent", "tts"):
                        if timings[stage] is not None:
                            samples[stage].append(timings[stage])
                host.post(f"/api/conversations/{conversation_id}/end")
                if index == 0:  # the first conversation loads the models and voices: not counted
                    cpu_before, warm_turns = stack_cpu_seconds(), len(samples["client wall"])
            cpu_seconds = stack_cpu_seconds() - cpu_before
            cpu_turns = max(1, len(samples["client wall"]) - warm_turns)
        finally:
            host.stop()
    turns = len(samples["client wall"])
    print(f"turn latency over {turns} turns ({args.conversations} conversations, offline stack):")
    for name, values in samples.items():
        print(row(name, values))
    share = statistics.median(samples["our overhead"]) / statistics.median(samples["server total"])
    print(f"  overhead share of a turn (median ratio): {share:.0%}")
    print(f"  CPU of the whole stack: {cpu_seconds * 1000 / cpu_turns:.0f} ms per warm turn, offline adapters included")
    record("our overhead per turn p50", percentile(samples["our overhead"], 0.5), "ms")
    record("our overhead per turn p95", percentile(samples["our overhead"], 0.95), "ms")
    record("server total per turn p50", percentile(samples["server total"], 0.5), "ms")
    record("CPU per turn, whole stack (offline adapters)", cpu_seconds * 1000 / cpu_turns, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
