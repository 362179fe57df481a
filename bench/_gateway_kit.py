"""Plumbing for ``bench/gateway_bench.py``: latency histograms, CPU per process, the server process,
and the command pipe between the orchestrator and its client/writer processes.

Nothing here measures by itself; the scenarios in ``gateway_bench.py`` decide what to run and what
a window is. Kept apart so that the child processes (``_loadclient``, ``_loadwriter``) import only
what they need.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

# -- latency histogram -------------------------------------------------------------------------------

#: Bucket layout, in µs: 10 µs wide below 10 ms, 100 µs below 100 ms, 1 ms below 60 s, then one
#: overflow bucket. Percentiles are reported as the bucket's upper edge (never optimistic).
_FINE, _MID, _COARSE = 10_000, 100_000, 60_000_000
_N_FINE = _FINE // 10
_N_MID = (_MID - _FINE) // 100
_N_COARSE = (_COARSE - _MID) // 1000
SIZE = _N_FINE + _N_MID + _N_COARSE + 1


def bucket_of(us: int) -> int:
    if us < _FINE:
        return us // 10 if us > 0 else 0
    if us < _MID:
        return _N_FINE + (us - _FINE) // 100
    if us < _COARSE:
        return _N_FINE + _N_MID + (us - _MID) // 1000
    return SIZE - 1


def upper_us(index: int) -> int:
    if index < _N_FINE:
        return (index + 1) * 10
    index -= _N_FINE
    if index < _N_MID:
        return _FINE + (index + 1) * 100
    index -= _N_MID
    if index < _N_COARSE:
        return _MID + (index + 1) * 1000
    return _COARSE


class Histogram:
    """Latency counts in µs buckets; cheap to add to, mergeable across processes (as a sparse dict)."""

    __slots__ = ("counts", "max_us", "n")

    def __init__(self) -> None:
        self.counts = [0] * SIZE
        self.n = 0
        self.max_us = 0

    def add(self, us: int) -> None:
        self.counts[bucket_of(us)] += 1
        self.n += 1
        if us > self.max_us:
            self.max_us = us

    def sparse(self) -> dict[str, Any]:
        return {"b": {i: c for i, c in enumerate(self.counts) if c}, "n": self.n, "max": self.max_us}

    @classmethod
    def from_sparse(cls, data: dict[str, Any]) -> Histogram:
        h = cls()
        for i, c in data["b"].items():
            h.counts[int(i)] += c
        h.n = data["n"]
        h.max_us = data["max"]
        return h

    def merge(self, other: Histogram) -> None:
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.n += other.n
        self.max_us = max(self.max_us, other.max_us)

    def percentile_ms(self, p: float) -> float | None:
        if self.n == 0:
            return None
        rank = max(1, int(self.n * p / 100.0 + 0.999999))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(upper_us(i), self.max_us) / 1000.0
        return self.max_us / 1000.0

    def summary(self) -> dict[str, float | int | None]:
        return {
            "n": self.n,
            "p50_ms": self.percentile_ms(50),
            "p95_ms": self.percentile_ms(95),
            "p99_ms": self.percentile_ms(99),
            "max_ms": self.max_us / 1000.0 if self.n else None,
        }


def merge_sparse(parts: list[dict[str, Any]]) -> Histogram:
    h = Histogram()
    for part in parts:
        h.merge(Histogram.from_sparse(part))
    return h


# -- per-run seq tracking ------------------------------------------------------------------------------


class SeqTracker:
    """What one subscriber received of one run: exact gap / duplicate / reorder accounting."""

    __slots__ = ("dups", "last", "missing", "received", "reordered")

    def __init__(self) -> None:
        self.last = 0
        self.missing: set[int] = set()
        self.dups = 0
        self.reordered = 0
        self.received = 0

    def add(self, seq: int) -> None:
        self.received += 1
        last = self.last
        if seq == last + 1:
            self.last = seq
        elif seq > last:
            self.missing.update(range(last + 1, seq))
            self.last = seq
        elif seq in self.missing:
            self.missing.discard(seq)
            self.reordered += 1
        else:
            self.dups += 1

    def complete(self, expected: int) -> bool:
        return self.last == expected and not self.missing and not self.dups and not self.reordered


# -- CPU per process ---------------------------------------------------------------------------------


def _cpu(proc: psutil.Process, *, children: bool = False) -> float:
    try:
        t = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0.0
    total = t.user + t.system
    if children:
        total += t.children_user + t.children_system
    return float(total)


def log(message: str) -> None:
    """A timestamped progress line on stderr (stdout carries the results)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def postmaster_pid(conn: Any) -> int | None:
    """The postmaster of the server ``conn`` (a psycopg connection) talks to: its backend's parent."""
    row = conn.execute("select pg_backend_pid()").fetchone()
    try:
        parent = psutil.Process(int(row[0])).parent() if row else None
    except psutil.Error:
        return None
    return parent.pid if parent is not None else None


