"""Change capture: commit → receipt latency and rows/s, per replication transport, on a fresh Postgres.

Reproduce (about a minute on a 2-core machine)::

    .venv/bin/python bench/capture_bench.py
    .venv/bin/python bench/capture_bench.py --transport psycopg3 --count 2000 --rate 500 --rounds 3

A fresh embedded Postgres (PG 18, temporary data dir, deleted afterwards) gets the migrations and one
run. The writer is a separate process (``spawn``), so it never shares the GIL with the consumer; both
stamp ``time.monotonic_ns()`` (CLOCK_MONOTONIC, system-wide), so stamps compare directly.

Scenarios, each per transport:

- ``latency``: ``--count`` single-line ``append_run_logs()`` calls (autocommit) at ``--rate`` per
  second; latency = consumer receives the Transaction − writer's COMMIT returned. It can be slightly
  negative: the walsender may send before the client has read the commit acknowledgement.
- ``one big tx``: ``--batch-rows`` lines appended in ONE transaction (calls of 10,000 lines, the
  function's limit). ``stream`` = rows / (last receipt − first receipt), ``end to end`` = rows /
  (last receipt − writer start), ``tail`` = last receipt − COMMIT returned.
- ``many tx``: ``--batch-rows`` lines as transactions of 100 lines, back to back.

Throughput rows also show ``loop lag p99 ms`` (how late a 1 ms timer on the consumer's event loop
fires meanwhile: what fan-out on the same loop would suffer) and ``cpu µs/row`` (the consumer
process' CPU time per row, all threads: the capture cost, robust to load from other processes).

Transports (both feed the same pure decoders, so only the I/O differs):

- ``psycopg3``: :class:`meshlogs.capture.ReplicationSource` itself — libpq COPY BOTH calls on the
  event loop (``loop.add_reader``).
- ``psycopg2``: ``LogicalReplicationConnection`` in a dedicated thread decoding into the same
  ``TxBuilder`` and handing transactions to the loop with ``call_soon_threadsafe`` (the alternative
  POSTGRES.md §3a measured), implemented here only for the comparison.

The table shows the median over ``--rounds`` rounds. Absolute numbers vary by about ±30% on a shared
2-core box; compare transports within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import select
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import psycopg2
import psycopg2.extras

from meshlogs.capture import ReplicationSource, Transaction
from meshlogs.capture import pgoutput as pgoutput_mod
from meshlogs.capture.txbuilder import TxBuilder
from meshlogs.db.embedded import start_embedded
from meshlogs.db.migrate import apply_migrations

MESSAGE = "x" * 100
WAIT = 120.0


# -- writer (separate process) ---------------------------------------------------------------------


def write_steady(url: str, run: str, count: int, rate: float) -> list[tuple[int, int]]:
    """Single-line appends at ``rate``/s; returns (seq, commit-returned ns)."""
    out = []
    line = json.dumps([{"level": "info", "message": MESSAGE}])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select 1")
        start = time.monotonic()
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            row = conn.execute("select append_run_logs(%s, %s::jsonb)", (run, line)).fetchone()
            out.append((int(row[0]) if row else 0, time.monotonic_ns()))
    return out


def write_batch(url: str, run: str, rows: int, per_tx: int) -> tuple[int, int]:
    """``rows`` lines in transactions of ``per_tx`` lines; returns (start ns, last commit ns)."""
    chunk = json.dumps([{"level": "info", "message": MESSAGE} for _ in range(min(per_tx, 10_000))])
    with psycopg.connect(url) as conn:
        conn.execute("select 1")
        conn.commit()
        start = time.monotonic_ns()
        written = 0
        while written < rows:
            in_tx = 0
            while in_tx < per_tx and written < rows:
                conn.execute("select append_run_logs(%s, %s::jsonb)", (run, chunk))
                n = min(per_tx, 10_000)
                in_tx += n
                written += n
            conn.commit()
        return start, time.monotonic_ns()


# -- consumers -------------------------------------------------------------------------------------


class Psycopg2Source:
    """The thread-based alternative: psycopg2 replication in a thread, same decoders."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._stop = threading.Event()
        self._queue: asyncio.Queue[Transaction] = asyncio.Queue(64)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, args=(loop,), daemon=True)
        self._thread.start()
        await loop.run_in_executor(None, self._ready.wait, 30)
        if self._error:
            raise self._error

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            conn = psycopg2.connect(
                self._dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection
            )
            cur = conn.cursor()
            slot = "bench2_" + uuid.uuid4().hex[:8]
            cur.execute(f"CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput")
            cur.start_replication(
                slot_name=slot,
                decode=False,
                options={"proto_version": "1", "publication_names": "supabase_realtime,meshlogs_authz"},
            )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        builder = TxBuilder()
        flushed = 0
        last_feedback = time.monotonic()
        try:
            while not self._stop.is_set():
                msg = cur.read_message()
                if msg is None:
                    select.select([cur], [], [], 0.2)
                    continue
                payload = msg.payload
                for tx in builder.receive(pgoutput_mod.decode(payload), len(payload)):
                    fut = asyncio.run_coroutine_threadsafe(self._queue.put(tx), loop)
                    fut.result()  # backpressure: the thread waits while the queue is full
                    if tx.final:
                        flushed = tx.end_lsn.value
                if flushed and time.monotonic() - last_feedback > 1.0:
                    cur.send_feedback(flush_lsn=flushed)  # type: ignore[no-untyped-call]
                    last_feedback = time.monotonic()
        finally:
            conn.close()

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)

    def __aiter__(self) -> AsyncIterator[Transaction]:
        return self

    async def __anext__(self) -> Transaction:
        return await self._queue.get()


