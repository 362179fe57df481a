"""What a writer tells its caller: background errors (never silent, never unbounded) and counters.

A writer's errors happen on its sender tasks, far from the ``write()`` that caused them
(a line the database rejected, lines given up after retries). :class:`ErrorSink` hands each one to
the writer's ``on_error`` callback when there is one; otherwise it keeps them (at most
``limit``, counting the rest) until the caller's next ``flush()`` / ``aclose()``, which raises the
first with a note saying how many more there were.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from meshlogs.errors import WriterError

__all__ = ["ErrorCallback", "ErrorSink", "WriterStats"]

ErrorCallback = Callable[[WriterError], None]


class ErrorSink:
    """Collects a writer's background errors; thread-safe.

    Args:
        callback: receives every error instead of keeping it; it must not block or raise (what it
            raises goes to ``on_callback_error``).
        on_callback_error: told about exceptions the callback raised.
        limit: errors kept for :meth:`raise_first`; later ones are only counted.
    """

    def __init__(
        self,
        callback: ErrorCallback | None,
        on_callback_error: Callable[[Exception], None],
        limit: int = 100,
    ) -> None:
        self._callback = callback
        self._on_callback_error = on_callback_error
        self._limit = limit
        self._lock = threading.Lock()
        self._kept: list[WriterError] = []
        self._uncounted = 0
        self.total = 0

    def report(self, err: WriterError) -> None:
        """Pass ``err`` to the callback, or keep it for the caller."""
        with self._lock:
            self.total += 1
        if self._callback is not None:
            try:
                self._callback(err)
            except Exception as exc:  # a broken callback must not stop delivery; say so loudly
                self._on_callback_error(exc)
            return
        with self._lock:
            if len(self._kept) < self._limit:
                self._kept.append(err)
            else:
                self._uncounted += 1

    def raise_first(self) -> None:
        """Raise the first kept error (noting how many others there were) and forget them all."""
        with self._lock:
            kept, self._kept = self._kept, []
            extra, self._uncounted = self._uncounted, 0
        if not kept:
            return
        first = kept[0]
        others = len(kept) - 1 + extra
        if others:
            kinds = sorted({type(e).__name__ for e in kept[1:]})
            first.add_note(f"and {others} more log writer errors ({', '.join(kinds) or 'not kept'})")
        raise first


@dataclass(frozen=True)
class WriterStats:
    """Counters of one writer since it was created (a snapshot).

    Attributes:
        lines_accepted: lines ``write()`` took.
        lines_delivered: lines the database confirmed.
        lines_rejected: lines the database refused (each reported as a LineRejectedError).
        lines_given_up: lines dropped after retries ran out or a fatal error (each batch reported).
        batches_delivered: confirmed ``append_run_logs()`` calls.
        retries: attempts beyond the first, over all batches.
        pending_lines: lines buffered or in flight now.
        pending_bytes: their encoded size.
        peak_pending_lines: the most lines ever held at once (never above ``max_buffer_lines``).
    """

    lines_accepted: int
    lines_delivered: int
    lines_rejected: int
    lines_given_up: int
    batches_delivered: int
    retries: int
    pending_lines: int
    pending_bytes: int
    peak_pending_lines: int
