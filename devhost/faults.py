"""Faults injected into activities on purpose, so tests can exercise crashes, deadlines and failures.

Set through the devhost's environment only; never part of the function app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field


class InjectedFault(RuntimeError):
    """An activity failure asked for by DEVHOST_FAILING_ACTIVITIES."""


@dataclass(frozen=True)
class Faults:
    delays: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int | None] = field(default_factory=dict)
    """Activity name -> how many attempts of each call fail (None: every attempt)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Faults:
        """`DEVHOST_SLOW_ACTIVITIES=transcribe=2,respond=0.5`, `DEVHOST_FAILING_ACTIVITIES=synthesize:1,publish`.

        A failing activity with `:N` fails the first N attempts of every call (a transient fault the
        retry policy absorbs); a bare name fails them all.
        """
        delays = {}
        for item in _items(env.get("DEVHOST_SLOW_ACTIVITIES", "")):
            name, _, seconds = item.partition("=")
            delays[name.strip()] = float(seconds)
        failures: dict[str, int | None] = {}
        for item in _items(env.get("DEVHOST_FAILING_ACTIVITIES", "")):
            name, _, attempts = item.partition(":")
            failures[name.strip()] = int(attempts) if attempts.strip() else None
        return cls(delays, failures)

    def __bool__(self) -> bool:
        return bool(self.delays or self.failures)

    async def before(self, activity: str, attempt: int) -> None:
        """Delay or fail this attempt (1-based, per call) of the activity as configured."""
        if activity in self.delays:
            await asyncio.sleep(self.delays[activity])
        if activity in self.failures:
            failing = self.failures[activity]
            if failing is None or attempt <= failing:
                raise InjectedFault(f"{activity} failed on purpose (DEVHOST_FAILING_ACTIVITIES, attempt {attempt})")


def _items(spec: str) -> list[str]:
    return [part.strip() for part in spec.split(",") if part.strip()]
