"""The benchmark suite's arithmetic: billed Web PubSub messages, usage per call-minute, the bill's lines,
totals that leave unpriced lines out, the idle month, and the results file the suite writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import cost_model, results
from bench.cost_model import Usage

TABLE: dict[str, Any] = {
    "prices": {
        "functions_flex_gb_second": {"usd": 0.000026},
        "functions_flex_per_million_executions": {"usd": None},
        "web_pubsub_standard_unit_day": {"usd": 1.61},
        "web_pubsub_per_million_extra_messages": {"usd": 1.0},
        "blob_hot_per_10k_writes": {"usd": 0.05},
        "blob_hot_per_10k_reads": {"usd": 0.004},
        "durable_task_scheduler_per_million_actions": {"usd": None},
        "postgres_flexible_burstable_b1ms_hour": {"usd": 0.02},
        "postgres_flexible_storage_gb_month": {"usd": 0.1},
        "managed_redis_balanced_b0_hour": {"usd": None},
    },
    "assumptions": {
        "web_pubsub_units": 2,
        "web_pubsub_messages_per_unit_day": 1_000_000,
        "days_per_month": 30.0,
        "postgres_storage_gb": 32,
        "redis_nodes": 2,
        "call_minutes": 10,
    },
}


def test_web_pubsub_bills_each_message_in_2_kb_increments_and_at_least_one() -> None:
    assert cost_model.web_pubsub_messages([10, 2048, 2049, 100 * 1024], 2048) == 1 + 1 + 2 + 50


def test_a_runs_totals_become_usage_per_turn_at_the_instance_memory() -> None:
    usage = cost_model.per_turn(
        turns=4,
        execution_seconds=10.0,
        executions=20,
        web_pubsub_messages=8,
        blob_writes=12,
        blob_reads=4,
        durable_actions=40,
        instance_memory_gb=2.048,
    )
    assert usage == Usage(5.12, 5.0, 2.0, 3.0, 1.0, 10.0)
    assert usage.scaled(4) == Usage(20.48, 20.0, 8.0, 12.0, 4.0, 40.0)


def test_each_line_of_the_bill_is_usage_times_its_price_and_none_without_one() -> None:
    lines = cost_model.usage_cost(Usage(1000.0, 2e6, 3e6, 20_000, 50_000, 1e6), TABLE)
    assert lines["functions_execution_time"] == pytest.approx(0.026)
    assert lines["functions_executions"] is None
    assert lines["web_pubsub_messages"] == pytest.approx(3.0)
    assert lines["blob_writes"] == pytest.approx(0.1)
    assert lines["blob_reads"] == pytest.approx(0.02)
    assert lines["durable_actions"] is None
    priced, missing = cost_model.total(lines)
    assert priced == pytest.approx(0.026 + 3.0 + 0.1 + 0.02)
    assert missing == ["durable_actions", "functions_executions"]


def test_the_idle_month_is_the_stores_and_web_pubsub_units_and_nothing_for_what_scales_to_zero() -> None:
    idle = cost_model.idle_month(TABLE)
    assert idle["functions_flex_on_demand"] == idle["durable_task_scheduler_consumption"] == 0.0
    assert idle["web_pubsub_standard"] == pytest.approx(1.61 * 2 * 30)
    assert idle["postgres"] == pytest.approx(0.02 * 24 * 30 + 0.1 * 32), "compute hours and provisioned storage"
    assert idle["redis"] is None
    priced, missing = cost_model.total(idle)
    assert priced == pytest.approx(96.6 + 14.4 + 3.2)
    assert missing == ["redis"]


def test_redis_is_billed_per_node_hour_and_postgres_needs_both_its_prices() -> None:
    prices = {
        **TABLE["prices"],
        "managed_redis_balanced_b0_hour": {"usd": 0.016},
        "postgres_flexible_storage_gb_month": {"usd": None},
    }
    idle = cost_model.idle_month({**TABLE, "prices": prices})
    assert idle["redis"] == pytest.approx(0.016 * 24 * 30 * 2)
    assert idle["postgres"] is None


def test_web_pubsub_units_carry_their_daily_messages_before_any_is_billed() -> None:
    usage = Usage(1.0, 1.0, 800.0, 0.0, 0.0, 0.0)
    assert cost_model.quota_call_minutes_per_day(usage, TABLE) == pytest.approx(2_000_000 / 800)


def test_usage_survives_the_results_file_and_the_totals_are_priced_with_and_without_extra_messages() -> None:
    usage = Usage(1000.0, 2e6, 3e6, 20_000, 50_000, 1e6)
    recorded = {name: value for name, value, _ in cost_model.usage_figures(usage)}
    assert cost_model.usage_from_figures(recorded) == usage
    costs = {name: value for name, value, _ in cost_model.cost_figures(usage, TABLE)}
    assert costs["cost per call-minute (priced lines)"] == pytest.approx(0.026 + 3.0 + 0.1 + 0.02)
    assert costs["cost per 1,000 10-minute calls (priced lines)"] == pytest.approx(3.146 * 10_000)
    assert costs["cost per 1,000 10-minute calls within the Web PubSub quota (priced lines)"] == pytest.approx(
        0.146 * 10_000
    )
    assert costs["idle deployment per month (priced lines)"] == pytest.approx(96.6 + 14.4 + 3.2)


def test_a_thousand_ten_minute_calls_are_ten_thousand_call_minutes() -> None:
    assert cost_model.per_thousand_calls(0.002, 10) == pytest.approx(20.0)


def test_the_repositorys_price_table_names_a_source_for_every_price_and_a_date_for_every_found_one() -> None:
    table = cost_model.load_prices()
    assert set(TABLE["prices"]) == set(table["prices"])
    assert all(entry["source"].startswith("https://") for entry in table["prices"].values())
    found = [entry for entry in table["prices"].values() if entry["usd"] is not None]
    assert all(entry["as_of"] and entry["reported_by"] for entry in found)
    assert table["retrieved"]
    assert set(TABLE["assumptions"]) <= set(table["assumptions"])


def test_figures_recorded_under_the_suite_reach_its_results_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    collected = tmp_path / "figures.jsonl"
    monkeypatch.setenv(results.RESULTS_ENV, str(collected))
    monkeypatch.setattr("sys.argv", ["bench/replay_cost.py"])

    results.record("overhead p50 at turn 200", 61.5, "ms")
    results.record("ratio turn 200 / turn 5", 1.1, "x")

    assert capsys.readouterr().out.count("\n") == 2, "one line per figure"
    figures = results.collected(collected)
    assert [(f.bench, f.name, f.value, f.unit) for f in figures] == [
        ("replay_cost", "overhead p50 at turn 200", 61.5, "ms"),
        ("replay_cost", "ratio turn 200 / turn 5", 1.1, "x"),
    ]
    written = tmp_path / "latest.json"
    results.write(results.document(figures, date="2026-12-07T00:00:00Z", seconds=1.0, note="test"), written)
    document = json.loads(written.read_text())
    assert document["figures"][0]["value"] == 61.5
    assert {"cpu", "cpus", "memory_gb", "load_average"} <= set(document["machine"])
    assert document["git_commit"]
    results.plot(figures, tmp_path / "latest.png", "test")
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG")
