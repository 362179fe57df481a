"""The writer process of ``bench/gateway_bench.py``: log lines into Postgres via ``append_run_logs()``.

Two modes, both over ``lanes`` autocommit connections (as the writer SDK's lanes), each lane owning a
fixed share of the runs, so concurrent appends never wait on each other's run locks:

- ``paced``: a target rate in lines/s spread evenly over the runs. Runs are grouped ``group`` to a
  transaction (``select append_run_logs(r, l) from unnest(runs, batches)``, one statement, one
  commit); each group flushes every ``flush`` seconds, groups out of phase with each other, and a
  flush appends exactly the lines that became due since its last one (cumulative, so nothing
  drifts). ``group=1`` with ``flush=1/rate`` writes line by line, one transaction each.
- ``flat_out``: each lane appends ``batch`` lines to its next run, back to back, for ``duration``
  seconds: the write ceiling.

Every line of one statement carries the same message ``"<step>|<stamp>|<filler>"``, ``stamp`` being
``time.time_ns()`` taken just before the statement (which inserts and commits) is sent. The process
also records, per statement, stamp → commit returned (``commit_hist``: how much of the measured
latency is the write itself) and, in ``paced`` mode, flush time → stamp (``lag_hist``) and how many
lines were sent at most ``ON_TIME_LAG`` after their flush time (``on_time``): the writer (or the
database under it) falling behind its schedule, which the delivered latency alone would not show.
With one run per statement it also returns each statement's (stamp, commit returned) pair, so that
the clients can measure from the moment the commit was acknowledged too.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import string
import time
from multiprocessing.connection import Connection
from typing import Any

import orjson
import psycopg

from _gateway_kit import Histogram, serve_commands

#: A paced step's lines count as written on time when their statement started at most this late.
ON_TIME_LAG = 0.2
#: Paced single-run statements report (stamp, commit returned) pairs, up to this many.
MAX_COMMITS = 100_000

SQL_ONE = "select append_run_logs(%s::uuid, %s::jsonb)"
SQL_MANY = "select t.r::text, append_run_logs(t.r, t.l) from unnest(%s::uuid[], %s::jsonb[]) as t(r, l)"


def filler(size: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_letters + string.digits + "     ", k=max(size, 1)))


class Writer:
    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self._conns: list[psycopg.AsyncConnection[Any]] = []

    async def _connect(self, dsn: str, lanes: int) -> list[psycopg.AsyncConnection[Any]]:
        """``lanes`` connections, kept open across commands: a backend that exits inside a measuring
        window would take its CPU time out of the per-process accounting."""
        while len(self._conns) < lanes:
            self._conns.append(await psycopg.AsyncConnection.connect(dsn, autocommit=True))
        return self._conns[:lanes]

    def _payload(self, step: int, text: str, n: int) -> tuple[int, str]:
        stamp = time.time_ns()
        line = orjson.dumps({"level": "info", "message": f"{step}|{stamp}|{text}"})
        return stamp, (b"[" + b",".join([line] * n) + b"]").decode()

    async def _append(self, conn: psycopg.AsyncConnection[Any], runs: list[str], payload: str) -> None:
        if len(runs) == 1:
            cur = await conn.execute(SQL_ONE, (runs[0], payload), prepare=True)
            row = await cur.fetchone()
            assert row is not None
            self.last[runs[0]] = int(row[0])
        else:
            cur = await conn.execute(SQL_MANY, (runs, [payload] * len(runs)), prepare=True)
            for run, last in await cur.fetchall():
                self.last[run] = int(last)

    async def paced(
        self,
        dsn: str,
        runs: list[str],
        rate: float,
        duration: float,
        step: int,
        flush: float,
        group: int,
        lanes: int,
        message_bytes: int,
        seed: int,
    ) -> dict[str, Any]:
        """Write ``rate`` lines/s over ``runs`` for ``duration`` s; see the module docstring."""
        lanes = max(1, min(lanes, (len(runs) + group - 1) // group))
        conns = await self._connect(dsn, lanes)
        text = filler(message_bytes - 30, seed)
        groups = [runs[i : i + group] for i in range(0, len(runs), group)]
        per_run = rate / len(runs)
        written = [0] * len(groups)
        queues: list[asyncio.Queue[tuple[int, int, float] | None]] = [asyncio.Queue() for _ in conns]
        commit_hist, lag_hist = Histogram(), Histogram()
        lines = statements = on_time = 0
        commits: list[tuple[int, int]] | None = [] if group == 1 else None
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.05
        end = t0 + duration
        wall_start = time.time_ns() + 50_000_000
        last_commit = wall_start

        async def lane(i: int) -> None:
            nonlocal lines, statements, last_commit, on_time
            conn, queue = conns[i], queues[i]
            while (item := await queue.get()) is not None:
                g, n, due = item
                lag = loop.time() - due
                lag_hist.add(int(lag * 1e6))
                stamp, payload = self._payload(step, text, n)
                await self._append(conn, groups[g], payload)
                done = time.time_ns()
                commit_hist.add((done - stamp) // 1000)
                if commits is not None and len(commits) < MAX_COMMITS:
                    commits.append((stamp, done))
                lines += n * len(groups[g])
                if lag <= ON_TIME_LAG:
                    on_time += n * len(groups[g])
                statements += 1
                last_commit = done

        workers = [asyncio.create_task(lane(i)) for i in range(len(conns))]
        ng = len(groups)
        heap = [(t0 + flush * g / ng, g) for g in range(ng)]
        heapq.heapify(heap)
        try:
            while heap:
                t, g = heapq.heappop(heap)
                delay = t - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                # Each group keeps its phase; its first flush at or after the end writes the rest.
                due = int(per_run * (min(t, end) - t0) + 1e-9)
                n = due - written[g]
                if n > 0:
                    written[g] = due
                    queues[g % len(conns)].put_nowait((g, n, t))
                if t < end:
                    heapq.heappush(heap, (t + flush, g))
            for q in queues:
                q.put_nowait(None)
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
        elapsed = (last_commit - wall_start) / 1e9
        return {
            "lines": lines,
            "due": int(per_run * duration) * len(runs),
            "on_time": on_time,
            "statements": statements,
            "seconds": elapsed,
            "started_ns": wall_start,
            "rate": lines / elapsed if elapsed > 0 else 0.0,
            "per_run": {run: written[i // group] for i, run in enumerate(runs)},
            "commit_hist": commit_hist.sparse(),
            "lag_hist": lag_hist.sparse(),
            "commits": commits,
        }

    async def flat_out(
        self,
        dsn: str,
        runs: list[str],
        duration: float,
        step: int,
        lanes: int,
        batch: int,
        message_bytes: int,
        seed: int,
    ) -> dict[str, Any]:
        """Append ``batch``-line batches as fast as ``lanes`` connections go, for ``duration`` s."""
        conns = await self._connect(dsn, lanes)
        text = filler(message_bytes - 30, seed)
        commit_hist = Histogram()
        lines = statements = 0
        t0 = time.monotonic()
        deadline = t0 + duration

        async def lane(i: int) -> None:
            nonlocal lines, statements
            own = runs[i :: len(conns)]
            k = 0
            while time.monotonic() < deadline:
                run = own[k % len(own)]
                k += 1
                stamp, payload = self._payload(step, text, batch)
                await self._append(conns[i], [run], payload)
                commit_hist.add((time.time_ns() - stamp) // 1000)
                lines += batch
                statements += 1

        await asyncio.gather(*(lane(i) for i in range(len(conns))))
        elapsed = time.monotonic() - t0
        return {
            "lines": lines,
            "statements": statements,
            "seconds": elapsed,
            "rate": lines / elapsed,
            "commit_hist": commit_hist.sparse(),
        }

    async def last_seqs(self, runs: list[str]) -> dict[str, int]:
        return {run: self.last.get(run, 0) for run in runs}


def writer_main(conn: Connection) -> None:
    writer = Writer()
    serve_commands(conn, {"paced": writer.paced, "flat_out": writer.flat_out, "last_seqs": writer.last_seqs})