async def open_source(transport: str, url: str) -> Any:
    source: Any = ReplicationSource(url) if transport == "psycopg3" else Psycopg2Source(url)
    await source.start()
    return source


async def receive_until(source: Any, run: str, last_seq: int, stamps: dict[int, int]) -> None:
    """Stamp the receipt of every seq of ``run`` until ``last_seq`` arrived."""
    while True:
        event = await asyncio.wait_for(anext(source), WAIT)
        if not isinstance(event, Transaction):
            raise RuntimeError(f"unexpected {event!r}")
        now = time.monotonic_ns()
        for change in event.changes:
            record = change.record
            if record is not None and change.table == "run_logs" and record["run_id"] == run:
                stamps[record["seq"]] = now
                if record["seq"] >= last_seq:
                    return


# -- scenarios -------------------------------------------------------------------------------------


def new_run(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        project = conn.execute(
            "insert into projects (owner, name) values (gen_random_uuid(), 'bench') returning id"
        ).fetchone()
        assert project is not None
        workflow = conn.execute(
            "insert into workflow_definitions (project_id, slug, definition)"
            " values (%s, %s, '{}') returning id",
            (project[0], "b" + uuid.uuid4().hex[:8]),
        ).fetchone()
        assert workflow is not None
        run = conn.execute(
            "insert into workflow_runs (project_id, workflow_id, status) values (%s, %s, 'running')"
            " returning id::text",
            (project[0], workflow[0]),
        ).fetchone()
        assert run is not None
        return str(run[0])


async def latency(
    pool: concurrent.futures.Executor, transport: str, url: str, count: int, rate: float
) -> dict[str, float]:
    run = new_run(url)
    source = await open_source(transport, url)
    stamps: dict[int, int] = {}
    try:
        loop = asyncio.get_running_loop()
        writer = loop.run_in_executor(pool, write_steady, url, run, count, rate)
        await receive_until(source, run, count, stamps)
        commits = await asyncio.wait_for(writer, WAIT)
    finally:
        await source.close()
    lat = sorted((stamps[seq] - t) / 1e6 for seq, t in commits)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": lat[-1]}


async def measure_loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    """How late a 1 ms timer fires: what other tasks on the loop (fan-out) would suffer."""
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(0.001)
        lags.append((time.monotonic() - before - 0.001) * 1000)


async def throughput(
    pool: concurrent.futures.Executor, transport: str, url: str, rows: int, per_tx: int
) -> dict[str, float]:
    run = new_run(url)
    source = await open_source(transport, url)
    stamps: dict[int, int] = {}
    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(measure_loop_lag(lags, stop))
    cpu = time.process_time()
    try:
        loop = asyncio.get_running_loop()
        writer = loop.run_in_executor(pool, write_batch, url, run, rows, per_tx)
        await receive_until(source, run, rows, stamps)
        start, committed = await asyncio.wait_for(writer, WAIT)
        cpu = time.process_time() - cpu
    finally:
        stop.set()
        await ticker
        await source.close()
    first, last = min(stamps.values()), max(stamps.values())
    return {
        "stream": rows / max(1e-9, (last - first) / 1e9),
        "end to end": rows / ((last - start) / 1e9),
        "tail ms": (last - committed) / 1e6,
        "loop lag p99 ms": statistics.quantiles(lags, n=100, method="inclusive")[98],
        "cpu µs/row": cpu / rows * 1e6,
    }


def median_of(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


async def main_async(args: argparse.Namespace, url: str) -> list[tuple[str, str, dict[str, float]]]:
    transports = ["psycopg3", "psycopg2"] if args.transport == "both" else [args.transport]
    ctx = multiprocessing.get_context("spawn")
    rows: list[tuple[str, str, dict[str, float]]] = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        await asyncio.get_running_loop().run_in_executor(pool, time.sleep, 0)  # warm the worker
        scenarios: list[tuple[str, Callable[[str], Any]]] = [
            (
                f"latency, {args.count} × 1 line @ {args.rate:g}/s (ms)",
                lambda t: latency(pool, t, url, args.count, args.rate),
            ),
            (
                f"one big tx, {args.batch_rows} lines",
                lambda t: throughput(pool, t, url, args.batch_rows, args.batch_rows),
            ),
            (
                f"many tx, {args.batch_rows} lines / 100 per tx",
                lambda t: throughput(pool, t, url, args.batch_rows, 100),
            ),
        ]
        for name, scenario in scenarios:
            results: dict[str, list[dict[str, float]]] = {t: [] for t in transports}
            for _ in range(args.rounds):  # interleaved, so load from elsewhere hits both alike
                for transport in transports:
                    results[transport].append(await scenario(transport))
            rows += [(name, transport, median_of(results[transport])) for transport in transports]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=["psycopg3", "psycopg2", "both"], default="both")
    parser.add_argument("--count", type=int, default=1000, help="single-line appends for latency")
    parser.add_argument("--rate", type=float, default=200.0, help="appends per second for latency")
    parser.add_argument("--batch-rows", type=int, default=50_000, help="lines for the throughput scenarios")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per scenario; the median is shown")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="capture-bench-") as tmp:
        server = start_embedded(Path(tmp), cleanup="delete")
        try:
            apply_migrations(server.url)
            rows = asyncio.run(main_async(args, server.url))
        finally:
            with contextlib.suppress(Exception):
                server.stop()

    print(f"{'scenario':<46} {'transport':<9}  result")
    for name, transport, result in rows:
        shown = "  ".join(
            f"{key} {value:,.3f}"
            if "ms" in name or "ms" in key
            else f"{key} {value:,.1f}"
            if "/row" in key
            else f"{key} {value:,.0f} rows/s"
            for key, value in result.items()
        )
        print(f"{name:<46} {transport:<9}  {shown}")


if __name__ == "__main__":
    main()
