"""The load-client process of ``bench/gateway_bench.py``: many lean viewers in one event loop.

Three kinds of viewer, all recording the same things (latency per step, seq 1..N per run):

- **WebSocket viewers** speak the Supabase Realtime protocol (vsn 1.0.0 JSON objects) over a raw
  ``asyncio.Protocol``: HTTP upgrade, unmasked server frames parsed in ``data_received``, one
  ``orjson.loads`` per frame, no coroutine per message. Heartbeats every 25 s, pings answered, a
  server close (e.g. 1013 slow consumer) recorded with its code and reason. The official clients
  are exercised by the test suite; this one exists to be cheap, so that the server gets the CPU.
- **Pollers** (baseline a): every viewer runs the REST backfill query every ``interval`` seconds,
  as PostgREST would run it: one transaction with the user's role and JWT claims (RLS on).
- **A LISTEN consumer** (baseline b) for the row-level ``pg_notify`` trigger.

Latency = the time this process read the bytes (``time.time_ns()`` once per ``data_received``, per
poll result, per notification) − the wall-clock stamp the writer put in the message just before the
statement that inserted and committed it. Messages look like ``"<step>|<stamp ns>|<filler>"``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
import time
from multiprocessing.connection import Connection
from typing import Any

import orjson
import psycopg

from _gateway_kit import Histogram, SeqTracker, serve_commands

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HEARTBEAT_EVERY = 25.0


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client->server WebSocket frame (RFC 6455 §5.3)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    if n:
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        payload = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return header + mask + payload


class Recorder:
    """Latency histograms and counts per step, shared by every viewer of this process."""

    def __init__(self) -> None:
        self.hists: dict[int, Histogram] = {}
        self.bad_messages = 0
        self.pair_steps: set[int] = set()
        self.by_stamp: dict[int, list[int]] = {}
        self.last_recv: dict[int, int] = {}

    def record(self, message: str, now_ns: int) -> None:
        try:
            step_s, stamp_s, _ = message.split("|", 2)
            step, stamp = int(step_s), int(stamp_s)
        except ValueError:
            self.bad_messages += 1
            return
        hist = self.hists.get(step)
        if hist is None:
            hist = self.hists[step] = Histogram()
        hist.add((now_ns - stamp) // 1000)
        self.last_recv[step] = now_ns
        if step in self.pair_steps:
            self.by_stamp.setdefault(stamp, []).append(now_ns)

    def from_commit(self, commits: dict[int, int]) -> Histogram:
        """Receive time − the writer's "commit returned" time, for the paired steps' messages.

        It can be ≤ 0 (the walsender may send the commit before the writer has read Postgres's
        answer); such messages land in the first bucket.
        """
        hist = Histogram()
        for stamp, recvs in self.by_stamp.items():
            done = commits.get(stamp)
            if done is not None:
                for recv in recvs:
                    hist.add((recv - done) // 1000)
        return hist

    def counts(self) -> dict[int, int]:
        return {step: h.n for step, h in self.hists.items()}


class Viewer:
    """One subscriber of one run (a WebSocket channel, a poller, or the LISTENer's view of a run)."""

    __slots__ = ("closed", "errors", "joined", "proto", "run", "seqs", "vid")

    def __init__(self, vid: int, run: str) -> None:
        self.vid = vid
        self.run = run
        self.seqs = SeqTracker()
        self.joined: asyncio.Future[None] | None = None
        self.proto: WsViewer | None = None
        self.closed: str | None = None  # why the server ended the connection or channel
        self.errors: list[str] = []


class WsViewer(asyncio.Protocol):
    """One WebSocket connection with one channel, joined to ``run_logs`` of one run."""

    def __init__(self, owner: LoadClient, viewer: Viewer, path: str, host: str, token: str) -> None:
        self.owner = owner
        self.viewer = viewer
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.closing = False
        self.last_heartbeat = time.monotonic() + random.random() * HEARTBEAT_EVERY - HEARTBEAT_EVERY
        self.hb_ref = 1
        self.fragments: list[bytes] = []
        self.topic = f"realtime:run-{viewer.run}"
        key = base64.b64encode(os.urandom(16))
        self.accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.join = orjson.dumps(
            {
                "topic": self.topic,
                "event": "phx_join",
                "ref": "1",
                "join_ref": "1",
                "payload": {
                    "config": {
                        "broadcast": {"ack": False, "self": False},
                        "presence": {"key": "", "enabled": False},
                        "private": False,
                        "postgres_changes": [
                            {
                                "event": "INSERT",
                                "schema": "public",
                                "table": "run_logs",
                                "filter": f"run_id=eq.{viewer.run}",
                            }
                        ],
                    },
                    "access_token": token,
                },
            }
        )

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        v = self.viewer
        if not self.closing and v.closed is None:
            v.closed = f"connection lost ({exc or 'EOF'})"
        if v.joined is not None and not v.joined.done():
            v.joined.set_exception(ConnectionError(v.closed or "connection lost before the join"))

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            if not head.startswith("HTTP/1.1 101") or self.accept.decode() not in head:
                self._fail(f"upgrade refused: {head.splitlines()[0] if head else '?'}")
                return
            self.upgraded = True
            self.send(self.join)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, hdr = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, hdr = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, hdr = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if b1 & 0x80:  # servers must not mask; tolerate it anyway
                hdr += 4
            if n - pos < hdr + length:
                break
            payload = bytes(buf[pos + hdr : pos + hdr + length])
            if b1 & 0x80:
                mask = buf[pos + hdr - 4 : pos + hdr]
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            pos += hdr + length
            self._frame(b0, payload, now)
        if pos:
            del buf[:pos]

    # -- frames ---------------------------------------------------------------------------------------

    def _frame(self, b0: int, payload: bytes, now: int) -> None:
        opcode = b0 & 0x0F
        if opcode == 0x1 or opcode == 0x0:
            if not b0 & 0x80:
                self.fragments.append(payload)
                return
            if self.fragments:
                payload = b"".join([*self.fragments, payload])
                self.fragments.clear()
            self._text(payload, now)
        elif opcode == 0x9:
            self.send(payload, 0xA)
        elif opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            reason = payload[2:].decode(errors="replace")
            if not self.closing:
                self.viewer.closed = f"server closed the connection: {code} {reason}".strip()
                self.closing = True
                self.send(payload[:2], 0x8)
            if self.transport is not None:
                self.transport.close()

    def _text(self, data: bytes, now: int) -> None:
        msg = orjson.loads(data)
        event = msg["event"]
        v = self.viewer
        if event == "postgres_changes":
            record = msg["payload"]["data"]["record"]
            v.seqs.add(record["seq"])
            self.owner.recorder.record(record["message"], now)
        elif event == "phx_reply":
            if msg["topic"] == self.topic and msg["ref"] == "1" and v.joined is not None:
                if msg["payload"]["status"] == "ok":
                    if not v.joined.done():
                        v.joined.set_result(None)
                else:
                    self._fail(f"join refused: {msg['payload'].get('response')}")
        elif event in ("phx_error", "phx_close"):
            v.closed = f"channel {event}: {msg.get('payload')}"
        elif event == "system" and msg["payload"].get("status") == "error":
            v.errors.append(str(msg["payload"].get("message")))

    def _fail(self, why: str) -> None:
        v = self.viewer
        v.closed = why
        if v.joined is not None and not v.joined.done():
            v.joined.set_exception(ConnectionError(why))
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(payload, opcode))

    def heartbeat(self, now: float) -> None:
        if self.upgraded and now - self.last_heartbeat >= HEARTBEAT_EVERY:
            self.last_heartbeat = now
            self.hb_ref += 1
            ref = f"hb{self.hb_ref}"
            self.send(b'{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"%s"}' % ref.encode())

    def close(self) -> None:
        self.closing = True
        self.send(struct.pack("!H", 1000), 0x8)
        if self.transport is not None:
            self.transport.close()


