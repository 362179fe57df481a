"""Run Console benchmark in a real browser: Debian's Chromium, driven by Playwright, on a big live run.

Reproduce (about 2 minutes on a 2-core machine; prints markdown tables, ``--json`` prints JSON)::

    .venv/bin/python bench/console_bench.py
    .venv/bin/python bench/console_bench.py --lines 200000 --rate 2000 --live-seconds 30
    .venv/bin/python bench/console_bench.py --json > console.json

What runs (all on this machine, sharing its cores, as a user's laptop would not):

- a fresh embedded Postgres in a temporary directory (or ``--database-url``), migrated, with one user,
  one project and two running runs: the main one with ``--lines`` lines and a baseline one with
  ``--baseline-lines``, written as the superuser with ``append_run_logs()`` in 10,000-line calls;
- ``python -m meshlogs serve`` in its own process (console, REST, auth and realtime);
- Chromium (headless, ``--chromium``) logged in as that user through the console's login page.

Why these numbers: ARCHITECTURE.md §6 promises a virtualized list that "stays smooth at 100k+ lines".
The bench opens the run view and measures, inside the page, from navigation start (performance
timeOrigin) to the first ``--first`` lines shown and to every line loaded; JS heap (CDP
``Performance.getMetrics`` after a forced GC) and DOM size. Then it watches the loaded page for
``--idle-seconds`` with nothing written (the baseline window), and for ``--live-seconds`` while a
writer thread appends ``--rate`` lines/s (one ``append_run_logs`` call per ``--tick-ms``), and reports
per window: long tasks (``PerformanceObserver('longtask')``; the browser only reports tasks over
50 ms, so every one counts against the target of none), animation-frame intervals, main-thread
busy time, write → on-screen latency (writer wall clock before the commit → the first frame whose
``data-last-seq`` covers the line), CPU per process and heap/DOM growth. The page must end with exactly
lines 1..N (the list's ``data-lines``, ``data-last-seq`` and ``data-gap-free``), else exit code 1.

The baseline run (a 10× smaller log, same page, same session) gives the ratios; a target missed is
reported, not an error. Every wait is bounded (``--timeout``).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime as _dt
import json
import os
import platform
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
from playwright.sync_api import Browser, CDPSession, Page, ViewportSize, sync_playwright

from _gateway_kit import CpuMeter, ServerProcess, log, postmaster_pid
from meshlogs.db.embedded import EmbeddedPostgres, start_embedded
from meshlogs.db.migrate import apply_migrations
from meshlogs.store.users import create_user

EMAIL = "bench@example.com"
PASSWORD = "console bench password"
APPEND_MAX = 10_000  # append_run_logs() takes at most this many lines per call
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--enable-precise-memory-info",
    # A headless page that is never "focused" must still get full-rate timers and frames.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

#: Installed before the console's own scripts in every document. It records, per animation frame,
#: how much of the log is loaded and shown, so times are measured where the user sees them and not
#: by polling from outside. Long tasks are observed with ``buffered: true`` so none before the
#: observer is lost.
INSTRUMENT_JS = """
(() => {
  const target = Number(window.__benchTarget || 0);
  const firstN = Number(window.__benchFirst || 1000);
  const b = { longtasks: [], frames: [], seqLog: [], marks: {} };
  window.__bench = b;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) b.longtasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (err) { b.noLongtask = String(err); }
  let lastSeq = -1;
  const frame = (t) => {
    b.frames.push(t);
    const el = document.querySelector('[data-testid="log-list"]');
    if (el) {
      const lines = Number(el.dataset.lines || 0);
      const seq = Number(el.dataset.lastSeq || 0);
      if (seq !== lastSeq) { lastSeq = seq; b.seqLog.push([Date.now(), seq]); }
      const shown = el.querySelector('[data-testid="log-line"]') !== null;
      const firstAt = Math.min(firstN, target || firstN);
      if (shown && lines >= firstAt && b.marks.first === undefined) b.marks.first = t;
      if (target && lines >= target && shown && b.marks.all === undefined) b.marks.all = t;
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
})();
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--lines", type=int, default=100_000, help="lines in the main run (default 100000)")
    p.add_argument("--baseline-lines", type=int, default=10_000, help="lines in the baseline run")
    p.add_argument("--first", type=int, default=1000, help="'first lines shown' threshold")
    p.add_argument("--rate", type=int, default=1000, help="lines/s written in the live window")
    p.add_argument("--live-seconds", type=float, default=20.0)
    p.add_argument("--idle-seconds", type=float, default=10.0, help="window with writing off")
    p.add_argument("--tick-ms", type=int, default=100, help="one append_run_logs() call per tick")
    p.add_argument("--timeout", type=float, default=180.0, help="bound on every wait, seconds")
    p.add_argument("--viewport", default="1280x800", help="WIDTHxHEIGHT")
    p.add_argument("--chromium", default=os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium")
    p.add_argument("--database-url", default="", help="use this (migrated or empty) database")
    p.add_argument("--server-log", default="", help="copy the server's log here at the end")
    p.add_argument("--json", action="store_true", help="JSON on stdout (the tables go to stderr)")
    return p


# -- data -------------------------------------------------------------------------------------------


LONG = " ".join(f"token{i}=value-{i * 37 % 1000}" for i in range(24))


def make_line(seq: int) -> dict[str, Any]:
    """A mix like a real job log: mostly short lines, some long enough to wrap, some ANSI colour."""
    level = "error" if seq % 997 == 0 else "warn" if seq % 101 == 0 else "debug" if seq % 7 == 0 else "info"
    k = seq % 20
    if k == 0:
        message = f"[{seq}] request dump: {LONG}"
    elif k == 7:
        message = f"[{seq}] \x1b[32mPASS\x1b[0m test_case_{seq % 500} (\x1b[2m{seq % 90} ms\x1b[0m)"
    else:
        message = f"[{seq}] processed batch {seq % 97} of shard {seq % 13} in {seq % 1000} ms"
    return {"level": level, "message": message}


def append_lines(conn: psycopg.Connection[Any], run: str, first: int, last: int) -> int:
    lines = [make_line(s) for s in range(first, last + 1)]
    row = conn.execute("select append_run_logs(%s, %s::jsonb, null)", (run, json.dumps(lines))).fetchone()
    assert row is not None
    return int(row[0])


def seed(conn: psycopg.Connection[Any], lines: int, baseline: int) -> dict[str, str]:
    user = create_user(conn, EMAIL, PASSWORD).id

    def one(sql: str, *params: Any) -> str:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return str(row[0])

    project = one("insert into projects (owner, name) values (%s, 'Console bench') returning id::text", user)
    runs: dict[str, str] = {}
    for name, n in (("main", lines), ("baseline", baseline)):
        wf = one(
            "insert into workflow_definitions (project_id, slug, name, definition)"
            " values (%s, %s, %s, '{}') returning id::text",
            project,
            f"bench-{name}",
            f"Bench {name}",
        )
        run = one(
            "insert into workflow_runs (project_id, workflow_id, status) values (%s, %s, 'running')"
            " returning id::text",
            project,
            wf,
        )
        for first in range(1, n + 1, APPEND_MAX):
            append_lines(conn, run, first, min(n, first + APPEND_MAX - 1))
        runs[name] = run
    return runs


# -- statistics -------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (never interpolated below an observed value)."""
    if not values:
        return None
    s = sorted(values)
    rank = max(1, int(len(s) * p / 100.0 + 0.999999))
    return s[min(rank, len(s)) - 1]


def dist(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": max(values) if values else None,
    }


# -- the browser side ---------------------------------------------------------------------------------


@dataclass
class Writer:
    """Appends ``rate`` lines/s in ticks from a thread; remembers when each batch was sent."""

    url: str
    run: str
    next_seq: int
    rate: int
    seconds: float
    tick_ms: int
    batches: list[tuple[int, float]] = field(default_factory=list)  # (last seq, wall ms before send)
    late_ticks: int = 0
    error: str = ""
    thread: threading.Thread | None = None
    first_seq: int = 0

    def __post_init__(self) -> None:
        self.first_seq = self.next_seq

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                ticks = max(1, round(self.seconds * 1000 / self.tick_ms))
                total = round(self.rate * self.seconds)
                t0 = time.monotonic()
                written = 0
                for i in range(ticks):
                    due = t0 + i * self.tick_ms / 1000
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    elif delay < -self.tick_ms / 1000:
                        self.late_ticks += 1
                    n = total * (i + 1) // ticks - written
                    if n <= 0:
                        continue
                    first = self.next_seq
                    sent = time.time() * 1000
                    last = append_lines(conn, self.run, first, first + n - 1)
                    if last != first + n - 1:
                        raise RuntimeError(f"append returned seq {last}, expected {first + n - 1}")
                    self.batches.append((last, sent))
                    self.next_seq = last + 1
                    written += n
        except Exception as exc:  # reported by join(); the thread must not die silently
            self.error = f"{type(exc).__name__}: {exc}"

    def join(self, timeout: float) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError("the writer did not finish in time")
        if self.error:
            raise RuntimeError(f"writer failed: {self.error}")


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.secret = secrets.token_urlsafe(48)
        self.pg: EmbeddedPostgres | None = None
        self.url = ""
        self.admin: psycopg.Connection[Any] | None = None
        self.server: ServerProcess | None = None
        self.meter: CpuMeter | None = None
        self.runs: dict[str, str] = {}
        self.failures: list[str] = []
        width, _, height = args.viewport.partition("x")
        self.viewport: ViewportSize = {"width": int(width), "height": int(height)}

    # -- setup ------------------------------------------------------------------------------------------

    def setup(self) -> None:
        if self.args.database_url:
            self.url = self.args.database_url
        else:
            log("starting an embedded Postgres")
            self.pg = start_embedded(self.workdir / "pg", cleanup="delete")
            self.url = self.pg.url
        apply_migrations(self.url)
        self.admin = psycopg.connect(self.url, autocommit=True)
        log(f"seeding {self.args.lines:,} + {self.args.baseline_lines:,} lines")
        t0 = time.monotonic()
        self.runs = seed(self.admin, self.args.lines, self.args.baseline_lines)
        log(f"seeded in {time.monotonic() - t0:.1f} s; starting meshlogs serve")
        self.server = ServerProcess(self.url, self.secret, self.workdir, {})
        # Only our settings: a MESHLOGS_* variable of the caller's shell must not change the server.
        ours = {"MESHLOGS_JWT_SECRET", "MESHLOGS_DATA_DIR", "MESHLOGS_LOG_LEVEL"}
        self.server.env = {
            k: v for k, v in self.server.env.items() if not k.startswith("MESHLOGS_") or k in ours
        }
        self.server.start(timeout=self.args.timeout)
        self.meter = CpuMeter(postmaster_pid(self.admin))
        self.meter.set_group("server", [self.server.pid])
        self.meter.set_group("bench", [os.getpid()])

    def teardown(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.admin is not None:
            self.admin.close()
        if self.pg is not None:
            self.pg.stop()

    # -- browser helpers -----------------------------------------------------------------------------

    def chromium_pids(self) -> list[int]:
        kids = psutil.Process(os.getpid()).children(recursive=True)
        out = []
        for p in kids:
            with contextlib.suppress(psutil.Error):
                if "chrom" in p.name().lower():
                    out.append(p.pid)
        return out

    def login(self, page: Page) -> None:
        assert self.server is not None
        page.goto(f"{self.server.url}/login", timeout=self.timeout_ms)
        page.get_by_test_id("login-email").fill(EMAIL)
        page.get_by_test_id("login-password").fill(PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("run-row").first.wait_for(timeout=self.timeout_ms)

    @property
    def timeout_ms(self) -> float:
        return float(self.args.timeout) * 1000

    def open_run(self, browser_page: Page, run: str, target: int) -> dict[str, Any]:
        """Navigate to the run view; return in-page times to the first and all lines shown."""
        assert self.server is not None
        page = browser_page
        page.add_init_script(f"window.__benchTarget = {target}; window.__benchFirst = {self.args.first};")
        page.add_init_script(INSTRUMENT_JS)
        t0 = time.monotonic()
        page.goto(f"{self.server.url}/runs/{run}", wait_until="commit", timeout=self.timeout_ms)
        page.wait_for_function(
            "() => window.__bench && window.__bench.marks.all !== undefined", timeout=self.timeout_ms
        )
        page.wait_for_selector('[data-testid="conn-badge"][data-state="live"]', timeout=self.timeout_ms)
        wall = time.monotonic() - t0
        marks = page.evaluate("window.__bench.marks")
        nav = page.evaluate(
            "(() => { const n = performance.getEntriesByType('navigation')[0];"
            " return n ? {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd} : null })()"
        )
        tasks = page.evaluate("window.__bench.longtasks")
        return {
            "first_ms": round(marks["first"], 1),
            "all_ms": round(marks["all"], 1),
            "wall_s": round(wall, 2),
            "dom_content_loaded_ms": round(nav["dcl"], 1) if nav else None,
            "longtasks": longtask_summary([d for s, d in tasks if s <= marks["all"]]),
        }

    def snapshot(self, page: Page, cdp: CDPSession) -> dict[str, Any]:
        """Heap after a forced GC, DOM size and the renderer's cumulative counters."""
        cdp.send("HeapProfiler.collectGarbage")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        return {
            "heap_mib": round(metrics.get("JSHeapUsedSize", 0) / 2**20, 1),
            "nodes": int(metrics.get("Nodes", 0)),
            "elements": int(page.evaluate("document.getElementsByTagName('*').length")),
            "log_lines_in_dom": int(
                page.evaluate("document.querySelectorAll('[data-testid=log-line]').length")
            ),
            "task_s": metrics.get("TaskDuration", 0.0),
            "script_s": metrics.get("ScriptDuration", 0.0),
            "layout_s": metrics.get("LayoutDuration", 0.0),
            "style_s": metrics.get("RecalcStyleDuration", 0.0),
        }

    def check_exact(self, page: Page, n: int, label: str) -> dict[str, Any]:
        """The page holds exactly lines 1..n: as many rows as the last seq, no seq skipped."""
        got = page.evaluate(
            "(() => { const el = document.querySelector('[data-testid=\"log-list\"]');"
            " return {lines: Number(el.dataset.lines), last: Number(el.dataset.lastSeq),"
            " gapFree: el.dataset.gapFree === 'true'} })()"
        )
        ok = got["lines"] == n and got["last"] == n and got["gapFree"]
        if not ok:
            self.failures.append(f"{label}: expected exactly 1..{n}, page has {got}")
        return {**got, "expected": n, "ok": ok}

    def window(self, page: Page, cdp: CDPSession, seconds: float, writer: Writer | None) -> dict[str, Any]:
        """Watch the page for ``seconds`` (while ``writer`` writes, if any) and summarise that window."""
        assert self.meter is not None
        self.meter.set_group("chromium", self.chromium_pids())
        before = self.snapshot(page, cdp)
        cpu0 = self.meter.sample()
        start = float(page.evaluate("performance.now()"))
        t0 = time.monotonic()
        if writer is not None:
            writer.start()
        while time.monotonic() - t0 < seconds:
            page.wait_for_timeout(500)  # keeps Playwright's event pump going; the page runs on its own
        if writer is not None:
            writer.join(self.args.timeout)
            expected = writer.next_seq - 1
            page.wait_for_function(
                "n => Number(document.querySelector('[data-testid=\"log-list\"]').dataset.lastSeq) >= n",
                arg=expected,
                timeout=self.timeout_ms,
            )
            page.wait_for_timeout(300)  # a few frames to paint the last lines
        end = float(page.evaluate("performance.now()"))
        wall = time.monotonic() - t0
        cpu = CpuMeter.cores(cpu0, self.meter.sample())
        after = self.snapshot(page, cdp)
        b = page.evaluate("window.__bench")
        tasks = [d for s, d in b["longtasks"] if start <= s <= end]
        frames = [t for t in b["frames"] if start <= t <= end]
        intervals = [b2 - a for a, b2 in zip(frames, frames[1:], strict=False)]
        out: dict[str, Any] = {
            "seconds": round(wall, 2),
            "longtasks": longtask_summary(tasks),
            "frame_ms": {k: round(v, 1) if isinstance(v, float) else v for k, v in dist(intervals).items()},
            "main_thread_busy": round((after["task_s"] - before["task_s"]) / max(wall, 1e-9), 3),
            "script_busy": round((after["script_s"] - before["script_s"]) / max(wall, 1e-9), 3),
            "cpu_cores": {k: cpu.get(k) for k in ("chromium", "server", "postgres", "bench", "machine")},
            "heap_mib": after["heap_mib"],
            "heap_growth_mib": round(after["heap_mib"] - before["heap_mib"], 1),
            "nodes": after["nodes"],
            "elements": after["elements"],
            "log_lines_in_dom": after["log_lines_in_dom"],
        }
        if writer is not None:
            out["written"] = writer.next_seq - writer.first_seq
            out["late_ticks"] = writer.late_ticks
            out["latency_ms"] = latency(writer.batches, b["seqLog"], writer.first_seq - 1)
        return out

    # -- the run ----------------------------------------------------------------------------------------

    def run(self, browser: Browser) -> dict[str, Any]:
        context = browser.new_context(viewport=self.viewport)
        try:
            page = context.new_page()
            self.login(page)
            page.close()
            results: dict[str, Any] = {}
            for name, n in (("baseline", self.args.baseline_lines), ("main", self.args.lines)):
                log(f"opening the {name} run ({n:,} lines)")
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Performance.enable")
                load = self.open_run(page, self.runs[name], n)
                load.update({k: v for k, v in self.snapshot(page, cdp).items() if not k.endswith("_s")})
                load["exact"] = self.check_exact(page, n, f"{name} after load")
                results[name] = {"lines": n, "load": load}
                log(f"{name}: first lines at {load['first_ms']:.0f} ms, all at {load['all_ms']:.0f} ms")
                if name == "main":
                    log(f"idle window: {self.args.idle_seconds:.0f} s, nothing written")
                    results[name]["idle"] = self.window(page, cdp, self.args.idle_seconds, None)
                    log(f"live window: {self.args.rate:,} lines/s for {self.args.live_seconds:.0f} s")
                    writer = Writer(
                        self.url,
                        self.runs[name],
                        n + 1,
                        self.args.rate,
                        self.args.live_seconds,
                        self.args.tick_ms,
                    )
                    live = self.window(page, cdp, self.args.live_seconds, writer)
                    total = writer.next_seq - 1
                    live["exact"] = self.check_exact(page, total, "main after live writing")
                    results[name]["live"] = live
                page.close()
            return results
        finally:
            context.close()


def longtask_summary(durations: list[float]) -> dict[str, Any]:
    return {
        "count": len(durations),
        "max_ms": round(max(durations), 1) if durations else 0.0,
        "over_50ms": sum(1 for d in durations if d > 50),
        "over_100ms": sum(1 for d in durations if d > 100),
        "total_ms": round(sum(durations), 1),
    }


def latency(batches: list[tuple[int, float]], seq_log: list[list[float]], base: int) -> dict[str, Any]:
    """Write → on screen per line: each line's batch send time to the first frame showing its seq."""
    times = [t for t, _ in seq_log]
    seqs = [int(s) for _, s in seq_log]
    # seqLog is in frame order and last-seq never decreases, so the first entry >= seq is a bisect.
    out: list[float] = []
    prev = base
    missing = 0
    for last, sent in batches:
        for seq in range(prev + 1, last + 1):
            i = bisect.bisect_left(seqs, seq)
            if i == len(seqs):
                missing += 1
            else:
                out.append(times[i] - sent)
        prev = last
    d = {k: round(v, 1) if isinstance(v, float) else v for k, v in dist(out).items()}
    d["never_shown"] = missing
    return d


# -- report -----------------------------------------------------------------------------------------


def fmt(v: Any, unit: str = "", digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    return f"{v}{unit}"


def ratio(a: Any, b: Any) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return "–"
    return f"{a / b:.2f}×"


def row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def ms(v: Any) -> str:
    return fmt(v, " ms")


def spread(d: dict[str, Any], digits: int = 1) -> str:
    """``p50 / p95 / p99 / max ms`` of a distribution."""
    return " / ".join(fmt(d[k], "", digits) for k in ("p50", "p95", "p99", "max")) + " ms"


def tasks(t: dict[str, Any]) -> str:
    return f"{t['count']} / {t['over_50ms']} / {t['over_100ms']} / {ms(t['max_ms'])}"


def render(result: dict[str, Any]) -> str:
    m = result["meta"]
    base, main = result["runs"]["baseline"], result["runs"]["main"]
    bl, ml = base["load"], main["load"]
    idle, live = main["idle"], main["live"]
    nb, nm = f"{base['lines']:,}", f"{main['lines']:,}"
    out = [
        f"Console bench, {m['date']}, commit {m['commit']}, {m['cpus']} CPUs, {m['browser']},"
        f" viewport {m['viewport']}; `{m['command']}`",
        "",
        row("page load", f"baseline ({nb} lines)", f"{nm} lines", "ratio", "target"),
        "|---|---:|---:|---:|---|",
        row(
            f"navigation → first {m['first']:,} lines shown",
            ms(bl["first_ms"]),
            ms(ml["first_ms"]),
            ratio(ml["first_ms"], bl["first_ms"]),
            "≤ 1,000 ms",
        ),
        row(
            "navigation → all lines loaded",
            ms(bl["all_ms"]),
            ms(ml["all_ms"]),
            ratio(ml["all_ms"], bl["all_ms"]),
            "",
        ),
        row(
            "long tasks while loading: count / > 50 ms / > 100 ms / max",
            tasks(bl["longtasks"]),
            tasks(ml["longtasks"]),
            "",
            "",
        ),
        row(
            "JS heap after load (after GC)",
            fmt(bl["heap_mib"], " MiB", 1),
            fmt(ml["heap_mib"], " MiB", 1),
            ratio(ml["heap_mib"], bl["heap_mib"]),
            "",
        ),
        row(
            "DOM elements / log lines in the DOM",
            f"{fmt(bl['elements'])} / {fmt(bl['log_lines_in_dom'])}",
            f"{fmt(ml['elements'])} / {fmt(ml['log_lines_in_dom'])}",
            ratio(ml["elements"], bl["elements"]),
            "",
        ),
        row("exactly lines 1..N after load", fmt(bl["exact"]["ok"]), fmt(ml["exact"]["ok"]), "", "yes"),
        "",
        row(
            f"{nm}-line page, per window",
            "idle (nothing written)",
            f"live ({m['rate']:,} lines/s)",
            "ratio",
            "target",
        ),
        "|---|---:|---:|---:|---|",
        row(
            "window",
            fmt(idle["seconds"], " s", 1),
            f"{fmt(live['seconds'], ' s', 1)}, {fmt(live['written'])} lines written",
            "",
            "",
        ),
        row(
            "long tasks: count / > 50 ms / > 100 ms / max",
            tasks(idle["longtasks"]),
            tasks(live["longtasks"]),
            "",
            "none > 50 ms",
        ),
        row(
            "long tasks: total time",
            ms(idle["longtasks"]["total_ms"]),
            ms(live["longtasks"]["total_ms"]),
            "",
            "",
        ),
        row(
            "frame interval p50 / p95 / p99 / max",
            spread(idle["frame_ms"]),
            spread(live["frame_ms"]),
            ratio(live["frame_ms"]["p95"], idle["frame_ms"]["p95"]) + " (p95)",
            "",
        ),
        row("write → on screen p50 / p95 / p99 / max", "–", spread(live["latency_ms"], 0), "", ""),
        row(
            "renderer main thread busy (of which script)",
            f"{fmt(idle['main_thread_busy'] * 100, ' %', 1)} ({fmt(idle['script_busy'] * 100, ' %', 1)})",
            f"{fmt(live['main_thread_busy'] * 100, ' %', 1)} ({fmt(live['script_busy'] * 100, ' %', 1)})",
            ratio(live["main_thread_busy"], idle["main_thread_busy"]),
            "",
        ),
        row(
            "CPU cores: chromium / server / postgres",
            " / ".join(fmt(idle["cpu_cores"][k], "", 2) for k in ("chromium", "server", "postgres")),
            " / ".join(fmt(live["cpu_cores"][k], "", 2) for k in ("chromium", "server", "postgres")),
            "",
            "",
        ),
        row(
            "JS heap at the end (growth in the window)",
            f"{fmt(idle['heap_mib'], ' MiB', 1)} ({idle['heap_growth_mib']:+.1f})",
            f"{fmt(live['heap_mib'], ' MiB', 1)} ({live['heap_growth_mib']:+.1f})",
            "",
            "",
        ),
        row(
            "DOM elements / log lines in the DOM",
            f"{fmt(idle['elements'])} / {fmt(idle['log_lines_in_dom'])}",
            f"{fmt(live['elements'])} / {fmt(live['log_lines_in_dom'])}",
            ratio(live["elements"], idle["elements"]),
            "",
        ),
        row(
            f"exactly lines 1..{live['exact']['expected']:,} at the end",
            "",
            fmt(live["exact"]["ok"]),
            "",
            "yes",
        ),
    ]
    return "\n".join(out)


def _meta(argv: list[str], browser: Browser, args: argparse.Namespace) -> dict[str, Any]:
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        if dirty:
            commit += "+dirty"
    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "command": "console_bench.py " + shlex.join(argv),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "browser": f"Chromium {browser.version}",
        "viewport": args.viewport,
        "first": args.first,
        "rate": args.rate,
        "load_before": os.getloadavg()[0],
    }


@contextlib.contextmanager
def launched(args: argparse.Namespace) -> Iterator[Browser]:
    if not Path(args.chromium).exists():
        raise SystemExit(
            f"Chromium not found at {args.chromium} (apt-get install chromium, or --chromium PATH)"
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.baseline_lines < 1 or args.lines < 1 or args.rate < 1:
        raise SystemExit("--lines, --baseline-lines and --rate must be positive")
    with tempfile.TemporaryDirectory(prefix="meshlogs-console-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            bench.setup()
            with launched(args) as browser:
                meta = _meta(argv, browser, args)
                runs = bench.run(browser)
        except Exception:
            if bench.server is not None and bench.server.log_path.exists():
                log(f"server log tail:\n{bench.server.log_path.read_text(errors='replace')[-3000:]}")
            raise
        finally:
            bench.teardown()
            if args.server_log and bench.server is not None and bench.server.log_path.exists():
                shutil.copyfile(bench.server.log_path, args.server_log)
    meta["load_after"] = os.getloadavg()[0]
    result = {"meta": meta, "runs": runs, "failures": bench.failures}
    if args.json:
        print(render(result), file=sys.stderr)
        print(json.dumps(result, indent=1, default=str))
    else:
        print(render(result))
    if bench.failures:
        log("EXACTNESS CHECK FAILED: " + "; ".join(bench.failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
