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
class Target:
    """An activity, or only its calls whose input has `field` set (`answer_turn?audio_blob`: spoken turns)."""

    activity: str
    field: str | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        activity, _, wanted = text.strip().partition("?")
        return cls(activity.strip(), wanted.strip() or None)

    def matches(self, activity: str, argument: object) -> bool:
        if activity != self.activity:
            return False
        return self.field is None or (isinstance(argument, dict) and argument.get(self.field) is not None)


@dataclass(frozen=True)
class Faults:
    delays: dict[Target, float] = field(default_factory=dict)
    failures: dict[Target, int | None] = field(default_factory=dict)
    """Target -> how many attempts of each call fail (None: every attempt)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Faults:
        """`DEVHOST_SLOW_ACTIVITIES=answer_turn?audio_blob=2,summarize=0.5`,
        `DEVHOST_FAILING_ACTIVITIES=answer_turn:1,publish`.

        A failing activity with `:N` fails the first N attempts of every call (a transient fault the
        retry policy absorbs); a bare name fails them all. `name?field` limits a fault to the calls
        whose input has that field set.
        """
        delays = {}
        for item in _items(env.get("DEVHOST_SLOW_ACTIVITIES", "")):
            name, _, seconds = item.rpartition("=")
            delays[Target.parse(name)] = float(seconds)
        failures: dict[Target, int | None] = {}
        for item in _items(env.get("DEVHOST_FAILING_ACTIVITIES", "")):
            name, _, attempts = item.partition(":")
            failures[Target.parse(name)] = int(attempts) if attempts.strip() else None
        return cls(delays, failures)

    def __bool__(self) -> bool:
        return bool(self.delays or self.failures)

    async def before(self, activity: str, attempt: int, argument: object) -> None:
        """Delay or fail this attempt (1-based, per call) of the activity as configured."""
        for target, seconds in self.delays.items():
            if target.matches(activity, argument):
                await asyncio.sleep(seconds)
        for target, failing in self.failures.items():
            if target.matches(activity, argument) and (failing is None or attempt <= failing):
                raise InjectedFault(f"{activity} failed on purpose (DEVHOST_FAILING_ACTIVITIES, attempt {attempt})")


def _items(spec: str) -> list[str]:
    return [part.strip() for part in spec.split(",") if part.strip()]
