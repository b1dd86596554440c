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
    failures: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Faults:
        """`DEVHOST_SLOW_ACTIVITIES=transcribe=2,respond=0.5` and `DEVHOST_FAILING_ACTIVITIES=synthesize`."""
        delays = {}
        for item in _items(env.get("DEVHOST_SLOW_ACTIVITIES", "")):
            name, _, seconds = item.partition("=")
            delays[name.strip()] = float(seconds)
        return cls(delays, frozenset(_items(env.get("DEVHOST_FAILING_ACTIVITIES", ""))))

    def __bool__(self) -> bool:
        return bool(self.delays or self.failures)

    async def before(self, activity: str) -> None:
        """Delay or fail the activity as configured; nothing for the others."""
        if activity in self.delays:
            await asyncio.sleep(self.delays[activity])
        if activity in self.failures:
            raise InjectedFault(f"{activity} failed on purpose (DEVHOST_FAILING_ACTIVITIES)")


def _items(spec: str) -> list[str]:
    return [part.strip() for part in spec.split(",") if part.strip()]