class LoadClient:
    """Everything one client process holds: viewers, pollers, the LISTENer, their recorder."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.recorder = Recorder()
        self.viewers: list[Viewer] = []
        self.listened: dict[str, Viewer] = {}
        self.queries = 0
        self.query_hist = Histogram()
        self._pollers: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._heartbeats: asyncio.Task[None] | None = None
        self._listen_conn: psycopg.AsyncConnection[Any] | None = None

    # -- WebSocket viewers -------------------------------------------------------------------------------

    async def open(
        self,
        host: str,
        port: int,
        apikey: str,
        viewers: list[tuple[int, str, str]],
        concurrency: int = 100,
        join_timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Connect and join each (id, run, user token); return counts and the first few failures."""
        loop = asyncio.get_running_loop()
        path = f"/realtime/v1/websocket?apikey={apikey}&vsn=1.0.0"
        sem = asyncio.Semaphore(concurrency)
        failures: list[str] = []
        t0 = time.monotonic()

        async def one(vid: int, run: str, token: str) -> None:
            v = Viewer(vid, run)
            v.joined = loop.create_future()
            async with sem:
                try:
                    _, proto = await loop.create_connection(
                        lambda: WsViewer(self, v, path, f"{host}:{port}", token), host, port
                    )
                    v.proto = proto
                    await asyncio.wait_for(v.joined, join_timeout)
                except Exception as exc:
                    failures.append(f"viewer {vid}: {type(exc).__name__}: {exc}")
                    if v.proto is not None:
                        v.proto.close()
                    return
            self.viewers.append(v)

        await asyncio.gather(*(one(*spec) for spec in viewers))
        if self._heartbeats is None:
            self._heartbeats = asyncio.create_task(self._heartbeat_forever())
        return {
            "opened": len(viewers) - len(failures),
            "failed": len(failures),
            "failures": failures[:5],
            "seconds": time.monotonic() - t0,
        }

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for v in self.viewers:
                if v.proto is not None:
                    v.proto.heartbeat(now)

    # -- pollers (baseline a) ----------------------------------------------------------------------------

    async def poll_start(
        self, dsn: str, viewers: list[tuple[int, str, str]], interval: float, connections: int, seed: int
    ) -> dict[str, Any]:
        """Start polling: each (id, run, claims JSON) runs the backfill query every ``interval`` s."""
        pool: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        conns = [await psycopg.AsyncConnection.connect(dsn) for _ in range(connections)]
        for conn in conns:
            pool.put_nowait(conn)
        rng = random.Random(seed)
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.1

        async def poller(v: Viewer, claims: str, phase: float) -> None:
            due = start + phase
            while not self._stop.is_set():
                delay = due - loop.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), delay)
                        return
                    except TimeoutError:
                        pass
                due += interval
                conn = await pool.get()
                try:
                    t0 = time.time_ns()
                    async with conn.transaction():
                        await conn.execute(
                            "select set_config('role', 'authenticated', true),"
                            " set_config('request.jwt.claims', %s, true)",
                            (claims,),
                            prepare=True,
                        )
                        cur = await conn.execute(
                            "select seq, message from public.run_logs where run_id = %s and seq > %s"
                            " order by seq limit 1000",
                            (v.run, v.seqs.last),
                            prepare=True,
                        )
                        rows = await cur.fetchall()
                    now = time.time_ns()
                finally:
                    pool.put_nowait(conn)
                self.queries += 1
                self.query_hist.add((now - t0) // 1000)
                for seq, message in rows:
                    v.seqs.add(seq)
                    self.recorder.record(message, now)

        for vid, run, claims in viewers:
            v = Viewer(vid, run)
            self.viewers.append(v)
            self._pollers.append(asyncio.create_task(poller(v, claims, rng.random() * interval)))

        async def close_pool() -> None:
            await self._stop.wait()
            await asyncio.gather(*self._pollers, return_exceptions=True)
            for conn in conns:
                await conn.close()

        self._tasks.append(asyncio.create_task(close_pool()))
        return {"pollers": len(viewers), "connections": connections}

    # -- LISTEN consumer (baseline b) --------------------------------------------------------------------

    async def listen_start(self, dsn: str, channel: str) -> dict[str, Any]:
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        await conn.execute(f"listen {channel}")
        self._listen_conn = conn

        async def consume() -> None:
            async for note in conn.notifies():
                now = time.time_ns()
                row = orjson.loads(note.payload)
                v = self.listened.get(row["run"])
                if v is None:
                    v = self.listened[row["run"]] = Viewer(len(self.listened), row["run"])
                v.seqs.add(row["seq"])
                self.recorder.record(row["message"], now)

        self._tasks.append(asyncio.create_task(consume()))
        return {"listening": channel}

    # -- progress, reports, reset -------------------------------------------------------------------------

    async def counts(self) -> dict[str, Any]:
        return {"steps": self.recorder.counts(), "queries": self.queries}

    async def pair(self, steps: list[int]) -> None:
        """Also keep receive times by stamp for these steps (see :meth:`Recorder.from_commit`)."""
        self.recorder.pair_steps.update(steps)

    async def from_commit(self, commits: dict[int, int]) -> dict[str, Any]:
        return self.recorder.from_commit(commits).sparse()

    async def hists(self, steps: list[int]) -> dict[int, Any]:
        return {s: self.recorder.hists[s].sparse() for s in steps if s in self.recorder.hists}

    async def wait_complete(
        self, expected: dict[str, int], timeout: float, idle_timeout: float = 10.0, kind: str = "ws"
    ) -> dict[str, Any]:
        """Wait until every viewer has its run's last seq (or stopped progressing); then report.

        ``kind`` is ``ws`` or ``poll`` (the viewers) or ``listen`` (one view per run).
        """
        views = self._views(kind, expected)
        t0 = time.monotonic()
        last_progress, last_total = t0, -1
        while True:
            pending = [v for v in views if v.seqs.last < expected.get(v.run, 0) and v.closed is None]
            total = sum(v.seqs.received for v in views)
            now = time.monotonic()
            if total != last_total:
                last_total, last_progress = total, now
            if not pending or now - t0 > timeout or now - last_progress > idle_timeout:
                break
            await asyncio.sleep(0.05)
        return self.report(expected, kind, waited=time.monotonic() - t0)

    def _views(self, kind: str, expected: dict[str, int]) -> list[Viewer]:
        if kind == "listen":
            for run in expected:
                if run not in self.listened:
                    self.listened[run] = Viewer(-1, run)
            return list(self.listened.values())
        return self.viewers

    def report(self, expected: dict[str, int], kind: str, waited: float = 0.0) -> dict[str, Any]:
        """Per-viewer seq accounting against each run's last seq, plus this process's histograms.

        ``gap_seqs``: seqs skipped while later ones arrived (never filled); ``lost_after_close``: the
        tail a viewer missed because the server closed its connection or channel (e.g. a slow-consumer
        disconnect: a real client would resync by seq, this one only counts); ``behind``: viewers still
        open but not caught up when the wait ended (late, not known to be lost).
        """
        views = [v for v in self._views(kind, expected) if v.run in expected]
        problems: list[str] = []
        c = dict.fromkeys(
            (
                "complete",
                "gap_viewers",
                "gap_seqs",
                "dups",
                "reordered",
                "closed_by_server",
                "lost_after_close",
                "behind",
                "behind_seqs",
            ),
            0,
        )
        for v in views:
            want, s = expected[v.run], v.seqs
            if s.complete(want):
                c["complete"] += 1
                continue
            tail = max(0, want - s.last)
            c["gap_viewers"] += 1 if s.missing else 0
            c["gap_seqs"] += len(s.missing)
            c["dups"] += s.dups
            c["reordered"] += s.reordered
            if v.closed:
                c["closed_by_server"] += 1
                c["lost_after_close"] += tail
            elif tail:
                c["behind"] += 1
                c["behind_seqs"] += tail
            if len(problems) < 5:
                problems.append(
                    f"run {v.run} viewer {v.vid}: last {s.last}/{want}, {len(s.missing)} missing inside,"
                    f" {s.dups} dup, {s.reordered} reordered, closed: {v.closed}, errors: {v.errors[:2]}"
                )
        return {
            "viewers": len(views),
            **c,
            "missing_seqs": c["gap_seqs"] + c["lost_after_close"] + c["behind_seqs"],
            "disconnects": sorted({v.closed for v in views if v.closed})[:5],
            "problems": problems,
            "hists": {step: h.sparse() for step, h in self.recorder.hists.items()},
            "last_recv": dict(self.recorder.last_recv),
            "bad_messages": self.recorder.bad_messages,
            "queries": self.queries,
            "query_hist": self.query_hist.sparse(),
            "waited": waited,
        }

    async def reset(self) -> dict[str, Any]:
        """Close every connection, stop pollers and the LISTENer, forget everything."""
        self._stop.set()
        for v in self.viewers:
            if v.proto is not None:
                v.proto.close()
        tasks = [*self._pollers, *self._tasks]
        if self._heartbeats is not None:
            tasks.append(self._heartbeats)
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listen_conn is not None:
            await self._listen_conn.close()
        closed = len(self.viewers)
        self._clear()
        await asyncio.sleep(0.2)
        return {"closed": closed}

    async def stop_polling(self) -> dict[str, Any]:
        self._stop.set()
        await asyncio.gather(*self._pollers, return_exceptions=True)
        return {"queries": self.queries}


def client_main(conn: Connection) -> None:
    client: LoadClient | None = None

    async def call(name: str, **kwargs: Any) -> Any:
        nonlocal client
        if client is None:
            client = LoadClient()
        return await getattr(client, name)(**kwargs)

    names = [
        "open",
        "poll_start",
        "listen_start",
        "counts",
        "hists",
        "pair",
        "from_commit",
        "wait_complete",
        "reset",
        "stop_polling",
    ]
    handlers = {name: (lambda n: lambda **kw: call(n, **kw))(name) for name in names}
    serve_commands(conn, handlers)
