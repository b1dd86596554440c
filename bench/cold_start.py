"""Cold start: how long a fresh interpreter takes to `import function_app`, and what it costs most.

The Functions worker imports the app before any function runs, on every new instance. Prints the
median and worst of N fresh imports and the modules that took longest in one of them. Figures
only: nothing here passes or fails.

    python bench/cold_start.py --runs 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import record  # noqa: E402

TIMED = "import time; started = time.perf_counter(); import function_app; print(time.perf_counter() - started)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    seconds = [
        float(
            subprocess.run([sys.executable, "-c", TIMED], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        )
        for _ in range(args.runs)
    ]
    print(
        f"import function_app over {args.runs} fresh interpreters: median {statistics.median(seconds) * 1000:.0f} ms, "
        f"worst {max(seconds) * 1000:.0f} ms"
    )
    record("import function_app median", statistics.median(seconds) * 1000, "ms")
    profile = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stderr.splitlines()
    rows = [line.split("|") for line in profile if line.startswith("import time:") and "cumulative" not in line]
    top = sorted(rows, key=lambda r: -int(r[1]))[:8]
    print("  largest cumulative imports:")
    for row in top:
        print(f"    {int(row[1]) / 1000:7.1f} ms  {row[2].strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
