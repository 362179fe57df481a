"""Writer SDK throughput: lines/s into a fresh embedded Postgres, against per-line and COPY baselines.

Reproduce (about a minute on a 2-core machine)::

    .venv/bin/python bench/writer_bench.py
    .venv/bin/python bench/writer_bench.py --lines 300000 --runs 1,10,100 --rounds 3

Every scenario writes ``--lines`` lines of ``--message-bytes`` bytes (fixed seed, so the same text every
time) through :class:`meshlogs.writer.AsyncLogWriter` with its default settings (unless overridden)
and counts from the first ``write()`` to the end of ``aclose()``, i.e. until the database confirmed
every line. It then checks that each run holds exactly seq 1..N in write order. Baselines in the same
run, same server, same line shape:

- ``per-line append``: ``append_run_logs()`` with a one-line array per call, back to back on one
  connection, as a naive integration would do (a few thousand lines: it is slow);
- ``COPY run_logs``: psycopg ``COPY`` of the same rows straight into the table with seqs made up by
  the client; this skips the append function, its checks and its seq reservation, so it is the
  ceiling of what the table itself takes, not a legal write path.

The table reports lines/s, the median of ``--rounds`` rounds, and the ratio to the per-line baseline.
Ratios are what to compare across machines; absolute numbers vary by about ±30% on a shared 2-core box.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import string
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psutil
import psycopg
from psycopg import sql

from meshlogs.db.embedded import start_embedded
from meshlogs.db.migrate import apply_migrations
from meshlogs.writer import AsyncLogWriter


class CpuMeter:
    """CPU seconds used by this process and by the whole Postgres server (every backend and helper).

    Wall-clock rates swing by ±30% on a shared 2-core machine; CPU seconds per line do not, and they
    say what a line costs the client and the database. Backends that exit are reaped by the
    postmaster, so their time shows up in its ``children_*`` counters.
    """

    def __init__(self, pgdata: Path) -> None:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        self._postmaster = psutil.Process(pid)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until backends that just lost their client have exited and been reaped.

        Until then their CPU time is in neither a live child nor the postmaster's ``children_*``.
        """
        deadline = time.monotonic() + timeout
        time.sleep(0.2)
        while time.monotonic() < deadline:
            try:
                zombies = [c for c in self._postmaster.children() if c.status() == psutil.STATUS_ZOMBIE]
            except psutil.NoSuchProcess:
                zombies = [None]  # raced with an exit: look again
            if not zombies:
                return
            time.sleep(0.02)

    def sample(self) -> tuple[float, float]:
        t = self._postmaster.cpu_times()
        db = t.user + t.system + t.children_user + t.children_system
        for child in self._postmaster.children():
            try:
                c = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            db += c.user + c.system
        return time.process_time(), db


_WORDS = (  # noqa: SIM905 (one readable string beats 80 lines of list literal)
    "GET POST PUT /api/v1/runs /api/v1/users /healthz status=200 status=201 status=404 status=500 took ms "
    "request response fetched rows from table users orders events job step build test deploy started "
    "finished retrying attempt connected to database cache hit miss key value worker pool queue size "
    "processing batch of items uploaded artifact sha256 commit branch main release tag docker image "
    "pulling layer extracting container exited with code 0 1 warning error info debug npm install added "
    "packages in audited found vulnerabilities compiling module webpack bundle emitted chunk"
).split()


def make_messages(n: int, size: int, seed: int, text: str) -> list[str]:
    """``n`` messages of ``size`` ASCII bytes from a pool of 1,000, fixed by ``seed``.

    ``words``: log-like lines (words, numbers, hex ids), what a worker really writes. ``random``:
    random letters and digits, the worst case for the trigram search index on run_logs.message
    (nearly every trigram of every line is new).
    """
    rng = random.Random(seed)
    pool = []
    for _ in range(1000):
        if text == "random":
            msg = "".join(rng.choices(string.ascii_letters + string.digits + "      ", k=size))
        else:
            parts: list[str] = []
            while sum(len(p) + 1 for p in parts) < size:
                roll = rng.random()
                if roll < 0.15:
                    parts.append(str(rng.randint(0, 99999)))
                elif roll < 0.2:
                    parts.append(f"{rng.getrandbits(32):08x}")
                else:
                    parts.append(rng.choice(_WORDS))
            msg = " ".join(parts)[:size]
        pool.append(msg)
    return [pool[i % len(pool)] for i in range(n)]