class CpuMeter:
    """CPU seconds per named group of processes, Postgres split into walsenders and the rest.

    Postgres backends come and go; a backend that exited was reaped by the postmaster, so its time
    is in the postmaster's ``children_*`` counters, which keeps deltas right across a window.
    ``other`` is the whole machine's busy time minus every process counted here: other tenants of
    this VM (it is shared) and the kernel's softirq work.
    """

    def __init__(self, postmaster_pid: int | None) -> None:
        self._postmaster = psutil.Process(postmaster_pid) if postmaster_pid else None
        self._groups: dict[str, list[psutil.Process]] = {}
        self._walsender_cache: dict[int, bool] = {}

    def set_group(self, name: str, pids: list[int]) -> None:
        self._groups[name] = [psutil.Process(p) for p in pids]

    def drop_group(self, name: str) -> None:
        self._groups.pop(name, None)

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {"wall": time.monotonic()}
        for name, procs in self._groups.items():
            out[name] = sum(_cpu(p) for p in procs)
        if self._postmaster is not None:
            pg = _cpu(self._postmaster, children=True)
            wal = 0.0
            try:
                children = self._postmaster.children()
            except psutil.NoSuchProcess:
                children = []
            for child in children:
                c = _cpu(child)
                if self._is_walsender(child):
                    wal += c
                else:
                    pg += c
            out["postgres"] = pg + wal
            out["walsender"] = wal
        t = psutil.cpu_times()
        out["machine"] = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        out["steal"] = getattr(t, "steal", 0.0)
        return out

    def _is_walsender(self, proc: psutil.Process) -> bool:
        known = self._walsender_cache.get(proc.pid)
        if known is None:
            try:
                known = "walsender" in " ".join(proc.cmdline())
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                known = False
            self._walsender_cache[proc.pid] = known
        return known

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """CPU-seconds per second (1.0 = one full core) per group over the window, plus ``other``."""
        wall = max(after["wall"] - before["wall"], 1e-9)
        out: dict[str, float] = {}
        ours = 0.0
        for key in after:
            if key in ("wall", "machine", "steal", "walsender") or key not in before:
                continue
            out[key] = (after[key] - before[key]) / wall
            ours += out[key]
        if "walsender" in after and "walsender" in before:
            out["walsender"] = max(0.0, (after["walsender"] - before["walsender"]) / wall)
        machine = (after["machine"] - before["machine"]) / wall
        out["machine"] = machine
        out["other"] = max(0.0, machine - ours)
        out["steal"] = (after["steal"] - before["steal"]) / wall
        return {k: round(v, 3) for k, v in out.items()}


# -- the server under test, in its own process ------------------------------------------------------

_READY = re.compile(r"serving on http://[^:]+:(\d+)")


