"""Where committed changes come from: the :class:`ChangeSource` interface and its replication reader.

The gateway consumes one :class:`ChangeSource`: an async iterator of :data:`ChangeEvent` —
:class:`~meshlogs.capture.txbuilder.Transaction` in commit order, and :class:`StreamReset` when
changes may have been missed. :class:`ReplicationSource` is the real implementation: one logical
replication stream (pgoutput, proto_version 1) on a TEMPORARY slot, decoded by the pure modules of
this package.

Transport (chosen by measurement, ``bench/capture_bench.py``): psycopg 3 with
``replication=database`` for the setup commands, then libpq's COPY BOTH calls on the same
connection (``get_copy_data`` / ``put_copy_data``) from a reader callback registered with
``loop.add_reader``. Against the alternative (psycopg2 ``LogicalReplicationConnection`` in a thread
feeding the loop, same decoders), on the project's shared 2-core machine: commit → Transaction
latency p50 0.29-0.41 ms vs 0.41-0.53 ms; raw transport cost the same (2-3 µs per message each);
whole-pipeline CPU 12-17 µs per row vs 11-15 (the difference is our per-message bookkeeping);
event-loop lag p99 during a 50,000-row transaction 3-7 ms vs 7-10 ms (the thread holds the GIL for
whole switch intervals). So: no thread, no second driver, no cross-thread hand-off, and
backpressure is simply not reading. The reader drains at most 256 messages per callback before
letting other callbacks run, which is what bounds the loop lag.

Guarantees and policies:

- **Commit order, gap-free within a session.** Everything that commits after :meth:`start` returns
  (or after a :class:`StreamReset` is delivered) is delivered, in commit order, each transaction
  once.
- **Never pretend nothing happened.** The slot is temporary, so what commits while the stream is
  down is never replayed. When the stream breaks (Postgres restart, walsender terminated, network,
  a decode error), the source reconnects with exponential backoff (bounded, full jitter) and, once
  the new slot exists, delivers a :class:`StreamReset` **before** any transaction of the new stream.
  The consumer must then resync everyone (clients backfill by seq). Transactions queued before the
  break are still delivered first; a transaction cut off mid-way (its non-final chunks were
  delivered, the final one never comes) is also covered by the reset.
- **Bounded memory, backpressure to Postgres.** Between the reader and the consumer sits a queue of
  at most ``queue_size`` events, each at most ``max_changes`` changes / ``max_chunk_bytes`` of
  pgoutput. When it is full the reader stops reading the socket; the kernel buffers fill and the
  walsender waits. Standby status updates keep going out meanwhile, so Postgres does not time us out.
- **Acknowledgement.** The flush position reported to Postgres (the slot's ``confirmed_flush_lsn``,
  which lets it recycle WAL) only covers transactions the consumer is done with: with
  ``auto_ack=True`` (default) a transaction counts as handled when the consumer asks for the next
  event; with ``auto_ack=False`` the consumer calls :meth:`ReplicationSource.ack`. When everything
  handed out is acknowledged and no transaction is in flight, the position advances to the
  server's ``wal_end`` (nothing unsent lies before it). The slot being temporary, acknowledgement
  only bounds WAL retention; nothing is ever redelivered.
- **Liveness.** A status update goes out every ``status_interval`` seconds with "reply requested",
  so the server answers with a keepalive; hearing nothing for ``receive_timeout`` seconds while
  reading counts as a broken stream. Keepalives that request a reply are answered at once.
- **Clean shutdown.** :meth:`close` ends the iteration and drops the connection; the temporary slot
  goes with it. (A Postgres shutting down waits for its walsender, which waits for us to confirm
  what it sent: that happens at once when the consumer is caught up, otherwise after the consumer
  acknowledges or ``wal_sender_timeout``.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import os
import random
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Protocol, runtime_checkable

import psycopg
from psycopg import pq

from meshlogs.capture import pgoutput, walproto
from meshlogs.capture.lsn import Lsn
from meshlogs.capture.txbuilder import (
    DEFAULT_MAX_CHANGES,
    DEFAULT_MAX_CHUNK_BYTES,
    Transaction,
    TxBuilder,
)
from meshlogs.errors import DecodeError, ReplicationError

__all__ = [
    "DEFAULT_PUBLICATIONS",
    "ChangeEvent",
    "ChangeSource",
    "ReplicationSource",
    "SourceState",
    "SourceStatus",
    "StreamReset",
    "backoff_delay",
]

log = logging.getLogger(__name__)

#: Publications streamed by default: the realtime tables and the authorization tables.
DEFAULT_PUBLICATIONS: Final = ("supabase_realtime", "meshlogs_authz")

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SLOT_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_READ_BUDGET = 256  # messages handled per reader callback before other callbacks get a turn


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The stream was interrupted: changes committed in between were **not** delivered.

    Delivered after reconnecting, before any transaction of the new stream. Whoever serves clients
    must make every affected subscriber resync (backfill from the table).

    Attributes:
        reason: why the previous stream ended, for logs (may contain server messages; not meant
            for clients).
        last_lsn: ``end_lsn`` of the last complete transaction delivered before the break, if any.
        resume_lsn: where the new stream starts (its slot's consistent point); everything that
            commits after it is delivered.
        attempts: connection attempts it took to get the stream back.
    """

    reason: str
    last_lsn: Lsn | None
    resume_lsn: Lsn
    attempts: int


