"""The devhost's Durable engine: runs orchestrations through the SDK's own replay, durably.

Every state change is a Postgres transaction: events land in an inbox, a step replays the
instance's history plus its new events through the real SDK, stores the result and schedules the
new activities and timers. Activities run at least once (a restarted devhost re-runs the ones that
had not reported), exactly like the real runtime, so the app's activities must be idempotent.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import math
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.history.HistoryEventType import HistoryEventType
from azure.functions.durable_functions import ActivityTriggerConverter
from azure.functions.meta import Datum
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from devhost import history, invocation, replay
from devhost.faults import Faults
from devhost.registry import Activity, Registry

log = logging.getLogger("devhost.durable")

RUNNING = "Running"
PENDING = "Pending"
COMPLETED = "Completed"
FAILED = "Failed"
TERMINATED = "Terminated"
ACTIVE_STATES = frozenset({PENDING, RUNNING})
TIMER_RETRY_SECONDS = 1.0
MAX_CUSTOM_STATUS_KB = 16
"""`DurableOrchestrationContext.SetCustomStatus` in the extension: UTF-16 size, whole KB, over 16 fails."""


@dataclass(frozen=True)
class ActivityTask:
    """A scheduled activity: the row in durable_tasks, and what completes it in the inbox."""

    instance_id: str
    generation: int
    task_id: int
    name: str
    input: str | None
    attempt: int = 1


class FunctionTimeout(Exception):
    """An activity ran past host.json's functionTimeout (the host's FunctionTimeoutException)."""


class InstanceExists(Exception):
    """start_new for an id whose instance is still running."""


class InstanceGone(Exception):
    """An event for an instance that has already finished."""


def _now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """One engine per devhost process; the only writer of the durable_* tables."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[DictRow]],
        registry: Registry,
        faults: Faults | None = None,
        function_timeout_seconds: float = math.inf,
    ) -> None:
        self._pool = pool
        self._registry = registry
        self._faults = faults or Faults()
        self._function_timeout = function_timeout_seconds
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="activity")
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: set[tuple[str, int, int]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._timers_changed = asyncio.Event()
        self._timer_loop: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume everything a previous run left in flight: pending activities, timers, inboxes."""
        async with self._pool.connection() as conn:
            tasks = await (await conn.execute("SELECT * FROM durable_tasks")).fetchall()
            inboxes = await (await conn.execute("SELECT DISTINCT instance_id FROM durable_inbox")).fetchall()
        if tasks or inboxes:
            log.info("resuming %d activities and %d instances with pending events", len(tasks), len(inboxes))
        for task in tasks:
            self._spawn(self._run_activity(ActivityTask(**task)))
        for row in inboxes:
            self._spawn(self.step(row["instance_id"]))
        self._timer_loop = asyncio.create_task(self._fire_timers())

    async def stop(self) -> None:
        if self._timer_loop is not None:
            self._timer_loop.cancel()
        for task in list(self._background):
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        """Forget a finished background task; a crash in the engine itself is logged, never lost."""
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task failed", exc_info=task.exception())

    # ---- client operations -----------------------------------------------------------------

    async def start_new(self, name: str, instance_id: str, input_json: str | None) -> None:
        if name not in self._registry.orchestrators:
            raise KeyError(name)
        async with self._pool.connection() as conn, conn.transaction():
            existing = await self._lock_row(conn, instance_id)
            if existing is not None and existing["status"] in ACTIVE_STATES:
                raise InstanceExists(f"An instance with ID '{instance_id}' already exists and is {existing['status']}.")
            await conn.execute("DELETE FROM durable_instances WHERE instance_id = %s", (instance_id,))
            await conn.execute(
                "INSERT INTO durable_instances (instance_id, name, status, input) VALUES (%s, %s, %s, %s)",
                (instance_id, name, PENDING, input_json),
            )
            await self._append(conn, instance_id, 0, history.execution_started(_now(), name, input_json))
        log.info("%s: started %s", instance_id, name)
        self._spawn(self.step(instance_id))

    @staticmethod
    async def _lock_row(conn: AsyncConnection[DictRow], instance_id: str) -> dict[str, Any] | None:
        """Lock an instance's row before touching anything of it: the one lock order every transaction
        follows (instance, then its tasks, timers and inbox), so terminate, steps, activities and
        timers can run at the same moment without deadlocking."""
        return await (
            await conn.execute("SELECT * FROM durable_instances WHERE instance_id = %s FOR UPDATE", (instance_id,))
        ).fetchone()

    async def _lock_active(self, conn: AsyncConnection[DictRow], instance_id: str) -> None:
        """Lock a running instance's row; KeyError if unknown, InstanceGone if it has finished."""
        row = await self._lock_row(conn, instance_id)
        if row is None:
            raise KeyError(instance_id)
        if row["status"] not in ACTIVE_STATES:
            raise InstanceGone(instance_id)

    async def raise_event(self, instance_id: str, name: str, input_json: str | None) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await self._lock_active(conn, instance_id)
            await self._append(conn, instance_id, None, history.event_raised(_now(), name, input_json))
        log.info("%s: event %s raised", instance_id, name)
        self._spawn(self.step(instance_id))

    async def terminate(self, instance_id: str, reason: str) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await self._lock_active(conn, instance_id)
            await self._clear_pending(conn, instance_id)
            await conn.execute(
                "UPDATE durable_instances SET status = %s, output = %s, updated_at = now() WHERE instance_id = %s",
                (TERMINATED, json.dumps(reason), instance_id),
            )
        log.info("%s: terminated (%s)", instance_id, reason)

    async def status(self, instance_id: str) -> dict[str, Any] | None:
        async with self._pool.connection() as conn:
            return await (
                await conn.execute("SELECT * FROM durable_instances WHERE instance_id = %s", (instance_id,))
            ).fetchone()

    async def statuses(self, where: str = "TRUE", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            return await (
                await conn.execute(f"SELECT * FROM durable_instances WHERE {where} ORDER BY created_at", params)
            ).fetchall()

    async def purge(self, instance_id: str) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute("DELETE FROM durable_instances WHERE instance_id = %s", (instance_id,))
            return cur.rowcount

    # ---- replay ----------------------------------------------------------------------------

    def _lock(self, instance_id: str) -> asyncio.Lock:
        return self._locks.setdefault(instance_id, asyncio.Lock())

    async def step(self, instance_id: str) -> None:
        """Replay the instance with every event waiting in its inbox, until the inbox is empty."""
        async with self._lock(instance_id):
            while await self._step_once(instance_id):
                pass

    async def _step_once(self, instance_id: str) -> bool:
        launches: list[ActivityTask] = []
        async with self._pool.connection() as conn, conn.transaction():
            row = await self._lock_row(conn, instance_id)
            inbox = await (
                await conn.execute(
                    "DELETE FROM durable_inbox WHERE instance_id = %s RETURNING id, generation, event", (instance_id,)
                )
            ).fetchall()
            if row is None or not inbox:
                return False
            if row["status"] not in ACTIVE_STATES:
                log.info("%s: dropped %d events for a %s instance", instance_id, len(inbox), row["status"])
                return True
            generation = row["generation"]
            events = [e["event"] for e in sorted(inbox, key=lambda e: e["id"]) if e["generation"] in (None, generation)]
            if not events:
                return True
            launches = await self._replay(conn, row, events)
        self._timers_changed.set()  # after commit, so the timer loop sees this step's timers
        for task in launches:
            self._spawn(self._run_activity(task))
        return True

    async def _replay(
        self, conn: AsyncConnection[DictRow], row: dict[str, Any], events: list[history.Event]
    ) -> list[ActivityTask]:
        instance_id, generation = row["instance_id"], row["generation"]
        now = _now()
        past = [*row["history"], history.orchestrator_started(now)]
        episode, consumed = self._episode(row, past, events)
        new_history = [*past, *events[:consumed]]
        custom_status, status_error = self._custom_status(row, episode)
        failure = status_error or episode.error
        if failure is not None:
            failure = f"Orchestrator function '{row['name']}' failed: {failure}"
        elif episode.unsupported:
            failure = f"the devhost does not run action types {episode.unsupported} yet (activities, timers, events)"
        if failure is not None:
            log.error("%s: %s", instance_id, failure)
            await self._finish(
                conn, instance_id, FAILED, json.dumps(failure), final_history=new_history, custom_status=custom_status
            )
            return []
        if episode.continue_as_new is not None:
            carried = [e for e in events[consumed:] if e["EventType"] == HistoryEventType.EVENT_RAISED]
            await self._continue_as_new(conn, row, episode.continue_as_new.get("input"), custom_status, carried)
            return []
        if episode.state.get("isDone"):
            output = json.dumps(episode.state.get("output"))
            await self._finish(
                conn, instance_id, COMPLETED, output, final_history=new_history, custom_status=custom_status
            )
            return []
        launches = await self._schedule(conn, instance_id, generation, episode, now=now, new_history=new_history)
        await conn.execute(
            """UPDATE durable_instances SET status = %s, history = %s, custom_status = %s, updated_at = now()
                      WHERE instance_id = %s""",
            (RUNNING, Jsonb(new_history), custom_status, instance_id),
        )
        log.info(
            "%s: replayed %d events (gen %d), scheduled %s",
            instance_id,
            consumed,
            generation,
            ", ".join(f"{t.name}#{t.task_id}" for t in launches) or "no activity",
        )
        return launches

    def _episode(
        self, row: dict[str, Any], past: list[history.Event], events: list[history.Event]
    ) -> tuple[replay.Episode, int]:
        """Replay the new events; if the orchestrator continued as new, also how many events it took.

        Azure Storage carries the events after the continue-as-new point of a batch into the next
        generation (`EventBehaviourForContinueAsNew = Carryover`; DTFx `TaskOrchestrationContext.
        HandleEventRaisedEvent`), so the point is found by replaying ever longer prefixes.
        """
        handler = self._registry.orchestrators[row["name"]]
        episode = replay.run(handler, row["instance_id"], row["input"], [*past, *events])
        if episode.continue_as_new is None:
            return episode, len(events)
        for consumed in range(1, len(events)):
            earlier = replay.run(handler, row["instance_id"], row["input"], [*past, *events[:consumed]])
            if earlier.continue_as_new is not None:
                return earlier, consumed
        return episode, len(events)

    @staticmethod
    def _custom_status(row: dict[str, Any], episode: replay.Episode) -> tuple[str | None, str | None]:
        """The status this episode leaves (JSON), or the error the extension fails the orchestration with.

        As DTFx: each episode's status replaces the last, none clears it, except in a generation's
        first episode, which keeps the status its predecessor ended with (`carryOverStatus`).
        """
        status = episode.custom_status
        if status is None:
            continued = not row["history"] and row["generation"] > 0
            return (row["custom_status"] if continued else None), None
        serialized = json.dumps(status, separators=(",", ":"), ensure_ascii=False)
        size_kb = len(serialized.encode("utf-16-le")) // 1024
        if size_kb > MAX_CUSTOM_STATUS_KB:
            return None, (
                f"The UTF-16 size of the JSON-serialized payload must not exceed {MAX_CUSTOM_STATUS_KB:,} KB. "
                f"The current payload size is {size_kb:,} KB."
            )
        return serialized, None

    async def _schedule(
        self,
        conn: AsyncConnection[DictRow],
        instance_id: str,
        generation: int,
        episode: replay.Episode,
        *,
        now: datetime,
        new_history: list[history.Event],
    ) -> list[ActivityTask]:
        """Store the activities and timers the SDK waits on and this generation has not scheduled yet."""
        launches = []
        for call in episode.activities:
            task = ActivityTask(instance_id, generation, call.task_id, call.name, call.input, call.attempt)
            inserted = await conn.execute(
                """INSERT INTO durable_tasks (instance_id, generation, task_id, name, input, attempt)
                   VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                (task.instance_id, task.generation, task.task_id, task.name, task.input, task.attempt),
            )
            new_history.append(history.task_scheduled(now, call.task_id, call.name, call.input))
            if inserted.rowcount:
                launches.append(task)
        for timer in episode.timers:
            await conn.execute(
                """INSERT INTO durable_timers (instance_id, generation, timer_id, fire_at)
                   VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                (instance_id, generation, timer.timer_id, timer.fire_at),
            )
            new_history.append(history.timer_created(now, timer.timer_id, timer.fire_at))
        if episode.cancelled_timers:
            await conn.execute(
                "DELETE FROM durable_timers WHERE instance_id = %s AND generation = %s AND timer_id = ANY(%s)",
                (instance_id, generation, episode.cancelled_timers),
            )
        for timer_id in episode.stalled_retries:
            log.warning(
                "%s: retry timer #%d not created: the retry timeout has passed; as on Azure the orchestrator "
                "now waits forever on it",
                instance_id,
                timer_id,
            )
        return launches

    async def _continue_as_new(
        self,
        conn: AsyncConnection[DictRow],
        row: dict[str, Any],
        input_json: str | None,
        custom_status: str | None,
        carried: list[history.Event],
    ) -> None:
        """Start the next generation with a fresh history and the events raised after the restart point.

        Events the old execution received earlier and never consumed are dropped, as in Azure.
        """
        instance_id, generation = row["instance_id"], row["generation"] + 1
        await self._clear_pending(conn, instance_id)
        await conn.execute(
            """UPDATE durable_instances SET generation = %s, input = %s, history = '[]', custom_status = %s,
                      status = %s, updated_at = now() WHERE instance_id = %s""",
            (generation, input_json, custom_status, RUNNING, instance_id),
        )
        await self._append(conn, instance_id, generation, history.execution_started(_now(), row["name"], input_json))
        for event in carried:
            await self._append(conn, instance_id, generation, event)
        log.info("%s: continued as new (generation %d, %d events carried over)", instance_id, generation, len(carried))

    async def _finish(
        self,
        conn: AsyncConnection[DictRow],
        instance_id: str,
        status: str,
        output_json: str,
        *,
        final_history: list[history.Event],
        custom_status: str | None,
    ) -> None:
        await self._clear_pending(conn, instance_id)
        await conn.execute(
            """UPDATE durable_instances SET status = %s, output = %s, history = %s, custom_status = %s,
                      updated_at = now() WHERE instance_id = %s""",
            (status, output_json, Jsonb(final_history), custom_status, instance_id),
        )
        log.info("%s: %s", instance_id, status.lower())

    async def _clear_pending(self, conn: AsyncConnection[DictRow], instance_id: str) -> None:
        for table in ("durable_tasks", "durable_timers", "durable_inbox"):
            await conn.execute(f"DELETE FROM {table} WHERE instance_id = %s", (instance_id,))

    async def _append(
        self, conn: AsyncConnection[DictRow], instance_id: str, generation: int | None, event: history.Event
    ) -> None:
        await conn.execute(
            "INSERT INTO durable_inbox (instance_id, generation, event) VALUES (%s, %s, %s)",
            (instance_id, generation, Jsonb(event)),
        )

    # ---- activities and timers -------------------------------------------------------------

    async def _run_activity(self, task: ActivityTask) -> None:
        key = (task.instance_id, task.generation, task.task_id)
        if key in self._running:
            return
        self._running.add(key)
        try:
            event = await self._invoke_activity(task)
            async with self._pool.connection() as conn, conn.transaction():
                await self._lock_row(conn, task.instance_id)
                deleted = await conn.execute(
                    "DELETE FROM durable_tasks WHERE instance_id = %s AND generation = %s AND task_id = %s", key
                )
                if deleted.rowcount:
                    await self._append(conn, task.instance_id, task.generation, event)
        finally:
            self._running.discard(key)
        await self.step(task.instance_id)

    async def _invoke_activity(self, task: ActivityTask) -> history.Event:
        """Run the activity as the Functions host would: input decoded and output encoded by the SDK."""
        activity = self._registry.activities.get(task.name)
        started = _now()
        try:
            if activity is None:
                raise LookupError(f"no activity named {task.name!r}")
            argument = ActivityTriggerConverter.decode(
                Datum(type="string", value=task.input or "null"), trigger_metadata=None
            )
            await self._faults.before(task.name, task.attempt, argument)
            result = await self._within_function_timeout(task.name, activity, argument)
            encoded = ActivityTriggerConverter.encode(result, expected_type=None)
            elapsed = (_now() - started).total_seconds() * 1000
            log.info("%s: activity %s #%d done in %.0f ms", task.instance_id, task.name, task.task_id, elapsed)
            return history.task_completed(_now(), task.task_id, "null" if encoded.value is None else str(encoded.value))
        except Exception as error:
            log.warning(
                "%s: activity %s #%d (attempt %d) failed: %s",
                task.instance_id,
                task.name,
                task.task_id,
                task.attempt,
                error,
            )
            return history.activity_failed(_now(), task.task_id, task.name, error)

    async def _within_function_timeout(self, name: str, activity: Activity, argument: Any) -> Any:
        """Run the activity; past host.json's functionTimeout it fails as on Azure (and is retried).

        A synchronous activity cannot be stopped inside its thread: its late result is ignored.
        """
        kwargs = {activity.input_arg: argument}
        if activity.takes_context:
            kwargs["context"] = invocation.context(name)
        if inspect.iscoroutinefunction(activity.handler):
            running: Awaitable[Any] = activity.handler(**kwargs)
        else:
            running = asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(activity.handler, **kwargs)
            )
        try:
            return await asyncio.wait_for(
                running, None if math.isinf(self._function_timeout) else self._function_timeout
            )
        except TimeoutError:
            raise FunctionTimeout(
                f"Timeout value of {self._function_timeout:g} s was exceeded by function: Functions.{name}"
            ) from None

    async def _fire_timers(self) -> None:
        """Fire due timers, then sleep until the next one is due or the set of timers changes."""
        while True:
            self._timers_changed.clear()
            try:
                wait = await self._fire_due_timers()
            except Exception:
                log.exception("timer loop: retrying in %.0f s", TIMER_RETRY_SECONDS)
                wait = TIMER_RETRY_SECONDS
            with suppress(TimeoutError):
                await asyncio.wait_for(self._timers_changed.wait(), timeout=wait)

    async def _fire_due_timers(self) -> float | None:
        """Turn due timers into TimerFired events; seconds until the next one (None: no timers)."""
        async with self._pool.connection() as conn, conn.transaction():
            locked = await (
                await conn.execute(
                    """SELECT instance_id FROM durable_instances WHERE instance_id IN
                           (SELECT instance_id FROM durable_timers WHERE fire_at <= now())
                       ORDER BY instance_id FOR UPDATE"""
                )
            ).fetchall()
            due = await (
                await conn.execute(
                    """DELETE FROM durable_timers WHERE fire_at <= now() AND instance_id = ANY(%s)
                       RETURNING instance_id, generation, timer_id, fire_at""",
                    ([r["instance_id"] for r in locked],),
                )
            ).fetchall()
            for timer in due:
                await self._append(
                    conn,
                    timer["instance_id"],
                    timer["generation"],
                    history.timer_fired(_now(), timer["timer_id"], timer["fire_at"]),
                )
            upcoming = await (await conn.execute("SELECT min(fire_at) AS next FROM durable_timers")).fetchone()
        for instance_id in {t["instance_id"] for t in due}:
            log.info("%s: timer fired", instance_id)
            self._spawn(self.step(instance_id))
        if upcoming is None or upcoming["next"] is None:
            return None
        next_fire: datetime = upcoming["next"]
        return max(0.0, (next_fire - _now()).total_seconds())
