"""``AsyncLogWriter``: buffered, batched, retried appends to ``run_logs`` over psycopg 3 async.

How a line travels:

1. ``write()`` validates, cleans, masks and serializes the line in the caller
   (:class:`~meshlogs.writer.lines.LineEncoder`), then appends it to its run's buffer in the
   :class:`~meshlogs.writer.spool.Spool`. It returns at once unless the buffer is full.
2. ``connections`` sender tasks ("lanes"), each owning one autocommit connection, take due batches
   (per run, in write order, one batch in flight per run) and send each with ONE round trip:
   ``select public.append_run_logs(run, lines, batch_key)``. The JSON array is sent as the exact
   bytes orjson produced, through a text-format ``jsonb`` dumper, and the statement is prepared.
3. Failures are classified (:mod:`meshlogs.writer.retry`): connection trouble is retried with the
   same idempotency key after a jittered backoff on a fresh connection; a rejected line is dropped
   and reported while the rest of its batch is sent again; anything else is reported.

Backpressure: at most ``max_buffer_lines`` lines / ``max_buffer_bytes`` bytes are held (buffered or
in flight). A full buffer makes ``write()`` wait (and makes every buffered run due at once), makes
``write_nowait()`` raise :class:`~meshlogs.errors.WriterFullError`, and never drops a line.

Errors that happen in the background (:class:`~meshlogs.errors.LineRejectedError`,
:class:`~meshlogs.errors.DeliveryError`) are never silent: they go to ``on_error`` when one is given;
otherwise they are kept (at most 100, with a count of the rest) and the next ``flush()`` or
``aclose()`` raises the first, with a note counting the others.

Exit: an ``AsyncLogWriter`` flushes on ``aclose()`` / leaving ``async with``; it cannot flush
after its event loop has stopped (there is no loop left to send on). If the loop cancels its sender
tasks (``asyncio.run()`` returning) while lines are still buffered and the writer was never closed,
it logs an error naming the number of lines lost, so a forgotten ``aclose()`` is never silent. The
synchronous :class:`~meshlogs.writer.sync_writer.LogWriter` does flush at interpreter exit.

Threads: the writer belongs to the event loop it is first used on. Its buffer is guarded by a
``threading.Lock`` (held for microseconds, never across an ``await``) so that the synchronous
:class:`~meshlogs.writer.sync_writer.LogWriter` can feed it from other threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar

import psycopg

from meshlogs.config import Settings
from meshlogs.errors import (
    DeliveryError,
    LineRejectedError,
    WriterClosedError,
    WriterError,
    WriterFullError,
)
from meshlogs.writer.appender import Lane
from meshlogs.writer.lines import LineEncoder
from meshlogs.writer.masking import DEFAULT_MIN_SECRET_LENGTH, SecretMasker
from meshlogs.writer.reporting import ErrorCallback, ErrorSink, WriterStats
from meshlogs.writer.retry import Failure, RetryPolicy, classify
from meshlogs.writer.spool import Batch, FlushMark, Spool

__all__ = ["DEFAULT_CONNECTIONS", "DEFAULT_MAX_BUFFER_BYTES", "AsyncLogWriter", "WriterStats"]

log = logging.getLogger(__name__)

#: Sender connections. Appends to one run serialize in the database anyway; more connections help
#: writers of many runs until the database's cores are busy (2 saturate a 2-core machine).
DEFAULT_CONNECTIONS = 2

#: Memory bound next to ``max_buffer_lines``: 100,000 lines of the maximum size would be 6.5 GB.
DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024

_YIELD_EVERY = 256


class AsyncLogWriter:
    """Writes workflow-run log lines to Postgres in batches. Use as ``async with``.

    Args:
        dsn: libpq URL of a role allowed to execute ``append_run_logs`` (service_role or superuser).
        batch_lines: a run's buffer is sent once it holds this many lines (at most 10,000).
        batch_bytes: ... or this many bytes of encoded lines.
        flush_interval: ... or once its oldest line has waited this many seconds.
        max_buffer_lines: lines held (buffered + in flight, all runs) before ``write()`` waits.
        max_buffer_bytes: bytes held before ``write()`` waits.
        max_line_bytes: longer messages are truncated before sending (same marker as the database).
        connections: sender connections (runs proceed in parallel over them).
        secrets: values to mask as ``***`` (more with :meth:`add_secret`).
        min_secret_length: shorter secrets are ignored (see :mod:`meshlogs.writer.masking`).
        retry: backoff and give-up bounds.
        on_error: called (on the event loop) with each background error instead of keeping it for
            ``flush()`` / ``aclose()`` to raise; it must not block.
        connect_timeout: seconds for one connection attempt.
        application_name: shown in ``pg_stat_activity``.

    Defaults (the ``MESHLOGS_WRITER_*`` settings): batches of up to 2,000 lines or 1 MiB, a line waits
    at most 50 ms, 100,000 lines or 64 MiB buffered, 65,536-byte messages, 2 connections. Measured
    with ``bench/writer_bench.py`` (100-byte lines): the writer costs about 5 µs of client CPU a line
    and ``append_run_logs()`` about 16 µs of database CPU a line, so one run, whose batches are
    serialized, is bounded by one database core (about 60,000 lines/s), and several runs by the
    database's cores; batches beyond 2,000 lines do not lower the per-line cost, smaller ones raise it.
    """

    DEFAULT_BATCH_LINES: ClassVar[int] = Settings.writer_batch_lines
    DEFAULT_BATCH_BYTES: ClassVar[int] = Settings.writer_batch_bytes
    DEFAULT_FLUSH_INTERVAL: ClassVar[float] = Settings.writer_flush_interval
    DEFAULT_MAX_BUFFER_LINES: ClassVar[int] = Settings.writer_max_buffer_lines
    DEFAULT_MAX_LINE_BYTES: ClassVar[int] = Settings.max_line_bytes

    def __init__(
        self,
        dsn: str,
        *,
        batch_lines: int = DEFAULT_BATCH_LINES,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_buffer_lines: int = DEFAULT_MAX_BUFFER_LINES,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        connections: int = DEFAULT_CONNECTIONS,
        secrets: Iterable[str] = (),
        min_secret_length: int = DEFAULT_MIN_SECRET_LENGTH,
        retry: RetryPolicy | None = None,
        on_error: ErrorCallback | None = None,
        connect_timeout: float = 10.0,
        application_name: str = "meshlogs-writer",
    ) -> None:
        if not dsn:
            raise ValueError("the writer needs a database URL (`meshlogs keys` prints the embedded one)")
        if not 1 <= connections <= 64:
            raise ValueError("connections must be 1..64")
        self._dsn = dsn
        self._masker = SecretMasker(secrets, min_length=min_secret_length)
        self._encoder = LineEncoder(max_line_bytes, self._masker)
        self._spool = Spool(
            batch_lines=batch_lines,
            batch_bytes=batch_bytes,
            flush_interval=flush_interval,
            max_lines=max_buffer_lines,
            max_bytes=max_buffer_bytes,
        )
        self._retry = retry or RetryPolicy()
        self._errors = ErrorSink(on_error, self._callback_failed)
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._room_cond = threading.Condition(self._lock)  # sync writers waiting for room
        self._sync_waiters = 0
        self._async_waiters = 0
        self._closed = False  # no more writes
        self._stopping = False  # lanes exit once idle
        self._lost_reported = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._lanes = [
            Lane(i, dsn, connect_timeout=connect_timeout, application_name=application_name)
            for i in range(connections)
        ]
        self._crashed: BaseException | None = None  # a sender task died of a bug
        self._closing: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._work = asyncio.Event()
        self._room = asyncio.Event()
        self._progress = asyncio.Event()
        self._outage_start: float | None = None
        self._run_ids: dict[str | uuid.UUID, str] = {}
        self._delivered = 0
        self._rejected = 0
        self._given_up = 0
        self._batches = 0
        self._retries = 0
        self._accepted = 0
        self._unyielded = 0

    @classmethod
    def from_settings(cls, settings: Settings, dsn: str | None = None, **kwargs: Any) -> AsyncLogWriter:
        """A writer configured from the ``MESHLOGS_WRITER_*`` settings; ``kwargs`` override."""
        options: dict[str, Any] = {
            "batch_lines": settings.writer_batch_lines,
            "batch_bytes": settings.writer_batch_bytes,
            "flush_interval": settings.writer_flush_interval,
            "max_buffer_lines": settings.writer_max_buffer_lines,
            "max_line_bytes": settings.max_line_bytes,
        }
        options.update(kwargs)
        return cls(dsn or settings.database_url, **options)

    # -- public API ----------------------------------------------------------------------------------

    async def write(
        self,
        run_id: str | uuid.UUID,
        message: str | bytes,
        *,
        level: str = "info",
        step: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        ts: _dt.datetime | float | str | None = None,
    ) -> None:
        """Buffer one line for ``run_id``; wait while the buffer is full.

        Lines of one run get seqs in the order their ``write()`` calls returned. See
        :meth:`LineEncoder.encode <meshlogs.writer.lines.LineEncoder.encode>` for the arguments.

        Raises:
            WriterClosedError: the writer is closed (or closing).
            ValueError, TypeError: the line is malformed; nothing was buffered.
        """
        line = self._encoder.encode(message, level=level, step=step, attrs=attrs, ts=ts)
        run = self._run_ids.get(run_id) or self._run_key(run_id)
        if asyncio.get_running_loop() is not self._loop:
            self._bind()
        with self._lock:
            if self._closed:
                raise WriterClosedError("write() on a closed log writer")
            admitted = self._spool.has_room(len(line))
            if admitted:
                self._accepted += 1
                wake = self._spool.add(run, line, time.monotonic())
        if not admitted:
            await self._write_when_room(run, line)
            return
        if wake:
            self._pulse_work()
        self._unyielded += 1
        if wake or self._unyielded >= _YIELD_EVERY:
            # A caller that writes in a tight loop never suspends, and then the sender tasks on
            # this loop could not push a batch to the socket or read its result: the database
            # would sit idle while lines pile up. Yielding every few hundred lines (about 1 ms of
            # work, 5 µs per yield) keeps them going at no measurable cost.
            self._unyielded = 0
            await asyncio.sleep(0)

    def write_nowait(
        self,
        run_id: str | uuid.UUID,
        message: str | bytes,
        *,
        level: str = "info",
        step: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        ts: _dt.datetime | float | str | None = None,
    ) -> None:
        """Like :meth:`write` but never waits: a full buffer raises instead.

        Callable from any thread once the writer has been used on its event loop.

        Raises:
            WriterFullError: the buffer is full; the line was not buffered.
            WriterClosedError, ValueError, TypeError: as :meth:`write`.
        """
        line = self._encoder.encode(message, level=level, step=step, attrs=attrs, ts=ts)
        self._put(self._run_key(run_id), line, block=False, timeout=None)

    def add_secret(self, secret: str) -> bool:
        """Mask ``secret`` in every line written from now on; False if it is too short to register."""
        return self._masker.add(secret)

    async def flush(self) -> None:
        """Send every line written before this call and wait until each is delivered or reported.

        Raises:
            WriterError: the first background error since the last raise (LineRejectedError,
                DeliveryError), with a note counting the others.
        """
        if self._loop is not None:
            self._check_loop()
            await self._drain(self._mark_flush())
        self._errors.raise_first()

    async def aclose(self, timeout: float | None = None) -> None:
        """Stop accepting lines, deliver what is buffered, close the connections. Idempotent.

        Args:
            timeout: seconds to wait for delivery; lines still unconfirmed then are reported as a
                DeliveryError (they may or may not have been stored). None: bounded by the retry
                policy only.

        Raises:
            WriterError: as :meth:`flush`.
        """
        with self._lock:
            self._closed = True
            if self._sync_waiters:
                self._room_cond.notify_all()
        if self._loop is not None:
            self._check_loop()
            self._pulse(self._room)
            if self._closing is None:
                self._closing = self._loop.create_future()
                try:
                    await self._shut_down(timeout)
                finally:
                    self._closing.set_result(None)
            else:
                await asyncio.shield(self._closing)  # a concurrent aclose() waits for the first
        self._errors.raise_first()

    async def _shut_down(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._drain(self._mark_flush()), timeout)
        except TimeoutError:
            pass  # what is still pending is reported below
        except WriterError as exc:  # a crashed sender: still close everything, then raise it
            self._errors.report(exc)
        self._stopping = True
        self._pulse_work()
        if self._tasks:
            # Idle lanes exit by themselves; lanes still retrying after a timeout are cancelled.
            _, pending = await asyncio.wait(self._tasks, timeout=0 if self.pending_lines else None)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        lost = self.pending_lines
        if lost:
            self._errors.report(
                DeliveryError(
                    f"log writer closed with {lost} lines not confirmed by the database "
                    f"(close timed out after {timeout} s; they may or may not be stored)",
                    lines=lost,
                )
            )
        for lane in self._lanes:
            await lane.discard()

    def _mark_flush(self) -> FlushMark:
        with self._lock:
            mark = self._spool.mark_flush()
        self._pulse_work()
        return mark

    async def _drain(self, mark: FlushMark) -> None:
        """Wait until every line covered by ``mark`` was delivered or given up on."""
        while True:
            with self._lock:
                if self._spool.flushed(mark):
                    return
                progress = self._progress
            if self._crashed is not None:
                raise WriterError("a log writer sender task crashed; lines may be stuck") from self._crashed
            await progress.wait()

    async def __aenter__(self) -> AsyncLogWriter:
        self._bind()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def pending_lines(self) -> int:
        """Lines buffered or in flight (never above ``max_buffer_lines``)."""
        return self._spool.pending_lines

    def stats(self) -> WriterStats:
        """A snapshot of the writer's counters."""
        with self._lock:
            return WriterStats(
                lines_accepted=self._accepted,
                lines_delivered=self._delivered,
                lines_rejected=self._rejected,
                lines_given_up=self._given_up,
                batches_delivered=self._batches,
                retries=self._retries,
                pending_lines=self._spool.pending_lines,
                pending_bytes=self._spool.pending_bytes,
                peak_pending_lines=self._spool.peak_lines,
            )

    # -- accepting lines -----------------------------------------------------------------------------

    def _run_key(self, run_id: str | uuid.UUID) -> str:
        """The canonical string form of a run id, validated once and then cached (bounded)."""
        key = self._run_ids.get(run_id)
        if key is None:
            if isinstance(run_id, uuid.UUID):
                key = str(run_id)
            elif isinstance(run_id, str):
                try:
                    key = str(uuid.UUID(run_id))
                except ValueError:
                    raise ValueError(f"run_id {run_id!r} is not a UUID") from None
            else:
                raise TypeError(f"run_id must be a UUID or str, not {type(run_id).__name__}")
            if len(self._run_ids) >= 4096:
                self._run_ids.clear()
            self._run_ids[run_id] = key
        return key

    async def _write_when_room(self, run: str, line: bytes) -> None:
        while True:
            with self._lock:
                if self._closed:
                    raise WriterClosedError("write() on a closed log writer")
                if self._spool.has_room(len(line)):
                    self._accepted += 1
                    if self._spool.add(run, line, time.monotonic()):
                        self._pulse_work()
                    return
                room = self._room
                self._async_waiters += 1
                if self._spool.set_pressure(True):
                    self._pulse_work()
            try:
                await room.wait()
            finally:
                with self._lock:
                    self._async_waiters -= 1
                    if not self._async_waiters and not self._sync_waiters:
                        self._spool.set_pressure(False)

    def _put(self, run: str, line: bytes, *, block: bool, timeout: float | None) -> None:
        """Buffer a line from any thread; block (sync callers only) or raise when full."""
        if self._loop is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                raise WriterError(
                    "use the writer on its event loop once before calling it from threads"
                ) from None
            self._bind()
        loop = self._loop
        assert loop is not None
        on_loop = threading.get_ident() == self._loop_thread
        block = block and not on_loop  # the loop thread must never wait for itself
        deadline = None if timeout is None else time.monotonic() + timeout
        wake = False
        with self._lock:
            while True:
                if self._closed:
                    raise WriterClosedError("write() on a closed log writer")
                if self._spool.has_room(len(line)):
                    self._accepted += 1
                    wake = self._spool.add(run, line, time.monotonic())
                    break
                if not block:
                    raise WriterFullError(
                        f"log writer buffer is full ({self._spool.pending_lines} lines, "
                        f"{self._spool.pending_bytes} bytes pending)"
                    )
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WriterFullError(f"log writer buffer still full after {timeout} s")
                self._sync_waiters += 1
                if self._spool.set_pressure(True):
                    loop.call_soon_threadsafe(self._pulse_work)
                try:
                    self._room_cond.wait(remaining)
                finally:
                    self._sync_waiters -= 1
                    if not self._async_waiters and not self._sync_waiters:
                        self._spool.set_pressure(False)
        if wake:
            if on_loop:
                self._pulse_work()
            else:
                loop.call_soon_threadsafe(self._pulse_work)

    # -- loop plumbing -------------------------------------------------------------------------------

    def _bind(self) -> None:
        """Attach to the running loop on first use and start the sender lanes."""
        if self._loop is not None:
            self._check_loop()
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._tasks = [
            self._loop.create_task(self._run_lane(lane), name=f"meshlogs-writer-lane-{lane.index}")
            for lane in self._lanes
        ]
        for task in self._tasks:
            task.add_done_callback(self._lane_done)

    def _lane_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            lost = self.pending_lines
            if lost and not self._stopping and not self._lost_reported:
                self._lost_reported = True  # one message per writer, not one per lane
                log.error(
                    "meshlogs AsyncLogWriter: the event loop cancelled its sender tasks with %d lines "
                    "not sent; they are lost. Close the writer (`async with AsyncLogWriter(...)` or "
                    "`await writer.aclose()`) before the loop ends.",
                    lost,
                )
            return
        if task.exception() is None:
            return
        # A bug, not a database problem (those are handled in _deliver): make it loud, and make
        # flush() fail instead of waiting forever for lines that lane was holding.
        self._crashed = task.exception()
        self._pulse(self._progress)
        assert self._loop is not None
        self._loop.call_exception_handler(
            {"message": "meshlogs writer sender task crashed", "exception": self._crashed, "task": task}
        )

    def _check_loop(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:
            raise WriterError("an AsyncLogWriter must be used from the event loop it started on")

    def _pulse(self, event: asyncio.Event) -> None:
        # Wake everyone waiting on ``event`` and give later waiters a fresh one: no waiter can miss
        # a pulse, and nobody has to clear an event another waiter is about to wait on.
        if event is self._work:
            self._work = asyncio.Event()
        elif event is self._room:
            self._room = asyncio.Event()
        elif event is self._progress:
            self._progress = asyncio.Event()
        event.set()

    def _pulse_work(self) -> None:
        self._pulse(self._work)

    # -- sending -------------------------------------------------------------------------------------

    async def _run_lane(self, lane: Lane) -> None:
        try:
            while True:
                with self._lock:
                    work = self._work
                    batch = self._spool.take(time.monotonic())
                    deadline = self._spool.next_deadline()
                    idle = self._spool.pending_lines == 0
                if batch is not None:
                    await self._deliver(lane, batch)
                    continue
                if self._stopping and idle:
                    return
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(work.wait(), timeout)
        finally:
            await lane.discard()

    async def _deliver(self, lane: Lane, batch: Batch) -> None:
        while True:
            batch.attempts += 1
            try:
                await asyncio.wait_for(lane.append(batch), self._retry.attempt_timeout)
            except asyncio.CancelledError:
                await lane.discard()
                raise
            except Exception as exc:
                kind, index = classify(exc)
                if kind is Failure.REJECTED_LINE and index is not None and 0 <= index < len(batch):
                    self._reject_line(batch, index, exc)
                    if not len(batch):
                        self._complete(batch, delivered=False)
                        return
                    continue
                if kind is Failure.RETRY:
                    await lane.discard()
                    now = time.monotonic()
                    if self._outage_start is None:
                        self._outage_start = now
                    if self._retry.gives_up(batch.attempts, now - self._outage_start):
                        self._give_up(batch, exc, "retries exhausted")
                        return
                    with self._lock:
                        self._retries += 1
                    await asyncio.sleep(self._retry.delay(batch.attempts, self._rng))
                    continue
                if isinstance(exc, psycopg.OperationalError):
                    await lane.discard()
                self._give_up(batch, exc, "the database refused the batch")
                return
            else:
                self._outage_start = None
                with self._lock:
                    self._delivered += len(batch)
                    self._batches += 1
                self._complete(batch, delivered=True)
                return

    def _complete(self, batch: Batch, *, delivered: bool) -> None:
        with self._lock:
            self._spool.complete(batch, time.monotonic())
            if self._sync_waiters:
                self._room_cond.notify_all()
            ready = self._spool.has_ready()
        self._pulse(self._room)
        self._pulse(self._progress)
        if ready:
            self._pulse_work()

    def _reject_line(self, batch: Batch, index: int, exc: BaseException) -> None:
        size = len(batch)
        with self._lock:
            line = self._spool.drop_line(batch, index)
            self._rejected += 1
        batch.key = self._spool.new_key()  # different content: the old key must not be reused
        batch.attempts = 0
        reason = getattr(getattr(exc, "diag", None), "message_primary", None) or str(exc)
        preview = line[:120].decode("utf-8", "replace")
        err = LineRejectedError(
            f"run {batch.run_id}: the database rejected line {index} of a batch of {size} and stored "
            f"nothing of it; that line was dropped and the other {size - 1} sent again. "
            f"Reason: {reason}. Line: {preview}{'…' if len(line) > 120 else ''}",
            index=index,
        )
        self._errors.report(err)

    def _give_up(self, batch: Batch, exc: BaseException, why: str) -> None:
        n = len(batch)
        with self._lock:
            self._given_up += n
        err = DeliveryError(
            f"run {batch.run_id}: {n} lines were not stored ({why} after {batch.attempts} "
            f"attempt{'s' if batch.attempts != 1 else ''}): {type(exc).__name__}: {exc}".rstrip(),
            run_id=batch.run_id,
            lines=n,
        )
        err.__cause__ = exc
        self._errors.report(err)
        self._complete(batch, delivered=False)

    def _callback_failed(self, exc: Exception) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_exception_handler(
                {"message": "meshlogs writer on_error callback raised", "exception": exc}
            )
