"""The background whole-log search indexer: ``meshlogs.index_run_logs()`` called every few seconds.

Trigram-indexing each line as it is appended would cost the writers about 80 % of their throughput
(migration 0012 has the measurements), so ``meshlogs serve`` indexes complete 200-line chunks behind
the writers instead. Search never depends on it: lines not indexed yet are scanned directly. The
database function takes an advisory lock, so several gateways on one database share the work without
doing it twice; each call is bounded (``BATCH_LINES`` lines, one transaction), and while catching up
it works at most a third of the time, so a backlog never takes the database from the writers.

Live delivery comes first: the busier the replication stream (rows per second the gateway sees),
the longer the pauses, down to a 5 % duty cycle at 20,000 rows/s and above. Measured on 2 cores, a
backlog indexed at a third of the time took 0.15-0.3 Postgres cores from the writers and the
walsender, and a fan-out of 40,000 msgs/s then missed its p95 (docs/benchmarks.md §2). The index
catches up when the writers slow down; until then search scans the lines not indexed yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from meshlogs.server.keys import POOL, SETTINGS

__all__ = ["BATCH_LINES", "SEARCH_INDEXER", "SearchIndexer", "add_search_indexer", "pause_factor"]

log = logging.getLogger(__name__)

#: Lines indexed per call: one transaction of about 40 ms on a 2-core machine, short enough not to
#: hold a core away from the writers and the replication stream in one stretch.
BATCH_LINES = 4_000
#: While catching up with no live writes, pause this many times the last call's duration.
DUTY_PAUSE = 2.0
#: Each this many rows/s of live writes adds another ``DUTY_PAUSE`` to the pause ...
BUSY_ROWS_PER_S = 2_000.0
#: ... up to this factor: a 5 % duty cycle.
MAX_PAUSE = 19.0


def pause_factor(rows_per_s: float) -> float:
    """How many times the last call's duration to pause, given the live write rate.

    0 rows/s gives ``DUTY_PAUSE`` (a third of the time indexing), 2,000 rows/s twice that,
    20,000 rows/s and more ``MAX_PAUSE`` (5 %)."""
    rate = max(0.0, rows_per_s)
    return min(MAX_PAUSE, DUTY_PAUSE * (1.0 + rate / BUSY_ROWS_PER_S))


class SearchIndexer:
    """Calls the indexer every ``interval`` seconds, and back to back while there is a backlog."""

    def __init__(
        self, pool: AsyncConnectionPool, interval: float, live_rows: Callable[[], int] | None = None
    ) -> None:
        """``live_rows`` returns a running count of rows seen on the replication stream (the
        gateway's), which sets how much room the indexer leaves to live traffic."""
        self._pool = pool
        self._interval = interval
        self._live_rows = live_rows or (lambda: 0)
        self._task: asyncio.Task[None] | None = None
        self.lines_indexed = 0
        self.failures = 0
        #: Share of the time spent indexing while catching up, as last set (1.0 before any pause).
        self.duty = 1.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="meshlogs-search-index")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def index_once(self) -> int:
        """One bounded call; returns the lines it indexed."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute("select meshlogs.index_run_logs(%s)", (BATCH_LINES,))
            row = await cur.fetchone()
        done = int(row[0]) if row is not None and row[0] is not None else 0
        self.lines_indexed += done
        return done

    async def _run(self) -> None:
        while True:
            try:
                mark, rows = time.monotonic(), self._live_rows()
                while True:
                    started = time.monotonic()
                    if await self.index_once() < BATCH_LINES:
                        break
                    # A backlog: keep going, but at most a third of the time, less under live
                    # load, so that writers and delivery keep the database (search is correct
                    # without the index).
                    now, count = time.monotonic(), self._live_rows()
                    factor = pause_factor((count - rows) / max(now - mark, 1e-3))
                    mark, rows = now, count  # the next rate spans this pause and the next call
                    self.duty = 1.0 / (1.0 + factor)
                    await asyncio.sleep(max(0.02, factor * (now - started)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be restarting; search still works unindexed
                self.failures += 1
                log.warning("search indexer: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self._interval)


def _live_rows(app: web.Application) -> int:
    """Row changes the gateway has received from the WAL so far (0 without a gateway)."""
    from meshlogs.realtime.gateway import GATEWAY  # the gateway is optional in this app

    gateway = app.get(GATEWAY)
    return gateway.hub.stats.changes if gateway is not None else 0


SEARCH_INDEXER = web.AppKey("meshlogs.search_indexer", SearchIndexer)


def add_search_indexer(app: web.Application) -> None:
    """Run the indexer while the app runs (after the pool opens), unless the interval is 0."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        interval = app[SETTINGS].search_index_interval
        if interval <= 0:
            yield
            return
        indexer = app[SEARCH_INDEXER] = SearchIndexer(app[POOL], interval, lambda: _live_rows(app))
        indexer.start()
        yield
        await indexer.close()

    app.cleanup_ctx.append(ctx)
