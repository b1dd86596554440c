"""Replay cost: our overhead late in one long conversation against early in it.

A Durable orchestrator replays its whole history on every step, so without care a turn's overhead grows
with the conversation. The orchestrator continues as new every TURNS_PER_GENERATION turns (default 20)
with a summary, which should keep turn 200 as cheap as turn 5. One conversation of typed turns with the
offline stack through a devhost at the default settings; printed: our overhead (the request's time less
the time inside the agent and speech) around turn 5 and around turn 200, p50 over five turns each.
Figures only: nothing here passes or fails.

    python bench/replay_cost.py --turns 202
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import record
from devhost.process import DevHost
from shared.config import Settings

TYPED = [
    "hello there",
    "what are your opening hours",
    "how much does delivery cost",
    "do you have vegan options",
    "where are you located",
]
WINDOW = 2
"""Turns on each side of turn 5 and turn 200 that make up their medians."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=202, help="turns of the conversation (at least 202)")
    args = parser.parse_args()
    late = args.turns - WINDOW
    overhead: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as folder:
        host = DevHost({}, Path(folder) / "devhost.log")
        print("starting devhost with embedded stand-ins ...", file=sys.stderr)
        host.start()
        try:
            conversation_id = host.post("/api/conversations", json={}).json()["conversation_id"]
            for number in range(1, args.turns + 1):
                text = TYPED[number % len(TYPED)]
                response = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": text}, timeout=60)
                response.raise_for_status()
                overhead[number] = float(response.json()["timings_ms"]["overhead"])
            host.post(f"/api/conversations/{conversation_id}/end")
        finally:
            host.stop()
    early = [overhead[n] for n in range(5 - WINDOW, 5 + WINDOW + 1)]
    later = [overhead[n] for n in range(late - WINDOW, late + WINDOW + 1)]
    generations = Settings.model_fields["turns_per_generation"].default
    print(f"one conversation of {args.turns} typed turns, continuing as new every {generations} turns:")
    print(f"  our overhead around turn 5:       p50 {statistics.median(early):6.1f} ms")
    print(f"  our overhead around turn {late}:     p50 {statistics.median(later):6.1f} ms")
    blocks = [
        f"{start}-{min(start + generations - 1, args.turns)}: "
        f"{statistics.median(overhead[n] for n in range(start, min(start + generations, args.turns + 1))):.0f}"
        for start in range(1, args.turns + 1, generations)
    ]
    print(f"  p50 by generation (turns: ms): {', '.join(blocks)}")
    record("overhead p50 around turn 5", statistics.median(early), "ms")
    record(f"overhead p50 around turn {late}", statistics.median(later), "ms")
    record(f"overhead turn {late} / turn 5", statistics.median(later) / statistics.median(early), "x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
