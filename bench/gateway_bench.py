"""Gateway load/latency benchmark (ARCHITECTURE.md §7): Postgres commit → WebSocket client, end to end.

Reproduce (about 4 minutes on a 2-core machine; prints markdown tables, ``--json`` prints JSON)::

    .venv/bin/python bench/gateway_bench.py
    .venv/bin/python bench/gateway_bench.py --json > gateway.json
    .venv/bin/python bench/gateway_bench.py --scenarios idle --idle-connections 10000
    .venv/bin/python bench/gateway_bench.py --scenarios fanout --fanout-viewers 10 --fanout-steps 20000,40000
    meshlogs bench [same options]     # from a source checkout

What runs where (the machine's cores are shared by all of it, which the tables show per process):

- a fresh embedded Postgres 18 in a temporary directory (or ``--database-url``), migrated and seeded
  with users, projects, memberships and runs (fixed ``--seed``);
- the server under test, ``python -m meshlogs serve`` in its own process;
- ``--clients`` load-client processes (``_loadclient.py``): raw-asyncio WebSocket viewers speaking
  the Supabase Realtime protocol (vsn 1.0.0), each joined to ``run_logs`` with ``run_id=eq.<run>``
  under its own user's JWT (RLS on); also the 1 s pollers and the LISTEN consumer of the baselines;
- one writer process (``_loadwriter.py``) appending lines with ``append_run_logs()``.

Latency = the client's receive wall time − a wall-clock stamp the writer puts in the message just
before sending the statement that inserts and commits it; so it includes the append itself and the
commit (shown separately as "write ms"), then WAL decoding, authorization, fan-out and the socket.
Every viewer checks that it received exactly seq 1..N of its run: gaps, duplicates, reordering and
server-side disconnects (e.g. slow consumer, 1013) are counted and shown, never hidden.

Scenarios (``--scenarios``, in this order; the baselines run while the server is down):

- ``writer``: writer throughput (flat out, ``--writer-batch``-line appends) with the gateway and
  ``--writer-viewers`` viewers vs. gateway off (measured before and after the gateway rounds);
- ``notify``: baseline b, a row-level ``pg_notify`` trigger + one LISTEN consumer: latency at the light
  rate and writer throughput with the trigger;
- ``poll``: baseline a, every viewer runs ``select … where run_id = $1 and seq > $2`` every second
  under its JWT claims (as PostgREST would): the light and hot shapes;
- ``light``: 1 run, 1 viewer, 50 lines/s, a transaction per line;
- ``hot``: 1 run, 1,000 viewers, 20 lines/s;
- ``fanout``: 1,000 runs × 2 viewers, all writing, delivered-rate ramp (stops after the first step
  that misses p95 ≤ 100 ms, ≥ 99 % delivered or ≥ 99 % of writes on time);
- ``idle``: N idle connections with one channel each on a freshly started server: RSS per connection.

These are benchmarks: the test suite only runs a tiny configuration and checks correctness.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from _gateway_kit import (
    CpuMeter,
    Histogram,
    Peer,
    ServerProcess,
    log,
    merge_sparse,
    postmaster_pid,
    raise_nofile_limit,
)
from _gateway_report import render
from _gateway_seed import Audience, Seeder, claims, tokens
from _loadclient import client_main
from _loadwriter import writer_main
from meshlogs.auth.tokens import mint_api_key
from meshlogs.db.embedded import EmbeddedPostgres, start_embedded
from meshlogs.db.migrate import apply_migrations

ALL_SCENARIOS = ("writer", "notify", "poll", "light", "hot", "fanout", "idle")
NOTIFY_CHANNEL = "meshlogs_bench"
NOTIFY_SQL = f"""
create or replace function public.meshlogs_bench_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify('{NOTIFY_CHANNEL}',
    json_build_object('run', new.run_id, 'seq', new.seq, 'message', new.message)::text);
  return null;
end $$;
create trigger meshlogs_bench_notify after insert on public.run_logs
  for each row execute function public.meshlogs_bench_notify();
