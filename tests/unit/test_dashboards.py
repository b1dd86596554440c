"""The dashboards are code: Grafana and the Azure workbook show the same panels, read only metrics the
app records, and draw the alert thresholds dashboards/README.md promises."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

from shared.config import REPOSITORY_ROOT
from shared.telemetry import Meters

DASHBOARDS = REPOSITORY_ROOT / "dashboards"
PROMETHEUS_SUFFIXES = re.compile(r"(_milliseconds|_seconds|_USD)?(_total|_bucket|_sum|_count)?$")


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
    return loaded


def _recorded() -> set[str]:
    """The OpenTelemetry names of every instrument, as the meters make them."""
    source = (REPOSITORY_ROOT / "shared" / "telemetry.py").read_text(encoding="utf-8")
    names = set(re.findall(r'meter\.create_\w+\(\s*"([a-z_.]+)"', source))
    assert len(names) == len(fields(Meters)), "every instrument is made by name in meters()"
    return names


def _grafana_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = _load("grafana.json")["panels"]
    return panels


def _workbook_queries() -> list[dict[str, Any]]:
    return [item["content"] for item in _load("azure-workbook.json")["items"] if item["type"] == 3]


def test_grafana_and_the_workbook_show_the_same_panels_in_the_same_order() -> None:
    grafana = [panel["title"] for panel in _grafana_panels()]
    workbook = [item["title"].split(" (alert above")[0] for item in _workbook_queries()]
    assert grafana == workbook
    assert len(grafana) == len(set(grafana))


def test_every_panel_reads_only_metrics_the_app_records() -> None:
    recorded = _recorded()
    as_prometheus = {name.replace(".", "_") for name in recorded}
    for panel in _grafana_panels():
        for target in panel["targets"]:
            names_only = re.sub(r"by \([^)]*\)|\{[^}]*\}", "", target["expr"])  # no label names
            read = set(re.findall(r"\b((?:voice_agent|gen_ai)_[a-z_A-Z]+)", names_only))
            assert read, panel["title"]
            assert {PROMETHEUS_SUFFIXES.sub("", metric) for metric in read} <= as_prometheus, panel["title"]
    for query in _workbook_queries():
        read = set(re.findall(r'name == "([a-z_.]+)"', query["query"]))
        assert read, query["title"]
        assert read <= recorded, query["title"]


def test_the_alert_thresholds_are_the_ones_the_readme_promises() -> None:
    readme = (DASHBOARDS / "README.md").read_text(encoding="utf-8")
    panels_section = readme.split("## Alert thresholds", 1)[1].split("\n## ", 1)[0]
    promised = dict(re.findall(r"^\| ([^|]+?) \| above ([0-9.]+)", panels_section, flags=re.MULTILINE))
    drawn = {
        panel["title"]: steps[-1]["value"]
        for panel in _grafana_panels()
        if len(steps := panel["fieldConfig"]["defaults"]["thresholds"]["steps"]) > 1
    }
    assert {title: float(value) for title, value in promised.items()} == drawn
    titled = {item["title"] for item in _workbook_queries() if "(alert above" in item["title"]}
    assert {title.split(" (alert above")[0] for title in titled} == set(drawn)
