"""The background whole-log search indexer: ``meshlogs.index_run_logs()`` called every few seconds.

Trigram-indexing each line as it is appended would cost the writers about 80 % of their throughput
(migration 0012 has the measurements), so ``meshlogs serve`` indexes complete 200-line chunks behind
the writers instead. Search never depends on it: lines not indexed yet are scanned directly. The
database function takes an advisory lock, so several gateways on one database share the work without
doing it twice; each call is bounded (``BATCH_LINES`` lines, one transaction), and while catching up
it works at most a third of the time, so a backlog never takes the database from the writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from meshlogs.server.keys import POOL, SETTINGS

__all__ = ["BATCH_LINES", "SEARCH_INDEXER", "SearchIndexer", "add_search_indexer"]

log = logging.getLogger(__name__)

#: Lines indexed per call: one transaction of about 40 ms on a 2-core machine, short enough not to
#: hold a core away from the writers and the replication stream in one stretch.
BATCH_LINES = 4_000
#: While catching up, pause this many times the last call's duration before the next one.
DUTY_PAUSE = 2.0


class SearchIndexer:
    """Calls the indexer every ``interval`` seconds, and back to back while there is a backlog."""

    def __init__(self, pool: AsyncConnectionPool, interval: float) -> None:
        self._pool = pool
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self.lines_indexed = 0
        self.failures = 0

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
                while True:
                    started = time.monotonic()
                    if await self.index_once() < BATCH_LINES:
                        break
                    # A backlog: keep going, but at most a third of the time, so that writers going
                    # flat out keep most of the database (search is correct without the index).
                    await asyncio.sleep(max(0.02, DUTY_PAUSE * (time.monotonic() - started)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be restarting; search still works unindexed
                self.failures += 1
                log.warning("search indexer: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self._interval)


SEARCH_INDEXER = web.AppKey("meshlogs.search_indexer", SearchIndexer)


def add_search_indexer(app: web.Application) -> None:
    """Run the indexer while the app runs (after the pool opens), unless the interval is 0."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        interval = app[SETTINGS].search_index_interval
        if interval <= 0:
            yield
            return
        indexer = app[SEARCH_INDEXER] = SearchIndexer(app[POOL], interval)
        indexer.start()
        yield
        await indexer.close()

    app.cleanup_ctx.append(ctx)
