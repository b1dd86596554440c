"""Concurrency: our overhead per turn when many conversations talk at once, on loopback.

For each level (default 10, 50 and 200), that many conversations start together, each says a few typed
turns (the offline stack, no provider latency) and ends, all through one devhost with the rate limits
off. Printed per level: p50/p95 of our overhead (the request's time less the time inside the agent and
speech), the turns answered, and any that were not. One devhost is one Functions instance: Azure spreads
load over instances, so this is the most one instance is asked to carry, not the app's ceiling.
Figures only: nothing here passes or fails.

    python bench/concurrency.py --levels 10,50,200 --turns 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import record
from devhost.process import DevHost

TYPED = ["what are your opening hours", "how much does delivery cost", "do you have vegan options"]
SETTINGS = {
    "RATE_LIMIT_PER_KEY": "",
    "RATE_LIMIT_PER_TENANT": "",
    "RATE_LIMIT_PER_IP": "",
    "TURN_REPLY_TIMEOUT_SECONDS": "120",
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def conversation(host: DevHost, turns: int) -> tuple[list[float], int]:
    """Our overhead of each turn answered, and the number of requests that were not answered 2xx."""
    started = host.post("/api/conversations", json={}, timeout=180)
    if started.status_code != 201:
        return [], turns + 1
    conversation_id = started.json()["conversation_id"]
    overhead: list[float] = []
    failures = 0
    for number in range(turns):
        response = host.post(
            f"/api/conversations/{conversation_id}/turns", json={"text": TYPED[number % len(TYPED)]}, timeout=180
        )
        if response.status_code == 200:
            overhead.append(float(response.json()["timings_ms"]["overhead"]))
        else:
            failures += 1
    host.post(f"/api/conversations/{conversation_id}/end", timeout=180)
    return overhead, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="10,50,200", help="concurrent conversations, comma-separated")
    parser.add_argument("--turns", type=int, default=2, help="turns per conversation")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as folder:
        host = DevHost(SETTINGS, Path(folder) / "devhost.log")
        print("starting devhost with embedded stand-ins ...", file=sys.stderr)
        host.start()
        try:
            conversation(host, 1)  # warm: the agent, the voices and the pools load on first use
            print(f"our overhead per turn, {args.turns} typed turns per conversation, all conversations at once:")
            for level in levels:
                began = time.monotonic()
                with ThreadPoolExecutor(max_workers=level) as pool:
                    outcomes = list(pool.map(lambda _: conversation(host, args.turns), range(level)))
                overhead = [ms for measured, _ in outcomes for ms in measured]
                failures = sum(failed for _, failed in outcomes)
                if not overhead:
                    print(f"  {level:>4} conversations: no turn answered, {failures} requests failed")
                    record(f"requests not answered at {level} concurrent conversations", failures, "requests")
                    continue
                p50, p95 = percentile(overhead, 0.5), percentile(overhead, 0.95)
                print(
                    f"  {level:>4} conversations: p50 {p50:7.0f} ms   p95 {p95:7.0f} ms   "
                    f"{len(overhead)} turns answered, {failures} not, {time.monotonic() - began:.0f} s"
                )
                record(f"overhead p95 at {level} concurrent conversations", p95, "ms")
                if failures:
                    record(f"requests not answered at {level} concurrent conversations", failures, "requests")
        finally:
            host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