"""
NOTIFY_DROP = """
drop trigger if exists meshlogs_bench_notify on public.run_logs;
drop function if exists public.meshlogs_bench_notify();
"""
COUNT_KEYS = (
    "viewers",
    "complete",
    "gap_viewers",
    "gap_seqs",
    "dups",
    "reordered",
    "closed_by_server",
    "lost_after_close",
    "behind",
    "behind_seqs",
    "missing_seqs",
    "bad_messages",
    "queries",
)
SERVER_METRICS = {
    "messages": "meshlogs_realtime_messages_total",
    "authz_queries": "meshlogs_authz_queries_total",
    "authz_misses": "meshlogs_authz_cache_misses_total",
    "visibility_waits": "meshlogs_authz_visibility_waits_total",
    "slow_consumers": "meshlogs_realtime_slow_consumer_disconnects_total",
    "transactions": "meshlogs_capture_transactions_total",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway_bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    a = p.add_argument
    a(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help="comma-separated subset of " + ", ".join(ALL_SCENARIOS),
    )
    a(
        "--database-url",
        default=None,
        help="use this Postgres (superuser, wal_level=logical) instead of a fresh "
        "embedded one; the bench adds users, projects and runs to it (and a temporary trigger for 'notify')",
    )
    a("--json", action="store_true", help="print the results as JSON on stdout (tables go to stderr)")
    a("--clients", type=int, default=2, help="load-client processes")
    a("--seed", type=int, default=1)
    a("--message-bytes", type=int, default=100, help="log message size")
    a("--lanes", type=int, default=4, help="writer connections")
    a("--light-rate", type=float, default=50.0)
    a("--light-seconds", type=float, default=15.0)
    a("--hot-viewers", type=int, default=1000)
    a("--hot-rate", type=float, default=20.0)
    a("--hot-seconds", type=float, default=10.0)
    a("--fanout-runs", type=int, default=1000)
    a("--fanout-viewers", type=int, default=2, help="viewers per run (distinct users)")
    a(
        "--fanout-steps",
        default="5000,10000,15000,20000,30000,40000,50000",
        help="delivered msgs/s per ramp step (write rate = this / viewers per run)",
    )
    a("--step-seconds", type=float, default=8.0)
    a("--fanout-flush", type=float, default=0.5, help="seconds between two appends to one run")
    a("--fanout-group", type=int, default=10, help="runs appended in one transaction")
    a("--no-stop", action="store_true", help="run every ramp step even after one failed")
    a("--writer-runs", type=int, default=100)
    a("--writer-viewers", type=int, default=1, help="viewers per writer run (gateway round)")
    a("--writer-seconds", type=float, default=8.0)
    a("--writer-rounds", type=int, default=2, help="gateway-on rounds (each between two off rounds)")
    a("--writer-batch", type=int, default=100, help="lines per append in the throughput rounds")
    a("--poll-seconds", type=float, default=10.0)
    a("--poll-interval", type=float, default=1.0)
    a("--poll-connections", type=int, default=8, help="database connections shared by the pollers")
    a("--idle-connections", type=int, default=2000)
    a("--idle-seconds", type=float, default=5.0, help="idle window after connecting (CPU, then RSS)")
    a("--drain-seconds", type=float, default=30.0, help="longest wait for stragglers after a step")
    a(
        "--warmup-drain-seconds",
        type=float,
        default=120.0,
        help="longest wait for a warm-up step's lines (cold authorization cache) before measuring",
    )
    a(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server process (repeatable), e.g."
        " MESHLOGS_REALTIME_AUTHZ_CACHE_TTL=3600",
    )
    a("--server-log", default=None, help="copy the server's log here at the end")
    a(
        "--split-cores",
        action="store_true",
        help="pin Postgres and the writer to the first CPU, and the server, the load clients and this"
        " process to the others: what the write path does when the database has cores of its own",
    )
    return p


@dataclass
class Window:
    cpu: dict[str, float]
    xacts: int
    metrics: dict[str, float]
    t: float


class GatewayBench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = set(self.scenarios) - set(ALL_SCENARIOS)
        if unknown:
            raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        self.secret = secrets.token_urlsafe(48)
        self.anon = mint_api_key(self.secret, "anon")
        self.pg: EmbeddedPostgres | None = None
        self.url = ""
        self.admin: psycopg.Connection[Any] | None = None
        self.server: ServerProcess | None = None
        self.clients: list[Peer] = []
        self.writer: Peer | None = None
        self.meter: CpuMeter | None = None
        self.world: dict[str, Audience] = {}
        self.step = 0
        self.out: dict[str, Any] = {}
        self.raw: dict[str, Any] = {}
        self.seq_failures: list[str] = []
        self._hists: dict[int, Histogram] = {}
        self._query_hist = Histogram()
        self._last_recv: dict[int, int] = {}

    # -- setup and teardown ------------------------------------------------------------------------------

    def setup(self) -> None:
        nofile = raise_nofile_limit()
        if "idle" in self.scenarios and nofile < self.args.idle_connections + 1000:
            log(f"warning: open-files limit {nofile} is below {self.args.idle_connections} connections")
        if self.args.database_url:
            self.url = self.args.database_url
        else:
            log("starting an embedded Postgres")
            self.pg = start_embedded(self.workdir, cleanup="delete")
            self.url = self.pg.url
        apply_migrations(self.url)
        self.admin = psycopg.connect(self.url, autocommit=True)
        self.meter = CpuMeter(postmaster_pid(self.admin))
        self.meter.set_group("bench", [os.getpid()])
        self.seed()
        log(f"starting {self.args.clients} client process(es) and the writer")
        self.clients = [Peer.spawn(f"client-{i}", client_main) for i in range(self.args.clients)]
        self.writer = Peer.spawn("writer", writer_main)
        self.meter.set_group("clients", [c.pid for c in self.clients])
        self.meter.set_group("writer", [self.writer.pid])
        extra = {"MESHLOGS_REALTIME_MAX_CONNECTIONS": str(max(10000, self.args.idle_connections + 100))}
        for item in self.args.server_env:
            name, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"--server-env wants NAME=VALUE, got {item!r}")
            extra[name] = value
        self.server = ServerProcess(self.url, self.secret, self.workdir, extra)
        if self.args.split_cores:
            self._split_cores()

    def _split_cores(self) -> None:
        """Postgres (the postmaster and every backend it has; new ones inherit) and the writer get
        CPU 0, everything on the delivery side the rest. Off and on rounds then give Postgres the
        same core, so their ratio shows what capture costs the write path itself."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("--split-cores needs at least 2 CPUs")
        db, rest = {cpus[0]}, set(cpus[1:])
        postmaster = postmaster_pid(self.admin)
        if postmaster is None:
            raise SystemExit("--split-cores: cannot find the postmaster")
        root = psutil.Process(postmaster)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.cpu_affinity(list(db))
        assert self.writer is not None
        os.sched_setaffinity(self.writer.pid, db)
        for c in self.clients:
            os.sched_setaffinity(c.pid, rest)
        os.sched_setaffinity(0, rest)
        assert self.server is not None
        self.server.affinity = rest
        log(f"split cores: Postgres and the writer on CPU {cpus[0]}, the rest on {sorted(rest)}")

    def teardown(self) -> None:
        if self.server is not None:
            self.server.stop()
        for peer in [*self.clients, *([self.writer] if self.writer else [])]:
            peer.close()
        if self.admin is not None:
            with contextlib.suppress(psycopg.Error):
                self.admin.execute(NOTIFY_DROP)
            self.admin.close()
        if self.pg is not None:
            self.pg.stop()

    def seed(self) -> None:
        a, s = self.args, self.scenarios
        assert self.admin is not None
        t0 = time.monotonic()
        seeder = Seeder(self.admin, a.seed)
        w = self.world
        if "light" in s:
            w["light"] = seeder.per_run_projects("light", 1, 1)
        if "poll" in s:
            w["poll-light"] = seeder.per_run_projects("poll-light", 1, 1)
        if "hot" in s or "poll" in s:
            hot = seeder.shared_project("hot", 1, a.hot_viewers)
            (extra,) = seeder.runs(seeder.homes_of(hot.runs[0]))
            w["hot"] = hot
            w["poll-hot"] = Audience("poll-hot", [extra], [(extra, u) for _, u in hot.viewers])
        if "fanout" in s:
            w["fanout"] = seeder.per_run_projects("fanout", a.fanout_runs, a.fanout_viewers)
        if "writer" in s:
            w["writer-off"] = seeder.bare_runs("writer-off", a.writer_runs)
            for r in range(a.writer_rounds):
                w[f"writer-on-{r}"] = seeder.per_run_projects(
                    f"writer-on-{r}", a.writer_runs, a.writer_viewers
                )
                if "notify" in s:
                    w[f"notify-writer-{r}"] = seeder.bare_runs(f"notify-writer-{r}", a.writer_runs)
        if "notify" in s:
            w["notify-light"] = seeder.bare_runs("notify-light", 1)
        if "idle" in s:
            w["idle"] = seeder.shared_project("idle", 100, a.idle_connections)
        self.admin.execute("analyze")
        log(
            f"seeded {sum(len(x.runs) for x in w.values())} runs and "
            f"{sum(len(x.viewers) for x in w.values())} viewers in {time.monotonic() - t0:.1f}s"
        )

    # -- building blocks -----------------------------------------------------------------------------------

    def next_step(self) -> int:
        self.step += 1
        return self.step

    def start_server(self) -> None:
        assert self.server is not None and self.meter is not None
        log("starting the server (python -m meshlogs serve)")
        self.server.start()
        self.meter.set_group("server", [self.server.pid])
        log(
            f"server pid {self.server.pid} on port {self.server.port},"
            f" RSS {self.server.rss() / 2**20:.0f} MiB"
        )

    def stop_server(self) -> None:
        assert self.server is not None and self.meter is not None
        if self.server.proc is not None:
            log("stopping the server")
            self.server.stop()
        self.meter.drop_group("server")

    def server_up(self) -> bool:
        return self.server is not None and self.server.proc is not None

    def open_window(self) -> Window:
        assert self.meter is not None and self.admin is not None
        metrics = self.server.metrics() if self.server_up() and self.server else {}
        return Window(self.meter.sample(), self._xacts(), metrics, time.monotonic())

    def close_window(self, w: Window) -> dict[str, Any]:
        assert self.meter is not None
        cpu = CpuMeter.cores(w.cpu, self.meter.sample())
        seconds = time.monotonic() - w.t
        out: dict[str, Any] = {
            "seconds": seconds,
            "cpu": cpu,
            "db_xacts_per_s": (self._xacts() - w.xacts) / seconds,
        }
        if w.metrics and self.server is not None:
            now = self.server.metrics()
            out["server"] = {
                k: (now.get(m, 0.0) - w.metrics.get(m, 0.0)) / seconds for k, m in SERVER_METRICS.items()
            }
            out["server"]["slow_consumers"] *= seconds
        return out

    def _xacts(self) -> int:
        assert self.admin is not None
        row = self.admin.execute(
            "select xact_commit + xact_rollback from pg_stat_database where datname = current_database()"
        ).fetchone()
        return int(row[0]) if row else 0

    def open_viewers(self, audience: Audience) -> dict[str, Any]:
        assert self.server is not None
        specs = tokens(self.secret, audience)
        n = len(self.clients)
        for i, client in enumerate(self.clients):
            client.send(
                "open", host="127.0.0.1", port=self.server.port, apikey=self.anon, viewers=specs[i::n]
            )
        results = [c.recv(timeout=600) for c in self.clients]
        opened = sum(r["opened"] for r in results)
        seconds = max(r["seconds"] for r in results)
        failures = [f for r in results for f in r["failures"]]
        log(
            f"{audience.label}: {opened}/{len(specs)} viewers joined in {seconds:.1f}s"
            + (f"; failures: {failures[:3]}" if failures else "")
        )
        return {"opened": opened, "wanted": len(specs), "seconds": seconds, "failures": failures[:5]}

    def counts(self, step: int) -> int:
        total = 0
        for c in self.clients:
            c.send("counts")
        for c in self.clients:
            total += c.recv(timeout=60)["steps"].get(step, 0)
        return total

    def wait_counts(self, step: int, expected: int, limit: float) -> tuple[int, float]:
        """Wait until clients got ``expected`` messages of ``step``: at most ``limit`` s, and at most
        10 s without progress."""
        t0 = time.monotonic()
        last, last_change = -1, t0
        while True:
            got = self.counts(step)
            now = time.monotonic()
            if got != last:
                last, last_change = got, now
            if got >= expected or now - last_change > 10.0 or now - t0 > limit:
                return got, now - t0
            time.sleep(0.1)

    def paced(
        self,
        audience: Audience,
        rate: float,
        seconds: float,
        *,
        flush: float,
        group: int,
        clients: bool = True,
        drain: float | None = None,
    ) -> dict[str, Any]:
        """One writer step at ``rate`` lines/s; waits for the clients to drain it when asked to."""
        assert self.writer is not None
        step = self.next_step()
        if flush * rate <= 1.0 + 1e-9:  # a statement per line: pair stamps with commit times
            for c in self.clients:
                c.call("pair", steps=[step])
        w = self.open_window()
        wres = self.writer.call(
            "paced",
            timeout=seconds + 600,
            dsn=self.url,
            runs=audience.runs,
            rate=rate,
            duration=seconds,
            step=step,
            flush=flush,
            group=group,
            lanes=self.args.lanes,
            message_bytes=self.args.message_bytes,
            seed=self.args.seed,
        )
        window = self.close_window(w)
        per_run = audience.per_run()
        expected = sum(n * per_run.get(run, 0) for run, n in wres["per_run"].items())
        limit = self.args.drain_seconds if drain is None else drain
        got, waited = self.wait_counts(step, expected, limit) if clients and expected else (0, 0.0)
        return {
            "step": step,
            "writer": wres,
            "window": window,
            "expected": expected,
            "received": got,
            "drain_s": waited,
        }

    def complete(
        self, audience: Audience, kind: str = "ws", peers: list[Peer] | None = None
    ) -> dict[str, Any]:
        """Wait for every viewer to hold seq 1..N of its run; merged correctness and histograms."""
        assert self.writer is not None
        peers = peers if peers is not None else self.clients
        expected = self.writer.call("last_seqs", runs=audience.runs)
        for c in peers:
            c.send("wait_complete", expected=expected, timeout=self.args.drain_seconds + 30, kind=kind)
        reports = [c.recv(timeout=self.args.drain_seconds + 120) for c in peers]
        merged: dict[str, Any] = {"lines": sum(expected.values())}
        for key in COUNT_KEYS:
            merged[key] = sum(r[key] for r in reports)
        merged["waited_s"] = max(r["waited"] for r in reports)
        merged["problems"] = [p for r in reports for p in r["problems"]][:5]
        merged["disconnects"] = sorted({d for r in reports for d in r["disconnects"]})[:5]
        steps = {int(s) for r in reports for s in r["hists"]}
        self._hists = {s: merge_sparse([r["hists"][s] for r in reports if s in r["hists"]]) for s in steps}
        self._query_hist = merge_sparse([r["query_hist"] for r in reports])
        for r in reports:
            for step, t in r["last_recv"].items():
                self._last_recv[int(step)] = max(self._last_recv.get(int(step), 0), t)
        if merged["gap_seqs"] or merged["dups"] or merged["reordered"] or merged["closed_by_server"]:
            self.seq_failures.append(audience.label)
            log(f"{audience.label}: SEQ CHECK FAILED: {merged['problems'][:2]}")
        elif merged["behind"]:
            log(
                f"{audience.label}: {merged['behind']} viewer(s) still behind after {merged['waited_s']:.0f}s"
            )
        return merged

    def from_commit(self, st: dict[str, Any], peers: list[Peer] | None = None) -> dict[str, Any] | None:
        """Latency from the writer's "commit returned" instead of its stamp (one line per statement)."""
        commits = st["writer"].get("commits")
        if not commits:
            return None
        peers = peers if peers is not None else self.clients
        mapping = dict(commits)
        parts = [c.call("from_commit", timeout=120, commits=mapping) for c in peers]
        return merge_sparse(parts).summary()

    def hist(self, step: int) -> Histogram:
        return self._hists.get(step, Histogram())

    def reset_clients(self) -> None:
        for c in self.clients:
            c.send("reset")
        for c in self.clients:
            c.recv(timeout=120)

    def _delivered_rate(self, st: dict[str, Any], n: int) -> float | None:
        """Messages of a step / (its last arrival − its first write): a gateway that falls behind shows a
        lower rate than the writer's, however long we waited for it."""
        last = self._last_recv.get(st["step"])
        if not n or last is None:
            return None
        end = max(last, st["writer"]["started_ns"] + int(st["writer"]["seconds"] * 1e9))
        return n / max((end - st["writer"]["started_ns"]) / 1e9, 1e-9)

    def row(self, label: str, st: dict[str, Any], correctness: dict[str, Any] | None) -> dict[str, Any]:
        win, wres = st["window"], st["writer"]
        hist = self.hist(st["step"])
        row: dict[str, Any] = {
            "label": label,
            "step": st["step"],
            "latency": hist.summary(),
            "msgs_per_s": self._delivered_rate(st, hist.n),
            "write_rate": wres["rate"],
            "write_ms": Histogram.from_sparse(wres["commit_hist"]).summary(),
            "writer_lag_ms": Histogram.from_sparse(wres["lag_hist"]).summary(),
            "db_xacts_per_s": win["db_xacts_per_s"],
            "cpu": win["cpu"],
            "correctness": correctness,
        }
        if "server" in win:
            row["authz_queries_per_s"] = win["server"]["authz_queries"]
            row["visibility_waits_per_s"] = win["server"]["visibility_waits"]
            row["server_msgs_per_s"] = win["server"]["messages"]
            row["slow_consumers"] = win["server"]["slow_consumers"]
        return row

    # -- scenarios ----------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        s = self.scenarios
        if "notify" in s:
            self.baseline_notify()
        if "poll" in s:
            self.baseline_poll()
        if {"light", "hot", "fanout"} & set(s):
            self.start_server()
            if "light" in s:
                self.scenario_light()
            if "hot" in s:
                self.scenario_hot()
            if "fanout" in s:
                self.scenario_fanout()
            self.stop_server()
        if "writer" in s:
            self.scenario_writer()
        if "idle" in s:
            self.scenario_idle()
        self.summarize_baselines()
        return self.out

    def scenario_light(self) -> None:
        a = self.args
        aud = self.world["light"]
        log(f"light: 1 run, 1 viewer, {a.light_rate:g} lines/s for {a.light_seconds:g}s")
        self.open_viewers(aud)
        st = self.paced(aud, a.light_rate, a.light_seconds, flush=1 / a.light_rate, group=1)
        c = self.complete(aud)
        since_commit = self.from_commit(st)
        self.reset_clients()
        row = self.row("gateway", st, c)
        row["from_commit"] = since_commit
        lat = row["latency"]
        ok = lat["p50_ms"] is not None and lat["p50_ms"] <= 5 and lat["p99_ms"] <= 25 and self._exact(c)
        self.out.setdefault("light", {"rows": []})["rows"].insert(0, row)
        self.out["light"].update(
            target="p50 ≤ 5 ms, p99 ≤ 25 ms, every viewer exactly seq 1..N", verdict="pass" if ok else "miss"
        )
        log(f"light: p50 {lat['p50_ms']} p95 {lat['p95_ms']} p99 {lat['p99_ms']} ms")

    def scenario_hot(self) -> None:
        a = self.args
        aud = self.world["hot"]
        log(f"hot: 1 run, {len(aud.viewers)} viewers, {a.hot_rate:g} lines/s for {a.hot_seconds:g}s")
        opened = self.open_viewers(aud)
        warm = self.paced(aud, a.hot_rate, 1.0, flush=1 / a.hot_rate, group=1, drain=a.warmup_drain_seconds)
        st = self.paced(aud, a.hot_rate, a.hot_seconds, flush=1 / a.hot_rate, group=1)
        c = self.complete(aud)
        since_commit = self.from_commit(st)
        self.reset_clients()
        rows = [self.row("gateway, warm-up 1 s (authz cache cold)", warm, None), self.row("gateway", st, c)]
        rows[1]["joined"] = opened
        rows[1]["from_commit"] = since_commit
        lat = rows[1]["latency"]
        ok = lat["p95_ms"] is not None and lat["p95_ms"] <= 100 and self._exact(c)
        self.out.setdefault("hot", {"rows": []})["rows"][0:0] = rows
        self.out["hot"].update(
            target="p95 ≤ 100 ms, every viewer exactly seq 1..N", verdict="pass" if ok else "miss"
        )
        log(
            f"hot: p50 {lat['p50_ms']} p95 {lat['p95_ms']} p99 {lat['p99_ms']} ms,"
            f" {rows[1]['msgs_per_s'] or 0:,.0f} msgs/s"
        )

    def scenario_fanout(self) -> None:
        a = self.args
        aud = self.world["fanout"]
        vpr = a.fanout_viewers
        targets = [float(x) for x in a.fanout_steps.split(",") if x.strip()]
        log(f"fanout: {len(aud.runs)} runs x {vpr} viewers, steps {targets} msgs/s, {a.step_seconds:g}s each")
        opened = self.open_viewers(aud)
        rows = []
        warm = self.paced(
            aud,
            targets[0] / vpr,
            min(3.0, a.step_seconds),
            flush=a.fanout_flush,
            group=a.fanout_group,
            drain=a.warmup_drain_seconds,
        )
        steps = [(warm, targets[0], True)]
        best = 0.0
        for target in targets:
            st = self.paced(aud, target / vpr, a.step_seconds, flush=a.fanout_flush, group=a.fanout_group)
            steps.append((st, target, False))
            ok, p95, delivered, produced = self._step_ok(st, self.live_hist(st["step"]))
            log(
                f"fanout {target:,.0f} msgs/s: delivered {delivered:.2f}% p95 {p95} ms, writes on time"
                f" {produced:.1f}% -> {'ok' if ok else 'FAIL'}"
            )
            if ok:
                best = max(best, target)
            elif not a.no_stop:
                break
        c = self.complete(aud)
        self.reset_clients()
        for st, target, warmup in steps:
            ok, _p95, delivered, produced = self._step_ok(st, self.hist(st["step"]))
            r = self.row(f"{target / 1000:g}k" + (" warm-up" if warmup else ""), st, None)
            r.update(
                target_msgs_per_s=target, delivered_pct=delivered, produced_pct=produced, ok=ok, warmup=warmup
            )
            rows.append(r)
        exact = self._exact(c)
        self.out["fanout"] = {
            "rows": rows,
            "runs": len(aud.runs),
            "viewers_per_run": vpr,
            "joined": opened,
            "max_ok_msgs_per_s": best,
            "correctness": c,
            "target": "≥ 40,000 delivered msgs/s with p95 ≤ 100 ms (≥ 99 % delivered, ≥ 99 % of writes on"
            " time), every viewer exactly seq 1..N",
            "verdict": "pass" if best >= 40000 and exact else "miss",
            "notes": [
                f"highest step that held: {best:,.0f} msgs/s; seq check over all steps:"
                f" {c['complete']}/{c['viewers']} viewers exact, {c['missing_seqs']} missing,"
                f" {c['dups']} dup,"
                f" {c['closed_by_server']} closed by the server {c['disconnects']}",
                f"writes: {a.fanout_group} runs per transaction, each run appended every {a.fanout_flush:g}s"
                f" over {a.lanes} connections",
            ],
        }

    def _step_ok(self, st: dict[str, Any], hist: Histogram) -> tuple[bool, float | None, float, float]:
        """A ramp step holds when p95 ≤ 100 ms, ≥ 99 % of its messages arrived and ≥ 99 % of its lines
        were committed on schedule (a writer that falls behind would flatter the latency)."""
        wres = st["writer"]
        p95 = hist.percentile_ms(95)
        delivered = 100.0 * st["received"] / st["expected"] if st["expected"] else 0.0
        produced = 100.0 * wres["on_time"] / wres["due"] if wres["due"] else 0.0
        ok = p95 is not None and p95 <= 100 and delivered >= 99.0 and produced >= 99.0
        return ok, p95, delivered, produced

    def live_hist(self, step: int) -> Histogram:
        for c in self.clients:
            c.send("hists", steps=[step])
        parts = [c.recv(timeout=60) for c in self.clients]
        return merge_sparse([p[step] for p in parts if step in p])

    def scenario_writer(self) -> None:
        """Interleaved rounds, off / [NOTIFY] / on, ``--writer-rounds`` times, then off again; each
        on (and NOTIFY) round is compared with the mean of the off rounds just before and after it,
        which cancels most of the drift of a shared machine."""
        a = self.args
        notify = "notify" in self.scenarios
        for r in range(a.writer_rounds):
            self.writer_round(f"gateway off #{r + 1}", "off", self.world["writer-off"])
            if notify:
                self.writer_round(
                    f"NOTIFY trigger + LISTEN #{r + 1}", "notify", self.world[f"notify-writer-{r}"]
                )
            aud = self.world[f"writer-on-{r}"]
            self.writer_round(f"gateway on, {len(aud.viewers)} viewers #{r + 1}", "on", aud)
        self.writer_round(f"gateway off #{a.writer_rounds + 1}", "off", self.world["writer-off"])
        self.summarize_writer()

    def writer_round(self, label: str, kind: str, aud: Audience) -> dict[str, Any]:
        """One flat-out round: ``off`` (no server), ``on`` (server + viewers) or ``notify`` (trigger +
        LISTEN consumer, no server)."""
        assert self.writer is not None and self.admin is not None
        a = self.args
        log(
            f"writer: {label}: {a.writer_seconds:g}s flat out, {a.writer_batch}-line appends,"
            f" {len(aud.runs)} runs, {a.lanes} connections"
        )
        listener = self.clients[:1]
        if kind == "on":
            self.start_server()
            self.open_viewers(aud)
        elif kind == "notify":
            self.admin.execute(NOTIFY_SQL)
            listener[0].call("listen_start", dsn=self.url, channel=NOTIFY_CHANNEL)
        try:
            step = self.next_step()
            w = self.open_window()
            wres = self.writer.call(
                "flat_out",
                timeout=a.writer_seconds + 600,
                dsn=self.url,
                runs=aud.runs,
                duration=a.writer_seconds,
                step=step,
                lanes=a.lanes,
                batch=a.writer_batch,
                message_bytes=a.message_bytes,
                seed=a.seed,
            )
            window = self.close_window(w)
            row: dict[str, Any] = {
                "label": label,
                "kind": kind,
                "step": step,
                "lines_per_s": wres["rate"],
                "lines_per_pg_core": wres["rate"]
                / max(window["cpu"].get("postgres", 0.0) - window["cpu"].get("walsender", 0.0), 1e-3),
                "write_ms": Histogram.from_sparse(wres["commit_hist"]).summary(),
                "cpu": window["cpu"],
                "db_xacts_per_s": window["db_xacts_per_s"],
            }
            if kind != "off":
                c = self.complete(
                    aud, kind="ws" if kind == "on" else "listen", peers=None if kind == "on" else listener
                )
                row["correctness"] = c
                row["latency"] = self.hist(step).summary()
        finally:
            if kind == "on":
                self.reset_clients()
                self.stop_server()
            elif kind == "notify":
                self.admin.execute(NOTIFY_DROP)
                listener[0].call("reset")
        self.raw.setdefault("writer_rounds", []).append(row)
        log(f"writer: {label}: {wres['rate']:,.0f} lines/s")
        return row

    def summarize_writer(self) -> None:
        rounds = self.raw.get("writer_rounds", [])
        ratios: dict[str, list[float]] = {"on": [], "notify": []}
        for i, r in enumerate(rounds):
            if r["kind"] == "off":
                continue
            before = next((x for x in reversed(rounds[:i]) if x["kind"] == "off"), None)
            after = next((x for x in rounds[i + 1 :] if x["kind"] == "off"), None)
            offs = [x["lines_per_s"] for x in (before, after) if x is not None]
            if offs:
                r["off_mean"] = sum(offs) / len(offs)
                r["ratio"] = r["lines_per_s"] / r["off_mean"]
                ratios[r["kind"]].append(r["ratio"])
        ratio = statistics.median(ratios["on"]) if ratios["on"] else None
        on = [r for r in rounds if r["kind"] == "on"]
        offs = [r["lines_per_s"] for r in rounds if r["kind"] == "off"]
        notes = [
            "ratio = the round's lines/s ÷ the mean of the 'gateway off' rounds just before and after it;"
            f" the verdict uses the median over rounds. Off rounds ranged {min(offs):,.0f}–{max(offs):,.0f}"
            " lines/s (machine noise)."
            if offs
            else "",
            f"gateway on / off: {', '.join(f'{x:.3f}' for x in ratios['on'])} → median {ratio:.3f}"
            if ratio is not None
            else "",
        ]
        if ratios["notify"]:
            notes.append(
                f"NOTIFY trigger (baseline b) / off: {', '.join(f'{x:.3f}' for x in ratios['notify'])}"
                f" → median {statistics.median(ratios['notify']):.3f}"
            )
        self.out["writer"] = {
            "rows": rounds,
            "ratio": ratio,
            "notify_ratio": statistics.median(ratios["notify"]) if ratios["notify"] else None,
            "target": "gateway on / gateway off ≥ 0.95, every viewer exactly seq 1..N",
            "verdict": "pass"
            if ratio is not None and ratio >= 0.95 and all(self._exact(r["correctness"]) for r in on)
            else "miss",
            "notes": [n for n in notes if n],
        }

    def baseline_notify(self) -> None:
        assert self.admin is not None
        a = self.args
        log("notify: installing a row-level pg_notify trigger and a LISTEN consumer (baseline b)")
        self.admin.execute(NOTIFY_SQL)
        listener = self.clients[:1]
        try:
            listener[0].call("listen_start", dsn=self.url, channel=NOTIFY_CHANNEL)
            aud = self.world["notify-light"]
            st = self.paced(
                aud, a.light_rate, a.light_seconds, flush=1 / a.light_rate, group=1, clients=False
            )
            c = self.complete(aud, kind="listen", peers=listener)
            row = self.row("NOTIFY trigger + LISTEN (baseline b)", st, c)
            row["from_commit"] = self.from_commit(st, listener)
            self.raw["notify_light"] = row
        finally:
            self.admin.execute(NOTIFY_DROP)
            for peer in listener:
                peer.call("reset")

    def baseline_poll(self) -> None:
        a = self.args
        client = self.clients[:1]
        for key, rate in (("poll-light", a.light_rate), ("poll-hot", a.hot_rate)):
            aud = self.world[key]
            log(
                f"poll: {len(aud.viewers)} viewer(s) polling every {a.poll_interval:g}s, {rate:g} lines/s"
                f" for {a.poll_seconds:g}s (baseline a)"
            )
            specs = claims(self.secret, tokens(self.secret, aud))
            client[0].call(
                "poll_start",
                dsn=self.url,
                viewers=specs,
                interval=a.poll_interval,
                connections=a.poll_connections,
                seed=a.seed,
            )
            q0 = client[0].call("counts")["queries"]
            st = self.paced(aud, rate, a.poll_seconds, flush=1 / rate, group=1, clients=False)
            q1 = client[0].call("counts")["queries"]
            c = self.complete(aud, kind="poll", peers=client)
            since_commit = self.from_commit(st, client)
            queries = c["queries"]
            client[0].call("stop_polling")
            client[0].call("reset")
            row = self.row(f"1 s polling, {len(aud.viewers)} viewer(s) (baseline a)", st, c)
            row["from_commit"] = since_commit
            row["queries_per_s"] = (q1 - q0) / max(st["window"]["seconds"], 1e-9)
            row["queries_total"] = queries
            row["query_ms"] = self._query_hist.summary()
            self.raw[key] = row

    def summarize_baselines(self) -> None:
        light, hot = self.out.get("light"), self.out.get("hot")
        if "notify_light" in self.raw and light is not None:
            light["rows"].append(self.raw["notify_light"])
        if "poll-light" in self.raw and light is not None:
            light["rows"].append(self.raw["poll-light"])
        if "poll-hot" in self.raw and hot is not None:
            hot["rows"].append(self.raw["poll-hot"])
        for scenario in (light, hot):
            if scenario is None or not scenario["rows"]:
                continue
            gw = next((r for r in scenario["rows"] if r["label"] == "gateway"), None)
            notes = scenario.setdefault("notes", [])
            for r in scenario["rows"]:
                if gw is None or r is gw or "baseline" not in r["label"]:
                    continue
                g50, b50 = gw["latency"]["p50_ms"], r["latency"]["p50_ms"]
                if g50 and b50:
                    r["p50_ratio_vs_gateway"] = b50 / g50
                    notes.append(f"{r['label']}: p50 {b50:.1f} ms = {b50 / g50:.1f}× the gateway's")
                if "queries_per_s" in r:
                    pg_b, pg_g = r["cpu"].get("postgres", 0.0), gw["cpu"].get("postgres", 0.0)
                    notes.append(
                        f"{r['label']}: {r['queries_per_s']:,.0f} queries/s, Postgres {pg_b:.2f} cores vs"
                        f" {pg_g:.2f} with the gateway"
                        f" ({gw.get('authz_queries_per_s', 0):,.1f} authz queries/s)"
                    )
        if light is None and "notify_light" in self.raw:
            self.out["notify"] = {"rows": [self.raw["notify_light"]]}

    def scenario_idle(self) -> None:
        assert self.server is not None
        a = self.args
        aud = self.world["idle"]
        log(f"idle: {len(aud.viewers)} idle connections on a fresh server")
        self.start_server()
        time.sleep(1.0)
        rss0 = self.server.rss()
        opened = self.open_viewers(aud)
        w = self.open_window()
        time.sleep(a.idle_seconds)
        window = self.close_window(w)
        rss1 = self.server.rss()
        self.reset_clients()
        self.stop_server()
        n = opened["opened"]
        kib = (rss1 - rss0) / max(n, 1) / 1024
        self.out["idle"] = {
            "rows": [
                {
                    "connections": len(aud.viewers),
                    "joined": n,
                    "connect_seconds": opened["seconds"],
                    "rss_before": rss0,
                    "rss_after": rss1,
                    "kib_per_connection": kib,
                    "cpu": window["cpu"],
                }
            ],
            "target": "≤ 64 KiB RSS per connection (ARCHITECTURE names 10,000 connections)",
            "verdict": "pass" if kib <= 64 and n == len(aud.viewers) else "miss",
            "notes": [
                f"joined {n}/{len(aud.viewers)}"
                + (f"; failures: {opened['failures']}" if opened["failures"] else "")
            ],
        }
        log(f"idle: {kib:.1f} KiB per connection ({n} joined)")

    @staticmethod
    def _exact(c: dict[str, Any] | None) -> bool:
        return bool(c) and c["complete"] == c["viewers"] and c["viewers"] > 0  # type: ignore[index]