#: What a :class:`ChangeSource` yields.
ChangeEvent = Transaction | StreamReset


class SourceState(enum.Enum):
    """Lifecycle of a change source."""

    NEW = "new"  # constructed, start() not called yet
    CONNECTING = "connecting"  # start() is connecting for the first time
    STREAMING = "streaming"  # a replication stream is up: ready
    RECONNECTING = "reconnecting"  # the stream broke; backing off and retrying
    CLOSED = "closed"  # close() was called


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A snapshot of a change source's health, for ``/readyz`` and metrics.

    Attributes:
        state: see :class:`SourceState`; ``ready`` is ``state is STREAMING``.
        slot_name: the current temporary slot, if connected.
        received_lsn: the last WAL position received from the server.
        flushed_lsn: the last position reported as handled (the slot's confirmed flush).
        server_wal_end: the server's WAL end as last reported by it.
        lag_bytes: ``server_wal_end - flushed_lsn``: WAL not yet handled by the consumer.
        commit_lag: seconds from the commit (Postgres' clock) to its receipt here (ours), for the
            last transaction received; includes any clock skew between the two machines.
        queue_depth: events waiting for the consumer: at most ``queue_size``, plus the events of
            the one message that was being folded when the queue filled up.
        transactions: transactions (final chunks) received since start.
        changes: row changes received since start.
        resets: streams lost and replaced since start (StreamReset events).
        last_error: the last connection or stream error, if any.
    """

    state: SourceState
    slot_name: str | None
    received_lsn: Lsn | None
    flushed_lsn: Lsn | None
    server_wal_end: Lsn | None
    lag_bytes: int | None
    commit_lag: float | None
    queue_depth: int
    transactions: int
    changes: int
    resets: int
    last_error: str | None

    @property
    def ready(self) -> bool:
        return self.state is SourceState.STREAMING


@runtime_checkable
class ChangeSource(Protocol):
    """Committed changes in commit order, as an async iterator of :data:`ChangeEvent`.

    ``async for event in source`` ends (StopAsyncIteration) after :meth:`close`.
    """

    async def start(self) -> None:
        """Connect and begin streaming; returns once changes committed from now on will arrive.

        Raises:
            ReplicationError: the first connection failed (later failures are retried).
        """
        ...

    async def close(self) -> None:
        """Stop streaming, end the iteration, release the server-side resources. Idempotent."""
        ...

    def __aiter__(self) -> AsyncIterator[ChangeEvent]: ...

    async def __anext__(self) -> ChangeEvent:
        """The next event. Ends after close(), or if the source died of an unexpected error
        (``status.state`` is then CLOSED and ``status.last_error`` says why)."""
        ...

    def ack(self, tx: Transaction) -> None:
        """Declare ``tx`` and everything before it handled (only needed with ``auto_ack=False``)."""
        ...

    @property
    def status(self) -> SourceStatus: ...


def backoff_delay(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """Delay before reconnection attempt ``attempt`` (0-based): full jitter over an exponential.

    ``rand`` in [0, 1) is passed in (pure). The delay is ``rand * min(cap, base * 2**attempt)``
    plus a floor of ``base / 2`` so that retries never spin.
    """
    ceiling = min(cap, base * (2.0 ** min(attempt, 60)))
    return base / 2 + rand * max(0.0, ceiling - base / 2)


class _Closed:
    """Queue sentinel: the source was closed."""


_CLOSED: Final = _Closed()


@dataclass(eq=False)
class _Session:
    conn: psycopg.AsyncConnection[Any]
    slot: str
    consistent_point: Lsn
    builder: TxBuilder
    fd: int
    failed: asyncio.Future[None]  # gets the exception that ended the stream
    reading: bool = False  # our callback is registered on the socket
    last_message: float = 0.0  # loop time of the last message (or of resuming reading)


class _StreamEnded(Exception):
    """The server ended the COPY stream or the socket broke; the message says how."""


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(session: _Session, exc: BaseException) -> None:
    if not session.failed.done():
        session.failed.set_exception(exc)


class ReplicationSource:
    """:class:`ChangeSource` over a pgoutput logical replication stream on a temporary slot.

    Args:
        dsn: libpq URL or conninfo of the database (the role needs REPLICATION or superuser).
        publications: publications to stream (plain lower-case identifiers).
        slot_prefix: temporary slot names are ``{prefix}_{pid}_{random}``.
        queue_size: most events buffered for the consumer before the reader stops reading.
        max_changes: most changes per event (larger transactions arrive in chunks).
        max_chunk_bytes: most pgoutput bytes per event (a single larger row still goes alone).
        max_message_size: longest replication message accepted; a longer one breaks the stream
            (DecodeError → StreamReset), the row is then only reachable by backfill.
        status_interval: seconds between standby status updates (also our liveness ping).
        receive_timeout: seconds of silence from the server, while reading, that break the stream.
        connect_timeout: seconds one connection attempt may take, slot creation included (slot
            creation waits for transactions running at that moment to end).
        backoff_base: first reconnection delay ceiling in seconds (doubling up to ``backoff_cap``).
        backoff_cap: largest reconnection delay in seconds.
        auto_ack: acknowledge a transaction when the consumer asks for the next event.
        rand: source of jitter in [0, 1).
    """

    def __init__(
        self,
        dsn: str,
        *,
        publications: Iterable[str] = DEFAULT_PUBLICATIONS,
        slot_prefix: str = "meshlogs",
        queue_size: int = 64,
        max_changes: int = DEFAULT_MAX_CHANGES,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        max_message_size: int = pgoutput.DEFAULT_MAX_MESSAGE_SIZE,
        status_interval: float = 10.0,
        receive_timeout: float = 30.0,
        connect_timeout: float = 30.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
        auto_ack: bool = True,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._publications = tuple(publications)
        if not self._publications or not all(_IDENTIFIER.fullmatch(p) for p in self._publications):
            raise ValueError(f"publications must be plain lower-case identifiers: {self._publications!r}")
        if not _SLOT_PREFIX.fullmatch(slot_prefix):
            raise ValueError(f"slot_prefix must match {_SLOT_PREFIX.pattern}: {slot_prefix!r}")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._dsn = dsn
        self._slot_prefix = slot_prefix
        self._max_changes = max_changes
        self._max_chunk_bytes = max_chunk_bytes
        self._max_message_size = max_message_size
        self._status_interval = status_interval
        self._receive_timeout = receive_timeout
        self._connect_timeout = connect_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._auto_ack = auto_ack
        self._rand = rand
        TxBuilder(max_changes=max_changes, max_bytes=max_chunk_bytes)  # validate early

        self._queue: asyncio.Queue[ChangeEvent | _Closed] = asyncio.Queue(queue_size)
        self._state = SourceState.NEW
        self._session: _Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._handed: Transaction | None = None
        self._closed = False
        # Events that did not fit the queue (from the message being handled when it filled up);
        # while any wait here, the socket is not read.
        self._overflow: collections.deque[ChangeEvent] = collections.deque()
        self._type_names: dict[int, str] = {}
        # positions
        self._received = Lsn.ZERO
        self._acked = Lsn.ZERO  # highest end_lsn the consumer is done with
        self._emitted = Lsn.ZERO  # end_lsn of the last non-empty transaction queued
        self._idle = Lsn.ZERO  # nothing undelivered lies before this, besides what was queued
        self._flushed = Lsn.ZERO  # last flush position sent to the server
        self._wal_end: Lsn | None = None
        self._last_delivered: Lsn | None = None
        # stats
        self._commit_lag: float | None = None
        self._transactions = 0
        self._changes = 0
        self._resets = 0
        self._last_error: str | None = None

    # -- ChangeSource ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._state is not SourceState.NEW:
            raise RuntimeError(f"start() on a source that is {self._state.value}")
        self._state = SourceState.CONNECTING
        try:
            session = await self._connect()
        except ReplicationError as exc:
            self._last_error = str(exc)
            await self.close()
            raise
        self._session = session
        self._state = SourceState.STREAMING
        self._task = asyncio.create_task(self._run(session), name=f"capture {session.slot}")
        self._task.add_done_callback(self._on_run_done)

    def _on_run_done(self, task: asyncio.Task[None]) -> None:
        """``_run`` only ends by cancellation (close()); anything else is a bug: end the iteration
        loudly rather than leave the consumer waiting forever."""
        if task.cancelled() or self._closed:
            return
        exc = task.exception()
        log.error("change capture stopped", exc_info=exc)
        self._last_error = f"change capture stopped: {_describe(exc) if exc else 'no reason'}"
        self._state = SourceState.CLOSED
        self._task = None
        self._end_iteration()

    def _end_iteration(self) -> None:
        """Drop undelivered events and wake the consumer with the end of the iteration."""
        if not self._closed:
            self._closed = True
            self._overflow.clear()
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_CLOSED)

    async def close(self) -> None:
        self._state = SourceState.CLOSED
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop_session()
        self._end_iteration()

    def __aiter__(self) -> AsyncIterator[ChangeEvent]:
        return self

    async def __anext__(self) -> ChangeEvent:
        handed, self._handed = self._handed, None
        if handed is not None:
            self.ack(handed)
        if self._state is SourceState.NEW:
            raise RuntimeError("call start() before iterating")
        item = await self._queue.get()
        if self._overflow:
            self._refill()
        if isinstance(item, _Closed):
            self._queue.put_nowait(item)  # for any other waiter
            raise StopAsyncIteration
        if self._auto_ack and isinstance(item, Transaction):
            self._handed = item
        return item

    def ack(self, tx: Transaction) -> None:
        if tx.final and tx.end_lsn > self._acked:
            self._acked = tx.end_lsn

    @property
    def status(self) -> SourceStatus:
        session = self._session
        flushed = self._flush_position() if session is not None else None
        wal_end = self._wal_end
        return SourceStatus(
            state=self._state,
            slot_name=session.slot if session is not None else None,
            received_lsn=self._received or None,
            flushed_lsn=flushed,
            server_wal_end=wal_end,
            lag_bytes=max(0, wal_end - flushed) if wal_end is not None and flushed is not None else None,
            commit_lag=self._commit_lag,
            queue_depth=self._queue.qsize() + len(self._overflow),
            transactions=self._transactions,
            changes=self._changes,
            resets=self._resets,
            last_error=self._last_error,
        )

    async def __aenter__(self) -> ReplicationSource:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- connection lifecycle ----------------------------------------------------------------------

    async def _run(self, session: _Session) -> None:
        """Stream; on failure reconnect with backoff and announce the gap. Runs until cancelled."""
        first: StreamReset | None = None
        while True:
            self._session = session
            self._state = SourceState.STREAMING
            began = time.monotonic()
            try:
                await self._stream(session, first)
                reason = "replication stream ended"  # pragma: no cover - _stream only raises
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError, DecodeError, _StreamEnded, TimeoutError) as exc:
                reason = f"replication stream lost: {_describe(exc)}"
                log.warning("%s (slot %s)", reason, session.slot)
            except Exception as exc:  # a bug here must not end change capture silently
                reason = f"replication stream failed: {_describe(exc)}"
                log.exception("%s (slot %s)", reason, session.slot)
            self._last_error = reason
            self._state = SourceState.RECONNECTING
            await self._drop_session()
            stable = time.monotonic() - began >= max(5.0, 2 * self._backoff_cap)
            session, attempts = await self._reconnect(first_attempt=0 if stable else 2)
            self._resets += 1
            log.info("replication stream back on slot %s after %d attempt(s)", session.slot, attempts)
            # Delivered by the new session before it reads anything; if the queue is full it waits
            # in the overflow while the session's status updates already keep the stream alive.
            first = StreamReset(reason, self._last_delivered, session.consistent_point, attempts)

    async def _reconnect(self, *, first_attempt: int) -> tuple[_Session, int]:
        attempt = first_attempt
        tries = 0
        while True:
            delay = backoff_delay(attempt, base=self._backoff_base, cap=self._backoff_cap, rand=self._rand())
            await asyncio.sleep(delay)
            tries += 1
            try:
                return await self._connect(), tries
            except ReplicationError as exc:
                self._last_error = str(exc)
                log.warning("reconnecting replication stream failed (attempt %d): %s", tries, exc)
            except Exception as exc:  # a bug must not stop the retries
                self._last_error = f"reconnecting failed: {_describe(exc)}"
                log.exception("reconnecting replication stream failed (attempt %d)", tries)
            attempt += 1

    async def _connect(self) -> _Session:
        """Open a replication connection, create a temporary slot and start streaming from it.

        Raises:
            ReplicationError: any failure, with the server's message.
        """
        slot = f"{self._slot_prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                conn = await psycopg.AsyncConnection.connect(
                    self._dsn,
                    replication="database",
                    autocommit=True,
                    application_name=slot,
                    connect_timeout=max(1, round(self._connect_timeout)),
                )
                consistent_point = await self._prepare(conn, slot)
                await self._start_replication(conn, slot, consistent_point)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            if conn is not None:
                await conn.close()
            raise ReplicationError(f"cannot start logical replication: {_describe(exc)}") from exc
        except BaseException:
            if conn is not None:
                await conn.close()
            raise
        builder = TxBuilder(
            max_changes=self._max_changes, max_bytes=self._max_chunk_bytes, type_lookup=self._type_names.get
        )
        self._idle = max(self._idle, consistent_point)
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        return _Session(conn, slot, consistent_point, builder, conn.pgconn.socket, failed)

    async def _prepare(self, conn: psycopg.AsyncConnection[Any], slot: str) -> Lsn:
        # Replication connections only speak the simple query protocol: no parameters. The names
        # interpolated below were validated as plain identifiers in __init__.
        wanted = ", ".join(f"'{p}'" for p in self._publications)
        cur = await conn.execute(f"select pubname from pg_publication where pubname in ({wanted})")
        found = {row[0] for row in await cur.fetchall()}
        missing = [p for p in self._publications if p not in found]
        if missing:
            raise ReplicationError(
                f"publication(s) {', '.join(missing)} do not exist (run `meshlogs migrate`)"
            )
        cur = await conn.execute("select oid::int8, typname::text from pg_type")
        self._type_names = {int(oid): str(name) for oid, name in await cur.fetchall()}
        cur = await conn.execute(
            f"CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'nothing')"
        )
        row = await cur.fetchone()
        if row is None:  # pragma: no cover - the server always answers with one row
            raise ReplicationError("CREATE_REPLICATION_SLOT returned nothing")
        return Lsn.parse(str(row[1]))

    async def _start_replication(self, conn: psycopg.AsyncConnection[Any], slot: str, start: Lsn) -> None:
        pgconn = conn.pgconn
        publications = ",".join(self._publications)
        command = (
            f"START_REPLICATION SLOT {slot} LOGICAL {start} "
            f"(proto_version '1', publication_names '{publications}')"
        )
        pgconn.nonblocking = 1
        pgconn.send_query(command.encode())
        while pgconn.flush() == 1:
            await self._wait_io(pgconn.socket, write=True)
        pgconn.consume_input()
        while pgconn.is_busy():
            await self._wait_io(pgconn.socket)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_BOTH:
            message = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) if result else None
            text = message.decode(errors="replace") if message else pgconn.get_error_message()
            raise ReplicationError(f"START_REPLICATION failed: {text}")

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            self._stop_reading(session)
            if not session.failed.done():
                session.failed.cancel()
            with contextlib.suppress(Exception):
                await session.conn.close()

    # -- streaming ---------------------------------------------------------------------------------

    async def _stream(self, session: _Session, first: StreamReset | None) -> None:
        """Read the session's stream until it fails; raises what ended it."""
        if first is not None:
            self._deliver(first)
        if not self._overflow:
            self._start_reading(session)
        feedback = asyncio.create_task(self._feedback_loop(session), name=f"capture status {session.slot}")
        try:
            await session.failed
        finally:
            self._stop_reading(session)
            feedback.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feedback

    # The reader is a callback on the socket, not a task (websockets' data_received shape): when
    # the socket is readable it drains every complete message libpq holds, folds them, and puts
    # the resulting events in the queue. No task switch, future or timer per wake-up.

    def _start_reading(self, session: _Session) -> None:
        if session.reading or session.failed.done() or session is not self._session:
            return
        loop = asyncio.get_running_loop()
        loop.add_reader(session.fd, self._on_readable, session, True)
        session.reading = True
        session.last_message = loop.time()
        loop.call_soon(self._on_readable, session, False)  # what libpq may already hold

    def _stop_reading(self, session: _Session) -> None:
        if session.reading:
            session.reading = False
            asyncio.get_running_loop().remove_reader(session.fd)

    def _on_readable(self, session: _Session, consume: bool) -> None:
        if not session.reading:
            return
        pgconn = session.conn.pgconn
        builder = session.builder
        try:
            if consume:  # the socket is readable: the server is alive
                session.last_message = asyncio.get_running_loop().time()
                pgconn.consume_input()
            for _ in range(_READ_BUDGET):
                nbytes, data = pgconn.get_copy_data(1)
                if nbytes > 0:
                    for event in self._handle(session, builder, data):
                        self._deliver(event)
                    if not session.reading:  # the queue filled up: stop here
                        return
                elif nbytes == 0:
                    return
                else:
                    raise _StreamEnded(_end_reason(pgconn))
            # Budget spent with messages left: let other callbacks run, then continue.
            asyncio.get_running_loop().call_soon(self._on_readable, session, False)
        except Exception as exc:
            self._stop_reading(session)
            _fail(session, exc)

    def _deliver(self, event: ChangeEvent) -> None:
        """Queue an event; if the queue is full, hold it and stop reading (backpressure)."""
        if self._overflow or self._queue.full():
            self._overflow.append(event)
            if self._session is not None:
                self._stop_reading(self._session)
        else:
            self._queue.put_nowait(event)

    def _refill(self) -> None:
        """The consumer made room: move held events into the queue, then read again."""
        while self._overflow and not self._queue.full():
            self._queue.put_nowait(self._overflow.popleft())
        if not self._overflow and self._session is not None and self._state is SourceState.STREAMING:
            self._start_reading(self._session)

    def _handle(self, session: _Session, builder: TxBuilder, data: memoryview) -> tuple[Transaction, ...]:
        message = walproto.parse(data, max_size=self._max_message_size + 25)
        self._wal_end = message.wal_end
        if message.__class__ is walproto.Keepalive:
            assert isinstance(message, walproto.Keepalive)
            if not builder.in_transaction and message.wal_end > self._idle:
                self._idle = message.wal_end
            if message.reply_requested:
                self._send_status(session, reply=False)
            return ()
        assert isinstance(message, walproto.XLogData)
        if message.data_start.value > self._received.value:  # ints: this runs once per row
            self._received = message.data_start
        payload = message.payload
        txs = builder.receive(pgoutput.decode(payload, max_size=self._max_message_size), len(payload))
        if not txs:
            return ()
        out: list[Transaction] = []
        now = time.time()
        for tx in txs:
            self._changes += len(tx.changes)
            if tx.final:
                self._transactions += 1
                self._commit_lag = now - tx.commit_time.timestamp()
                if tx.end_lsn > self._received:
                    self._received = tx.end_lsn
                if not tx.changes and tx.part == 0:
                    # nothing to deliver (only unpublished tables touched): just move past it
                    if tx.end_lsn > self._idle:
                        self._idle = tx.end_lsn
                    continue
                self._emitted = tx.end_lsn
                self._last_delivered = tx.end_lsn
            out.append(tx)
        return tuple(out)

    async def _feedback_loop(self, session: _Session) -> None:
        """Every ``status_interval``: check the server is alive, then report our position and ask
        for a reply (the server answers with a keepalive, so an idle stream still hears from it)."""
        try:
            pgconn = session.conn.pgconn
            loop = asyncio.get_running_loop()
            while True:
                await asyncio.sleep(self._status_interval)
                silent = loop.time() - session.last_message
                if session.reading and silent > self._receive_timeout:
                    raise _StreamEnded(f"no message from the server for {silent:.1f} s")
                self._send_status(session, reply=True)
                while pgconn.flush() == 1:
                    await self._wait_io(session.fd, write=True, timeout=self._receive_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._stop_reading(session)
            _fail(session, exc)

    def _flush_position(self) -> Lsn:
        if self._acked >= self._emitted:
            return max(self._acked, self._idle)
        return self._acked

    def _send_status(self, session: _Session, *, reply: bool) -> None:
        flushed = self._flush_position()
        self._flushed = flushed
        write = max(self._received, flushed)
        status = walproto.standby_status(write, flushed, flushed, datetime.now(UTC), reply=reply)
        pgconn = session.conn.pgconn
        if pgconn.put_copy_data(status) != 1:
            raise _StreamEnded("could not queue a standby status update")
        pgconn.flush()  # a partial flush is finished by the feedback loop

    async def _wait_io(self, fd: int, *, write: bool = False, timeout: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if write:
            loop.add_writer(fd, _wake, future)
        else:
            loop.add_reader(fd, _wake, future)
        try:
            async with asyncio.timeout(timeout):
                await future
        finally:
            if write:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)


def _end_reason(pgconn: pq.abc.PGconn) -> str:
    """Why COPY BOTH ended: the server's error message if it sent one."""
    message = ""
    with contextlib.suppress(Exception):
        result = pgconn.get_result()
        if result is not None:
            primary = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY)
            if primary:
                message = primary.decode(errors="replace")
    if not message:
        message = pgconn.get_error_message() or "the server ended the replication stream"
    return message.strip()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