def make_runs(url: str, n: int) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "insert into auth.users (id, email, aud, role) values (gen_random_uuid(),"
            " 'bench-' || gen_random_uuid() || '@example.com', 'authenticated', 'authenticated')"
            " returning id"
        ).fetchone()
        assert row is not None
        row = conn.execute(
            "insert into projects (owner, name) values (%s, 'bench') returning id", (row[0],)
        ).fetchone()
        assert row is not None
        project = row[0]
        row = conn.execute(
            "insert into workflow_definitions (project_id, slug, name, definition)"
            " values (%s, %s, 'bench', '{}') returning id",
            (project, "bench-" + uuid.uuid4().hex[:8]),
        ).fetchone()
        assert row is not None
        runs = conn.execute(
            "insert into workflow_runs (project_id, workflow_id, status)"
            " select %s, %s, 'running' from generate_series(1, %s) returning id::text",
            (project, row[0], n),
        ).fetchall()
        return [str(r[0]) for r in runs]


def check_runs(url: str, runs: list[str], total: int) -> None:
    """Each run holds exactly seq 1..N, N being its share of the lines written round-robin."""
    with psycopg.connect(url) as conn:
        for j, run in enumerate(runs):
            per_run = len(range(j, total, len(runs)))
            row = conn.execute(
                "select count(*), count(distinct seq), min(seq), max(seq) from run_logs where run_id = %s",
                (run,),
            ).fetchone()
            if row != (per_run, per_run, 1, per_run):
                sys.exit(f"run {run}: expected seq 1..{per_run}, got count/distinct/min/max {row}")


Result = tuple[float, float, float]  # lines/s, client CPU µs/line, database CPU µs/line


async def bench_writer(
    url: str, runs: list[str], messages: list[str], options: dict[str, Any], meter: CpuMeter
) -> Result:
    n = len(messages)
    writer = AsyncLogWriter(url, **options)
    c0, d0 = meter.sample()
    t0 = time.perf_counter()
    async with writer:
        nruns = len(runs)
        for i in range(n):
            await writer.write(runs[i % nruns], messages[i])
    elapsed = time.perf_counter() - t0
    meter.settle()
    c1, d1 = meter.sample()
    stats = writer.stats()
    if stats.lines_delivered != n:
        sys.exit(f"writer delivered {stats.lines_delivered} of {n} lines")
    return n / elapsed, (c1 - c0) / n * 1e6, (d1 - d0) / n * 1e6


def bench_per_line(url: str, run: str, messages: list[str], meter: CpuMeter) -> Result:
    with psycopg.connect(url, autocommit=True) as conn:
        c0, d0 = meter.sample()
        t0 = time.perf_counter()
        for msg in messages:
            line = orjson.dumps([{"level": "info", "message": msg, "ts": "2026-01-01T00:00:00Z"}]).decode()
            conn.execute("select append_run_logs(%s, %s::jsonb)", (run, line))
        elapsed = time.perf_counter() - t0
    meter.settle()
    c1, d1 = meter.sample()
    n = len(messages)
    return n / elapsed, (c1 - c0) / n * 1e6, (d1 - d0) / n * 1e6