def _meta(argv: list[str], url: str) -> dict[str, Any]:
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(
                ["git", *cmd], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    commit = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " (uncommitted changes)"
    version = "?"
    with contextlib.suppress(psycopg.Error), psycopg.connect(url) as conn:
        row = conn.execute("show server_version").fetchone()
        version = str(row[0]) if row else "?"
    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "command": "gateway_bench.py " + shlex.join(argv),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgres": version,
        "load_before": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="meshlogs-gateway-bench-") as tmp:
        bench = GatewayBench(args, Path(tmp))
        try:
            bench.setup()
            meta = _meta(argv, bench.url)
            scenarios = bench.run()
        except Exception:
            if bench.server is not None and bench.server.log_path.exists():
                tail = bench.server.log_path.read_text(errors="replace")[-3000:]
                log(f"server log tail:\n{tail}")
            raise
        finally:
            bench.teardown()
            if args.server_log and bench.server is not None and bench.server.log_path.exists():
                shutil.copyfile(bench.server.log_path, args.server_log)
    meta["load_after"] = os.getloadavg()[0]
    result = {"meta": meta, "scenarios": scenarios}
    if args.json:
        print(render(result), file=sys.stderr)
        print(json.dumps(result, indent=1, default=str))
    else:
        print(render(result))
    log("verdicts: " + ", ".join(f"{k} {v.get('verdict')}" for k, v in scenarios.items() if v.get("verdict")))
    if bench.seq_failures:
        log(f"SEQ CHECK FAILED in: {', '.join(bench.seq_failures)} (a correctness bug, not a speed miss)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
