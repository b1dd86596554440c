"""`make bench`: every benchmark in turn, then their figures in `bench/results/latest.json` and a PNG.

Each benchmark runs as its own script (a fresh interpreter, its own devhosts and fakes), prints what
it always printed plus one line per recorded figure, and the suite collects those figures with the
machine, the date and the git commit. A benchmark that fails is named and the rest still run.

    python bench/suite.py                       # all of them (about a quarter of an hour on 2 cores)
    python bench/suite.py --only replay_cost --only call_cost --out /tmp/results
    python bench/suite.py --replot              # latest.png again from latest.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import results
from devhost import standins

BENCHES: dict[str, list[str]] = {
    "turn_overhead": ["--conversations", "5"],
    "first_audio": ["--turns", "12"],
    "phone_first_audio": ["--turns", "12"],
    "web_first_audio": ["--turns", "12"],
    "cold_start": ["--runs", "7"],
    "guard_overhead": ["--requests", "300"],
    "telemetry_overhead": ["--turns", "3000", "--conversations", "5"],
    "replay_cost": ["--turns", "202"],
    "concurrency": ["--levels", "10,50,200"],
    "call_cost": ["--turns", "12"],
}
"""Every benchmark `make bench` runs, with its arguments (bench/hostile_audio.py takes minutes: run it alone)."""
OUT = Path(__file__).resolve().parent / "results"
NOTE = (
    "Measured on the project's shared 2-core workplace while other processes (test runs, other sessions) "
    "were using it: compare figures within one run, not across machines."
)


def own_standins(folder: Path, stack: ExitStack) -> dict[str, str]:
    """Redis and Azurite on free ports for every devhost of the run, unless REDIS_URL and
    BLOB_CONNECTION_STRING name services already: the devhost's default ports may be another program's
    on a shared machine. (Each devhost still embeds a Postgres of its own, on a socket.)"""
    settings: dict[str, str] = {}
    if not os.environ.get("REDIS_URL"):
        redis = standins.start_redis(folder, port=0)
        stack.callback(redis.stop)
        settings["REDIS_URL"] = redis.url
    if not os.environ.get("BLOB_CONNECTION_STRING"):
        azurite = standins.start_azurite(folder, in_memory=True, blob_port=0)
        stack.callback(azurite.stop)
        settings["BLOB_CONNECTION_STRING"] = azurite.url
    return settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), help="a benchmark (repeatable)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for latest.json and latest.png")
    parser.add_argument("--replot", action="store_true", help="only draw latest.png again from latest.json")
    args = parser.parse_args()
    if args.replot:
        kept = json.loads((args.out / "latest.json").read_text(encoding="utf-8"))
        title = f"make bench, {kept['date']}, {kept['git_commit'][:12]}"
        results.plot([results.Figure(**f) for f in kept["figures"]], args.out / "latest.png", title)
        return 0
    chosen = args.only or list(BENCHES)
    started, date = time.monotonic(), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as folder, ExitStack() as stack:
        collected = Path(folder) / "figures.jsonl"
        env = {**os.environ, **own_standins(Path(folder), stack), results.RESULTS_ENV: str(collected)}
        for name in chosen:
            print(f"==> bench/{name}.py {' '.join(BENCHES[name])}", flush=True)
            began = time.monotonic()
            script = Path(__file__).resolve().parent / f"{name}.py"
            if subprocess.run([sys.executable, str(script), *BENCHES[name]], env=env, check=False).returncode:
                failed.append(name)
            print(f"    ({time.monotonic() - began:.0f} s)", flush=True)
        figures = results.collected(collected)
    seconds = time.monotonic() - started
    document = results.document(figures, date=date, seconds=seconds, note=NOTE)
    document["failed"] = failed
    results.write(document, args.out / "latest.json")
    results.plot(figures, args.out / "latest.png", f"make bench, {date}, {document['git_commit'][:12]}")
    print(f"{len(figures)} figures in {args.out / 'latest.json'} and latest.png, {seconds / 60:.1f} min in all")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