def bench_copy(url: str, run: str, messages: list[str], meter: CpuMeter) -> Result:
    c0, d0 = meter.sample()
    buf = io.StringIO()
    for i, msg in enumerate(messages, 1):
        buf.write(f"{run}\t{i}\t2026-01-01 00:00:00+00\tinfo\t{msg}\t{{}}\n")
    data = buf.getvalue()
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("copy run_logs (run_id, seq, ts, level, message, attrs) from stdin") as cp,
        ):
            cp.write(data)
        conn.commit()
        elapsed = time.perf_counter() - t0
    meter.settle()
    c1, d1 = meter.sample()
    n = len(messages)
    return n / elapsed, (c1 - c0) / n * 1e6, (d1 - d0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=200_000, help="lines per writer scenario")
    parser.add_argument("--runs", default="1,10", help="comma-separated run counts")
    parser.add_argument("--message-bytes", type=int, default=100)
    parser.add_argument("--baseline-lines", type=int, default=3000, help="lines for the per-line baseline")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario (median reported)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-lines", type=int, help="override the writer default")
    parser.add_argument("--connections", type=int, help="override the writer default")
    parser.add_argument("--flush-interval", type=float, help="override the writer default")
    parser.add_argument("--secrets", type=int, default=0, help="register this many random secrets")
    parser.add_argument(
        "--text", choices=["words", "random"], default="words", help="message content (see make_messages)"
    )
    parser.add_argument(
        "--drop-index",
        action="append",
        default=[],
        metavar="NAME",
        help="drop this index on run_logs after migrating, to measure what it costs writers",
    )
    args = parser.parse_args()

    options: dict[str, Any] = {}
    if args.batch_lines:
        options["batch_lines"] = args.batch_lines
    if args.connections:
        options["connections"] = args.connections
    if args.flush_interval:
        options["flush_interval"] = args.flush_interval
    if args.secrets:
        rng = random.Random(args.seed + 1)
        alphabet = string.ascii_letters + string.digits
        options["secrets"] = [
            "".join(rng.choices(alphabet, k=rng.randint(12, 40))) for _ in range(args.secrets)
        ]
    run_counts = [int(x) for x in args.runs.split(",")]
    messages = make_messages(args.lines, args.message_bytes, args.seed, args.text)

    load_before = os.getloadavg()[0]
    results: dict[str, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="meshlogs-writer-bench-") as tmp:
        server = start_embedded(Path(tmp), cleanup="delete")
        try:
            url = server.url
            apply_migrations(url)
            with psycopg.connect(url, autocommit=True) as conn:
                for name in args.drop_index:
                    conn.execute(sql.SQL("drop index public.{}").format(sql.Identifier(name)))
                indexes = [
                    str(r[0])
                    for r in conn.execute(
                        "select indexname from pg_indexes where tablename = 'run_logs' order by 1"
                    )
                ]
            meter = CpuMeter(server.pgdata)
            baseline_name = f"per-line append_run_logs ({args.baseline_lines} lines)"
            # Rounds are interleaved (every scenario once per round) so that a burst of load from
            # elsewhere on the machine hits all scenarios alike instead of one of them.
            for _ in range(args.rounds):
                (run,) = make_runs(url, 1)
                per_line = bench_per_line(url, run, messages[: args.baseline_lines], meter)
                results.setdefault(baseline_name, []).append(per_line)
                for nruns in run_counts:
                    runs = make_runs(url, nruns)
                    result = asyncio.run(bench_writer(url, runs, messages, options, meter))
                    check_runs(url, runs, args.lines)
                    name = f"AsyncLogWriter, {nruns} run{'s' if nruns > 1 else ''}"
                    results.setdefault(name, []).append(result)
                (run,) = make_runs(url, 1)
                copy = bench_copy(url, run, messages, meter)
                results.setdefault("COPY run_logs (ceiling, not a legal path)", []).append(copy)
        finally:
            server.stop()

    shown = {k: v for k, v in options.items() if k != "secrets"}
    print(
        f"\nwriter bench: {args.lines} lines x {args.message_bytes} B, median of {args.rounds} rounds,"
        f" seed {args.seed}, text {args.text}, options {shown or 'defaults'}, secrets {args.secrets};"
        f" {os.cpu_count()} CPUs, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after;"
        f" run_logs indexes: {', '.join(indexes)}"
    )
    baseline = statistics.median(r[0] for r in results[baseline_name])
    width = max(len(name) for name in results)
    print(
        f"{'scenario':<{width}}  {'lines/s':>10}  {'x per-line':>10}  {'client CPU':>10}  {'DB CPU':>8}"
        f"  (CPU in µs per line)"
    )
    for name, rows in results.items():
        rate, client, db = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"{name:<{width}}  {rate:>10,.0f}  {rate / baseline:>10.1f}  {client:>10.1f}  {db:>8.1f}")


if __name__ == "__main__":
    main()
