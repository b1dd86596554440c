"""What guarding a route costs: the same requests with and without the edge's rate limits, against an
unguarded floor, through the devhost with embedded stand-ins.

Three requests, each N times, sequentially from one client:
- `GET /api/openapi.json`: anonymous, no I/O: the host's floor;
- `GET /api/conversations/<unknown id>`: API key verified, rate limits, one conversation lookup (404);
- `GET /api/conversations?limit=1`: the same guard and a one-row list.
Run twice, with the default limits and with every limit off, so the rate limits' share shows.
Figures only: nothing here passes or fails.

    python bench/guard_overhead.py --requests 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import record
from devhost.process import DevHost

UNKNOWN = "/api/conversations/00000000-0000-4000-8000-000000000000"
PATHS = {"floor (openapi.json)": "/api/openapi.json", "guarded 404": UNKNOWN, "guarded list": "/api/conversations"}
NO_LIMITS = {"RATE_LIMIT_PER_KEY": "", "RATE_LIMIT_PER_TENANT": "", "RATE_LIMIT_PER_IP": ""}
LIMITS = {"RATE_LIMIT_PER_KEY": "100000/minute", "RATE_LIMIT_PER_TENANT": "100000/minute"}
"""Default notation, limits high enough that the run is never refused; the IP limit stays at its default."""


def timed(host: DevHost, path: str, count: int) -> list[float]:
    params = {"limit": "1"} if path == "/api/conversations" else None
    for _ in range(10):  # warm: connections, first-use imports, caches
        host.get(path, params=params)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = host.get(path, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code in (200, 404), response.text
    return samples


def run(settings: dict[str, str], count: int, folder: Path) -> dict[str, float]:
    host = DevHost(settings, folder / "devhost.log")
    host.start()
    try:
        host.post("/api/conversations", json={})
        return {name: statistics.median(timed(host, path, count)) for name, path in PATHS.items()}
    finally:
        host.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    results = {}
    for label, settings in (("rate limits on", LIMITS), ("rate limits off", NO_LIMITS)):
        with tempfile.TemporaryDirectory(prefix="bench-") as folder:
            print(f"starting devhost ({label}) ...", file=sys.stderr)
            results[label] = run(settings, args.requests, Path(folder))
    floor = results["rate limits off"]["floor (openapi.json)"]
    print(f"median client latency over {args.requests} sequential requests (ms):")
    for label, medians in results.items():
        cells = "   ".join(f"{name} {ms:6.2f}" for name, ms in medians.items())
        print(f"  {label:<16} {cells}")
    on, off = results["rate limits on"], results["rate limits off"]
    print(f"  guard + lookup over the floor, limits off: {off['guarded 404'] - floor:.2f} ms")
    print(f"  rate limits' share (on - off, guarded 404): {on['guarded 404'] - off['guarded 404']:.2f} ms")
    print(f"  ratio guarded 404 / floor, limits on: {on['guarded 404'] / floor:.2f}x")
    record("guard + lookup over the floor (limits off)", off["guarded 404"] - floor, "ms")
    record("rate limits' share of a guarded request", on["guarded 404"] - off["guarded 404"], "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
