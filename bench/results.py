"""One place where every benchmark's figures go: printed as one line each, and collected for the suite.

A benchmark calls `record` for each figure it wants kept. Run alone it only prints; run by
`bench/suite.py` (`make bench`), which names a file in BENCH_RESULTS, each figure is also appended
there as a JSON line, and the suite writes them all to `bench/results/latest.json` with the machine,
the date and the git commit, and draws `bench/results/latest.png`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS_ENV = "BENCH_RESULTS"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Figure:
    """One measured (or modelled) number: `bench` is the script that made it."""

    bench: str
    name: str
    value: float
    unit: str


def record(name: str, value: float, unit: str) -> Figure:
    """Print the figure as one line and, under the suite, append it to its results file."""
    figure = Figure(Path(sys.argv[0]).stem, name, float(value), unit)
    print(f"  = {figure.bench}: {name} {value:.6g} {unit}")
    path = os.environ.get(RESULTS_ENV)
    if path:
        with Path(path).open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(figure)) + "\n")
    return figure


def collected(path: Path) -> list[Figure]:
    """The figures appended to `path` by the benchmarks the suite ran (none if it was never written)."""
    if not path.exists():
        return []
    return [Figure(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load average says whether others were using it)."""
    import psutil

    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def document(figures: Sequence[Figure], *, date: str, seconds: float, note: str) -> dict[str, Any]:
    """The results file's content: where, when, which code, and every figure."""
    return {
        "date": date,
        "git_commit": git_commit(),
        "machine": machine(),
        "note": note,
        "total_seconds": round(seconds, 1),
        "figures": [asdict(figure) for figure in figures],
    }


def write(document_: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document_, indent=2) + "\n", encoding="utf-8")


def by_unit(figures: Iterable[Figure]) -> dict[str, list[Figure]]:
    grouped: dict[str, list[Figure]] = {}
    for figure in figures:
        grouped.setdefault(figure.unit, []).append(figure)
    return grouped


def plot(figures: Sequence[Figure], path: Path, title: str) -> None:
    """One horizontal bar panel per unit (ms, ratios, dollars, ...), each bar a figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = by_unit(figures)
    heights = [max(1.2, 0.28 * len(group) + 0.8) for group in grouped.values()]
    fig, axes = plt.subplots(len(grouped), 1, figsize=(11, sum(heights)), gridspec_kw={"height_ratios": heights})
    for axis, (unit, group) in zip([axes] if len(grouped) == 1 else axes, grouped.items(), strict=True):
        labels = [f"{f.bench}: {f.name}" for f in group]
        values = [f.value for f in group]
        axis.barh(labels, values, color="#4878a8")
        axis.invert_yaxis()
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 100:  # milliseconds from 1 to 30,000: log scale
            axis.set_xscale("log")
        axis.set_xlabel(unit)
        axis.tick_params(axis="y", labelsize=7)
        for y, value in enumerate(values):
            axis.annotate(f" {value:.4g}", (value, y), va="center", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.subplots_adjust(left=0.45)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
