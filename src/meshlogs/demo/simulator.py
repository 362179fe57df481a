"""Simulated MeshHook runs for ``meshlogs demo``: runs start, log through the writer SDK, and finish.

- A few **webhook runs** at a time (:func:`~meshlogs.demo.scenarios.pipeline_run`), sharing one pacer
  of ``rate`` lines/s; a new one starts a moment after each finishes, so runs keep coming.
- One **long run** at a time (:func:`~meshlogs.demo.scenarios.export_run`, 100,000+ lines) at its own
  ``long_run_rate``, then a pause, then the next.
- Lines go through :class:`~meshlogs.writer.AsyncLogWriter` with the workflows' secrets registered,
  so the secrets the scenarios echo are stored as ``***``.
- A run's final status is set (as the superuser, like MeshHook's worker) only after its lines are
  flushed: whoever sees the status change can backfill and get every line.
- :meth:`Simulator.seed_history` plays finished runs instantly, with timestamps from a virtual clock
  in the past, so a fresh demo opens on a console with history (including one long run).

CPU: the pacers bound the work (a few hundred lines/s by default); the writer batches them, so the
database sees a handful of round trips per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from meshlogs.demo.scenarios import Action, Finish, Line, Pause, export_run, pipeline_run
from meshlogs.demo.seed import DemoWorkflow, DemoWorld
from meshlogs.writer import AsyncLogWriter

__all__ = ["Pacer", "Simulator", "SimulatorConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatorConfig:
    """How much the demo simulates.

    Attributes:
        rate: lines per second, at most, across the webhook runs.
        runs: webhook runs in flight at a time.
        long_run_lines: lines of each long run (0: no long runs).
        long_run_rate: lines per second of the long run.
        long_run_pause: seconds between one long run's end and the next one's start.
        history: on a fresh database, seed finished runs (one of them long) before going live.
        history_runs: finished webhook runs seeded per workflow.
        time_scale: multiplies every simulated wait (tests use a small value).
        seed: random seed (None: different every start).
    """

    rate: float = 200.0
    runs: int = 4
    long_run_lines: int = 120_000
    long_run_rate: float = 500.0
    long_run_pause: float = 60.0
    history: bool = True
    history_runs: int = 4
    time_scale: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.long_run_rate <= 0:
            raise ValueError("rates must be positive")
        if self.runs < 0 or self.long_run_lines < 0 or self.history_runs < 0:
            raise ValueError("counts must be >= 0")
        if self.time_scale < 0 or self.long_run_pause < 0:
            raise ValueError("times must be >= 0")


class Pacer:
    """At most ``rate`` events per second, in bursts of at most ``burst`` (a token bucket)."""

    def __init__(self, rate: float, burst: float = 0.05) -> None:
        self.interval = 1.0 / rate
        self.slack = burst  # seconds of credit: sleep only once the debt exceeds this
        self._next = time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self._next = max(self._next, now - self.slack) + self.interval
        debt = self._next - now
        if debt > self.slack:
            await asyncio.sleep(debt - self.slack)


_INSERT_RUN = (
    "insert into workflow_runs (project_id, workflow_id, status, started_at)"
    " values (%s, %s, 'running', coalesce(%s, now())) returning id::text"
)
_FINISH_RUN = (
    "update workflow_runs set status = %s, finished_at = coalesce(%s, now())"
    " where id = %s and status in ('running', 'paused')"
)


class Simulator:
    """Plays demo runs into the database until stopped.

    Args:
        database_url: a superuser (or service_role) URL: runs are inserted and updated directly.
        world: the seeded demo (workflows, secrets).
        config: rates and sizes.
    """

    def __init__(self, database_url: str, world: DemoWorld, config: SimulatorConfig | None = None) -> None:
        self.database_url = database_url
        self.world = world
        self.config = config or SimulatorConfig()
        self.rng = random.Random(self.config.seed)
        self.active: dict[str, DemoWorkflow] = {}  # live runs
        self.long_run_id: str | None = None
        self.finished: dict[str, int] = {"succeeded": 0, "failed": 0, "canceled": 0}
        self._writer: AsyncLogWriter | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._db_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = asyncio.Event()
        self._pacer = Pacer(self.config.rate)
        self._long_pacer = Pacer(self.config.long_run_rate)
        self._webhook_flows = [w for w in world.workflows if not w.spec.long]
        self._long_flows = [w for w in world.workflows if w.spec.long]

    # -- lifecycle ----------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the writer and the status connection."""
        self._writer = AsyncLogWriter(
            self.database_url,
            secrets=self.world.secrets,
            on_error=lambda exc: log.warning("demo writer: %s", exc),
            application_name="meshlogs-demo",
        )
        await self._writer.__aenter__()
        self._conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)

    async def start(self) -> None:
        """Start the live runs (webhook slots and the long-run loop) in the background."""
        loop = asyncio.get_running_loop()
        for index in range(self.config.runs if self._webhook_flows else 0):
            self._tasks.append(loop.create_task(self._webhook_slot(index), name=f"demo-slot-{index}"))
        if self._long_flows and self.config.long_run_lines > 0:
            self._tasks.append(loop.create_task(self._long_runs(), name="demo-long-runs"))

    async def wait_for_runs(self, count: int, timeout: float) -> list[str]:
        """Wait (at most ``timeout`` s) until ``count`` runs are live; return the live run ids."""
        deadline = time.monotonic() + timeout
        while len(self.active) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return list(self.active)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop every run: live ones are marked canceled (with a last line); bounded by ``timeout``."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        deadline = time.monotonic() + timeout
        writer, conn = self._writer, self._conn
        self._writer = self._conn = None
        try:
            if writer is not None:
                for run_id in list(self.active):
                    with contextlib.suppress(Exception):
                        await writer.write(
                            run_id, "demo stopped (Ctrl-C): run canceled", level="warn", step="terminate"
                        )
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.flush(), max(0.1, deadline - time.monotonic()))
            if conn is not None:
                for run_id in list(self.active):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(
                            conn.execute(_FINISH_RUN, ("canceled", None, run_id)),
                            max(0.1, deadline - time.monotonic()),
                        )
                self.active.clear()
        finally:
            if writer is not None:
                with contextlib.suppress(Exception):
                    await writer.aclose(timeout=max(0.1, deadline - time.monotonic()))
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    # -- history ------------------------------------------------------------------------------------

    async def seed_history(self) -> int:
        """Play finished runs from the past, instantly; returns how many runs were written."""
        now = _dt.datetime.now(_dt.UTC)
        plays = []
        for workflow in self._webhook_flows:
            for i in range(self.config.history_runs):
                start = now - _dt.timedelta(minutes=10 + 37 * i + self.rng.uniform(0, 30))
                rng = random.Random(self.rng.random())
                plays.append(self._play(workflow, pipeline_run(workflow.spec, rng), None, start))
        for workflow in self._long_flows[:1]:
            if self.config.long_run_lines > 0:
                rng = random.Random(self.rng.random())
                start = now - _dt.timedelta(hours=6)
                plays.append(
                    self._play(
                        workflow, export_run(workflow.spec, rng, self.config.long_run_lines), None, start
                    )
                )
        await asyncio.gather(*plays)
        return len(plays)

    # -- live runs ----------------------------------------------------------------------------------

    async def _webhook_slot(self, index: int) -> None:
        await asyncio.sleep(index * 0.8 * self.config.time_scale)
        while True:
            workflow = self.rng.choice(self._webhook_flows)
            rng = random.Random(self.rng.random())
            await self._play_safely(workflow, pipeline_run(workflow.spec, rng), self._pacer)
            await asyncio.sleep(self.rng.uniform(0.5, 4.0) * self.config.time_scale)

    async def _long_runs(self) -> None:
        while True:
            workflow = self.rng.choice(self._long_flows)
            rng = random.Random(self.rng.random())
            actions = export_run(workflow.spec, rng, self.config.long_run_lines)
            await self._play_safely(workflow, actions, self._long_pacer, long=True)
            await asyncio.sleep(self.config.long_run_pause * self.config.time_scale)

    async def _play_safely(
        self, workflow: DemoWorkflow, actions: Iterator[Action], pacer: Pacer, *, long: bool = False
    ) -> None:
        try:
            await self._play(workflow, actions, pacer, None, long=long)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away, a line was refused...: keep simulating
            log.warning("demo run of %s failed: %s", workflow.spec.slug, exc)
            await asyncio.sleep(5)

    async def _play(
        self,
        workflow: DemoWorkflow,
        actions: Iterator[Action],
        pacer: Pacer | None,
        start: _dt.datetime | None,
        *,
        long: bool = False,
    ) -> None:
        """Create a run, write its lines (paced, or instantly on a virtual clock), then finish it."""
        writer = self._writer
        assert writer is not None, "open() first"
        run_id = await self._execute_returning(_INSERT_RUN, (workflow.project_id, workflow.id, start))
        clock = start
        status = "succeeded"
        if start is None:
            self.active[run_id] = workflow
            if long:
                self.long_run_id = run_id
        try:
            for action in actions:
                if isinstance(action, Line):
                    if pacer is not None:
                        await pacer.take()
                    await writer.write(
                        run_id,
                        action.message,
                        level=action.level,
                        step=action.step,
                        attrs=action.attrs,
                        ts=clock,
                    )
                    if clock is not None:
                        clock += _dt.timedelta(microseconds=self.rng.randrange(200, 3000))
                elif isinstance(action, Pause):
                    if clock is not None:
                        clock += _dt.timedelta(seconds=action.seconds)
                    else:
                        await asyncio.sleep(action.seconds * self.config.time_scale)
                elif isinstance(action, Finish):
                    status = action.status
            await writer.flush()  # every line is stored before anyone can see the run finish
            await self._execute(_FINISH_RUN, (status, clock, run_id))
            self.finished[status] = self.finished.get(status, 0) + 1
        finally:
            if start is None and not _cancelling():
                self.active.pop(run_id, None)
                if long:
                    self.long_run_id = None

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        async with self._db_lock:
            assert self._conn is not None
            await self._conn.execute(sql, params)

    async def _execute_returning(self, sql: str, params: tuple[Any, ...]) -> str:
        async with self._db_lock:
            assert self._conn is not None
            row = await (await self._conn.execute(sql, params)).fetchone()
        assert row is not None
        return str(row[0])


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