class ServerProcess:
    """``python -m meshlogs serve`` against the bench database, on a free port, logging to a file."""

    def __init__(self, database_url: str, jwt_secret: str, workdir: Path, extra_env: dict[str, str]) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.env = dict(os.environ)
        self.env.update(
            {
                "MESHLOGS_JWT_SECRET": jwt_secret,
                "MESHLOGS_DATA_DIR": str(workdir / "server-data"),
                "MESHLOGS_LOG_LEVEL": "warning",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.update(extra_env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self.log_path = workdir / "server.log"
        self.affinity: set[int] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> int:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n=== server start #{self.starts} ===\n".encode())
        log.flush()
        offset = log.tell()
        cmd = [sys.executable, "-m", "meshlogs", "serve", "--database-url", self.database_url]
        cmd += ["--host", "127.0.0.1", "--port", "0"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        if self.affinity:
            os.sched_setaffinity(self.proc.pid, self.affinity)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            match = _READY.search(text)
            if match:
                self.port = int(match.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"meshlogs serve did not start; its output:\n{text[-4000:]}")
            time.sleep(0.05)
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"meshlogs serve never became ready (see {self.log_path})")
            time.sleep(0.05)
        return self.port

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def metrics(self) -> dict[str, float]:
        """The server's ``/metrics`` counters (Prometheus text), name{labels} -> value."""
        out: dict[str, float] = {}
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return out
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
        return out


# -- orchestrator <-> child process commands ----------------------------------------------------------


class ChildError(RuntimeError):
    pass


@dataclass
class Peer:
    """A child process (``spawn``) that executes commands sent over a pipe, one at a time."""

    name: str
    proc: multiprocessing.process.BaseProcess
    conn: Connection
    pending: list[str] = field(default_factory=list)

    @classmethod
    def spawn(cls, name: str, target: Callable[..., None], *args: Any) -> Peer:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=target, args=(child, *args), name=name, daemon=True)
        proc.start()
        child.close()
        peer = cls(name, proc, parent)
        peer.call("ping", timeout=60)
        return peer

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def send(self, command: str, **kwargs: Any) -> None:
        self.conn.send((command, kwargs))
        self.pending.append(command)

    def recv(self, timeout: float = 600.0) -> Any:
        deadline = time.monotonic() + timeout
        while not self.conn.poll(0.1):
            if not self.proc.is_alive():
                raise ChildError(f"{self.name} died (exit code {self.proc.exitcode})")
            if time.monotonic() > deadline:
                raise ChildError(f"{self.name}: no answer to {self.pending[:1]} within {timeout:.0f}s")
        ok, value = self.conn.recv()
        command = self.pending.pop(0) if self.pending else "?"
        if not ok:
            raise ChildError(f"{self.name} failed in {command}:\n{value}")
        return value

    def call(self, command: str, timeout: float = 600.0, **kwargs: Any) -> Any:
        self.send(command, **kwargs)
        return self.recv(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("quit", {}))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


Handler = Callable[..., Awaitable[Any]]


def serve_commands(conn: Connection, handlers: dict[str, Handler]) -> None:
    """Child side: run an event loop; execute each command in order and send back (ok, result)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

        def reader() -> None:
            while True:
                try:
                    item = conn.recv()
                except (EOFError, OSError):
                    item = ("quit", {})
                loop.call_soon_threadsafe(queue.put_nowait, item)
                if item[0] == "quit":
                    return

        threading.Thread(target=reader, daemon=True).start()
        while True:
            command, kwargs = await queue.get()
            if command == "quit":
                return
            try:
                if command == "ping":
                    result: Any = os.getpid()
                else:
                    result = await handlers[command](**kwargs)
                conn.send((True, result))
            except Exception:
                conn.send((False, traceback.format_exc()))

    raise_nofile_limit()
    asyncio.run(main())


def raise_nofile_limit(wanted: int = 1 << 20) -> int:
    """Raise this process's soft open-files limit as far as the hard limit allows; return it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
