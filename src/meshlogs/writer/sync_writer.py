"""``LogWriter``: the same writer for synchronous code, with a background thread and an atexit flush.

One daemon thread runs a private event loop with an :class:`~meshlogs.writer.async_writer.AsyncLogWriter`
in it; that thread owns the connections. ``write()`` does the per-line work (validation, masking,
serialization) in the calling thread and appends to the shared, lock-guarded buffer: it crosses
threads only when a run becomes due, not per line. A full buffer blocks the caller (optionally with a
timeout) until the background thread frees room.

At interpreter exit an ``atexit`` hook closes every writer still open, which flushes it (bounded by
the retry policy), so a script that forgets ``close()`` still gets its last lines stored. The thread
is a daemon so that a forgotten writer never keeps the interpreter alive; ``atexit`` hooks run before
daemon threads are stopped, so the flush has the thread it needs.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as _dt
import sys
import threading
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from meshlogs.config import Settings
from meshlogs.errors import WriterClosedError
from meshlogs.writer.async_writer import DEFAULT_CONNECTIONS, DEFAULT_MAX_BUFFER_BYTES, AsyncLogWriter
from meshlogs.writer.masking import DEFAULT_MIN_SECRET_LENGTH
from meshlogs.writer.reporting import ErrorCallback, WriterStats
from meshlogs.writer.retry import RetryPolicy

__all__ = ["LogWriter"]

T = TypeVar("T")


class LogWriter:
    """Thread-safe, blocking counterpart of :class:`AsyncLogWriter`; same arguments and semantics.

    Use as a context manager, or call :meth:`close`. Every method may be called from any thread.
    ``on_error`` is called on the writer's background thread.
    """

    def __init__(
        self,
        dsn: str,
        *,
        batch_lines: int = AsyncLogWriter.DEFAULT_BATCH_LINES,
        batch_bytes: int = AsyncLogWriter.DEFAULT_BATCH_BYTES,
        flush_interval: float = AsyncLogWriter.DEFAULT_FLUSH_INTERVAL,
        max_buffer_lines: int = AsyncLogWriter.DEFAULT_MAX_BUFFER_LINES,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        max_line_bytes: int = AsyncLogWriter.DEFAULT_MAX_LINE_BYTES,
        connections: int = DEFAULT_CONNECTIONS,
        secrets: Iterable[str] = (),
        min_secret_length: int = DEFAULT_MIN_SECRET_LENGTH,
        retry: RetryPolicy | None = None,
        on_error: ErrorCallback | None = None,
        connect_timeout: float = 10.0,
        application_name: str = "meshlogs-writer",
    ) -> None:
        self._writer = AsyncLogWriter(
            dsn,
            batch_lines=batch_lines,
            batch_bytes=batch_bytes,
            flush_interval=flush_interval,
            max_buffer_lines=max_buffer_lines,
            max_buffer_bytes=max_buffer_bytes,
            max_line_bytes=max_line_bytes,
            connections=connections,
            secrets=secrets,
            min_secret_length=min_secret_length,
            retry=retry,
            on_error=on_error,
            connect_timeout=connect_timeout,
            application_name=application_name,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="meshlogs-writer", daemon=True)
        self._close_lock = threading.Lock()
        self._closed = False
        self._thread.start()
        self._call(self._start())
        # The hook (like the running thread) keeps the writer alive: a writer that is never closed
        # lives, and keeps its lines, until interpreter exit, where the hook flushes it.
        atexit.register(self._close_at_exit)

    @classmethod
    def from_settings(cls, settings: Settings, dsn: str | None = None, **kwargs: Any) -> LogWriter:
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

    def write(
        self,
        run_id: str | uuid.UUID,
        message: str | bytes,
        *,
        level: str = "info",
        step: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        ts: _dt.datetime | float | str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Buffer one line; block while the buffer is full.

        Args:
            timeout: most seconds to block for room; None waits as long as it takes (delivery,
                and therefore room, is bounded by the retry policy).

        Raises:
            WriterFullError: still no room after ``timeout`` seconds.
            WriterClosedError: the writer is closed.
            ValueError, TypeError: the line is malformed; nothing was buffered.
        """
        w = self._writer
        line = w._encoder.encode(message, level=level, step=step, attrs=attrs, ts=ts)
        w._put(w._run_key(run_id), line, block=True, timeout=timeout)

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
        """Buffer one line or raise :class:`~meshlogs.errors.WriterFullError` at once when full."""
        w = self._writer
        line = w._encoder.encode(message, level=level, step=step, attrs=attrs, ts=ts)
        w._put(w._run_key(run_id), line, block=False, timeout=None)

    def add_secret(self, secret: str) -> bool:
        """Mask ``secret`` from now on; False if it is too short to register."""
        return self._writer.add_secret(secret)

    def flush(self, timeout: float | None = None) -> None:
        """Deliver every line written before this call (see :meth:`AsyncLogWriter.flush`).

        Raises:
            TimeoutError: not done within ``timeout`` seconds (delivery goes on in the background).
            WriterError: a background error, as :meth:`AsyncLogWriter.flush`.
        """
        if self._closed:
            return
        self._call(self._writer.flush(), timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the thread and close the connections; idempotent.

        Args:
            timeout: seconds to wait for delivery (see :meth:`AsyncLogWriter.aclose`).

        Raises:
            WriterError: a background error, as :meth:`AsyncLogWriter.flush`.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._close_at_exit)
        try:
            self._call(self._writer.aclose(timeout))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def pending_lines(self) -> int:
        """Lines buffered or in flight."""
        return self._writer.pending_lines

    @property
    def thread(self) -> threading.Thread:
        """The background thread (log handlers use it to avoid blocking on themselves)."""
        return self._thread

    def stats(self) -> WriterStats:
        """A snapshot of the writer's counters."""
        return self._writer.stats()

    # -- internals -----------------------------------------------------------------------------------

    async def _start(self) -> None:
        self._writer._bind()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception as exc:  # at exit there is nobody left to raise to: say it on stderr
            print(f"meshlogs: log writer error at exit: {exc!r}", file=sys.stderr)

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise WriterClosedError("a LogWriter cannot wait for itself from its own thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)
