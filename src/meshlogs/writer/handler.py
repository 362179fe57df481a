"""``MeshlogsHandler``: the standard ``logging`` module as a front end to :class:`LogWriter`.

A worker keeps using ``log.info(...)``; records that name a run land in that run's log::

    handler = MeshlogsHandler(dsn=url, secrets=project_secrets)
    logging.getLogger("worker").addHandler(handler)
    log.info("fetched %d rows", n, extra={"run_id": run, "step": "fetch", "table": "users"})

Mapping:

- level: DEBUG (and below) → ``debug``, INFO → ``info``, WARNING → ``warn``, ERROR and CRITICAL →
  ``error`` (custom levels fall into the band below them);
- run: ``record.run_id`` (``extra={"run_id": ...}``), else the handler's ``run_id``. Records with
  neither are not for any run and are ignored (counted in :attr:`MeshlogsHandler.skipped`) — a
  handler on the root logger sees every library's records;
- step: ``record.step``, else the handler's ``step``;
- message: the handler's formatter output (default ``%(message)s``), which includes the exception
  traceback (``exc_info``) and ``stack_info``;
- ts: ``record.created``;
- attrs: every ``extra`` field that is not a standard ``LogRecord`` attribute, made JSON-safe (values
  JSON cannot hold become their ``str()``). Extras too large for one line are replaced by a note.

``emit`` blocks while the writer's buffer is full (backpressure), except on the writer's own thread,
where it must not wait for itself and reports a full buffer through ``handleError`` instead.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from meshlogs.writer.sync_writer import LogWriter

__all__ = ["MeshlogsHandler", "level_name"]

# Attributes every LogRecord has (plus those Formatter adds); anything else came from ``extra``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "run_id", "step", "taskName"}
)


def level_name(levelno: int) -> str:
    """The meshlogs level for a ``logging`` level number."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class MeshlogsHandler(logging.Handler):
    """A logging handler that writes records to ``run_logs`` through a :class:`LogWriter`.

    Args:
        writer: an existing writer to share (the handler then never closes it).
        dsn: database URL for a writer the handler creates and owns (closed by :meth:`close`, and
            at interpreter exit by ``logging.shutdown`` or the writer's own atexit hook).
        run_id: default run for records without ``run_id``.
        step: default step for records without ``step``.
        level: handler level.
        **writer_options: passed to :class:`LogWriter` when ``dsn`` is given.
    """

    def __init__(
        self,
        writer: LogWriter | None = None,
        *,
        dsn: str | None = None,
        run_id: str | uuid.UUID | None = None,
        step: str | None = None,
        level: int = logging.NOTSET,
        **writer_options: Any,
    ) -> None:
        super().__init__(level)
        if (writer is None) == (dsn is None):
            raise ValueError("give either a writer or a dsn")
        if writer is None:
            assert dsn is not None
            writer = LogWriter(dsn, **writer_options)
            self._owns_writer = True
        else:
            if writer_options:
                raise ValueError("writer options only apply when the handler creates the writer (dsn=)")
            self._owns_writer = False
        self.writer = writer
        self.run_id = run_id
        self.step = step
        self.skipped = 0
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` to its run (see the module docs for the mapping)."""
        run_id = getattr(record, "run_id", None) or self.run_id
        if run_id is None:
            self.skipped += 1
            return
        try:
            message = self.format(record)
            step = getattr(record, "step", None) or self.step
            attrs = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
            level = level_name(record.levelno)
            writer = self.writer
            own_thread = threading.current_thread() is writer.thread
            write = writer.write_nowait if own_thread else writer.write
            try:
                write(run_id, message, level=level, step=step, attrs=attrs or None, ts=record.created)
            except ValueError as exc:
                if not attrs or "attrs" not in str(exc):
                    raise
                note = {"meshlogs": f"extra fields dropped: {exc}"}
                write(run_id, message, level=level, step=step, attrs=note, ts=record.created)
        except RecursionError:  # as logging.StreamHandler does
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Deliver everything emitted so far (no-op once the writer is closed)."""
        if self.writer.closed:
            return
        try:
            self.writer.flush()
        except Exception:
            # logging.shutdown() calls flush(); an error here would abort it for other handlers.
            self.handleError(_flush_record(self))

    def close(self) -> None:
        """Flush and, when the handler created the writer, close it."""
        try:
            if self._owns_writer:
                try:
                    self.writer.close()
                except Exception:
                    self.handleError(_flush_record(self))
            else:
                self.flush()
        finally:
            super().close()


def _flush_record(handler: MeshlogsHandler) -> logging.LogRecord:
    return logging.LogRecord(
        "meshlogs.writer", logging.ERROR, __file__, 0, "MeshlogsHandler flush/close failed", None, None
    )
