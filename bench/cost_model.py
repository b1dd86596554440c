"""What a call-minute costs on Azure, from what a measured run used and the list prices in `bench/prices.json`.

Only the parts billed per use are priced per call-minute (Functions Flex Consumption execution time and
executions, Web PubSub messages beyond the units' daily quota, Blob operations, Durable Task Scheduler
actions); Postgres, Redis and Web PubSub units are billed by the hour or day whether calls come or not
and make the idle month. A price the table leaves null was not found: its line is None and the totals
leave it out (they say which).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

PRICES = Path(__file__).resolve().parent / "prices.json"
USAGE_FIGURES = {
    "execution_gb_seconds": ("Functions execution time per call-minute", "GB-s"),
    "executions": ("Functions executions per call-minute", "executions"),
    "web_pubsub_messages": ("Web PubSub messages per call-minute", "messages"),
    "blob_writes": ("Blob writes per call-minute", "operations"),
    "blob_reads": ("Blob reads per call-minute", "operations"),
    "durable_actions": ("Durable Task Scheduler actions per call-minute", "actions"),
}
"""The figure (name, unit) under which each field of `Usage` is recorded in the results file."""


@dataclass(frozen=True)
class Usage:
    """Billable use, per turn or per call-minute."""

    execution_gb_seconds: float
    executions: float
    web_pubsub_messages: float
    blob_writes: float
    blob_reads: float
    durable_actions: float

    def scaled(self, factor: float) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) * factor for f in fields(self)})


def web_pubsub_messages(sizes: Iterable[int], message_bytes: int) -> int:
    """Billed messages for outbound payloads of these sizes: each counts in `message_bytes` increments."""
    return sum(max(1, math.ceil(size / message_bytes)) for size in sizes)


def per_turn(
    *,
    turns: int,
    execution_seconds: float,
    executions: int,
    web_pubsub_messages: int,
    blob_writes: int,
    blob_reads: int,
    durable_actions: int,
    instance_memory_gb: float,
) -> Usage:
    """A run's totals (greeting and ending included) spread over its turns."""
    return Usage(
        execution_gb_seconds=execution_seconds * instance_memory_gb / turns,
        executions=executions / turns,
        web_pubsub_messages=web_pubsub_messages / turns,
        blob_writes=blob_writes / turns,
        blob_reads=blob_reads / turns,
        durable_actions=durable_actions / turns,
    )


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _price(table: Mapping[str, Any], key: str) -> float | None:
    value = table["prices"][key]["usd"]
    return None if value is None else float(value)


def _times(count: float, price: float | None, per: float) -> float | None:
    return None if price is None else count * price / per


def usage_cost(usage: Usage, table: Mapping[str, Any]) -> dict[str, float | None]:
    """Dollars per line of the bill for this usage (None: the price was not found)."""
    return {
        "functions_execution_time": _times(usage.execution_gb_seconds, _price(table, "functions_flex_gb_second"), 1),
        "functions_executions": _times(usage.executions, _price(table, "functions_flex_per_million_executions"), 1e6),
        "web_pubsub_messages": _times(
            usage.web_pubsub_messages, _price(table, "web_pubsub_per_million_extra_messages"), 1e6
        ),
        "blob_writes": _times(usage.blob_writes, _price(table, "blob_hot_per_10k_writes"), 1e4),
        "blob_reads": _times(usage.blob_reads, _price(table, "blob_hot_per_10k_reads"), 1e4),
        "durable_actions": _times(
            usage.durable_actions, _price(table, "durable_task_scheduler_per_million_actions"), 1e6
        ),
    }


def idle_month(table: Mapping[str, Any]) -> dict[str, float | None]:
    """What the deployment costs a month with no calls: Flex Consumption on demand and the Durable Task
    Scheduler's Consumption SKU scale to nothing; the stores and Web PubSub's units do not."""
    assumptions = table["assumptions"]
    hours = 24 * assumptions["days_per_month"]
    unit_day = _price(table, "web_pubsub_standard_unit_day")
    compute_hour = _price(table, "postgres_flexible_burstable_b1ms_hour")
    storage_gb_month = _price(table, "postgres_flexible_storage_gb_month")
    node_hour = _price(table, "managed_redis_balanced_b0_hour")
    return {
        "functions_flex_on_demand": 0.0,
        "durable_task_scheduler_consumption": 0.0,
        "web_pubsub_standard": None
        if unit_day is None
        else unit_day * assumptions["web_pubsub_units"] * assumptions["days_per_month"],
        "postgres": None
        if compute_hour is None or storage_gb_month is None
        else compute_hour * hours + storage_gb_month * assumptions["postgres_storage_gb"],
        "redis": None if node_hour is None else node_hour * hours * assumptions["redis_nodes"],
    }


def quota_call_minutes_per_day(usage: Usage, table: Mapping[str, Any]) -> float:
    """Call-minutes a day that Web PubSub's units carry within their included messages (the messages
    line costs nothing more below it), for usage per call-minute."""
    assumptions = table["assumptions"]
    included = assumptions["web_pubsub_units"] * assumptions["web_pubsub_messages_per_unit_day"]
    return float(included / usage.web_pubsub_messages)


def total(lines: Mapping[str, float | None]) -> tuple[float, list[str]]:
    """The sum of the priced lines, and the names of those left out for want of a price."""
    return sum(v for v in lines.values() if v is not None), sorted(k for k, v in lines.items() if v is None)


def per_thousand_calls(cost_per_call_minute: float, call_minutes: float) -> float:
    return cost_per_call_minute * call_minutes * 1000


def usage_figures(usage: Usage) -> list[tuple[str, float, str]]:
    """Usage per call-minute as figures (name, value, unit) for the results file."""
    return [(name, getattr(usage, field), unit) for field, (name, unit) in USAGE_FIGURES.items()]


def usage_from_figures(values: Mapping[str, float]) -> Usage:
    """Usage per call-minute back from the figures recorded by `usage_figures` (name to value)."""
    return Usage(**{field: float(values[name]) for field, (name, _) in USAGE_FIGURES.items()})


def cost_figures(usage: Usage, table: Mapping[str, Any]) -> list[tuple[str, float, str]]:
    """The priced totals as figures: per call-minute, per 1,000 calls with and without the Web PubSub
    messages beyond the units' quota, and the idle month."""
    lines = usage_cost(usage, table)
    per_minute, _ = total(lines)
    within_quota, _ = total({name: value for name, value in lines.items() if name != "web_pubsub_messages"})
    idle, _ = total(idle_month(table))
    minutes = table["assumptions"]["call_minutes"]
    return [
        ("cost per call-minute (priced lines)", per_minute, "USD"),
        (f"cost per 1,000 {minutes}-minute calls (priced lines)", per_thousand_calls(per_minute, minutes), "USD"),
        (
            f"cost per 1,000 {minutes}-minute calls within the Web PubSub quota (priced lines)",
            per_thousand_calls(within_quota, minutes),
            "USD",
        ),
        ("idle deployment per month (priced lines)", idle, "USD"),
    ]
