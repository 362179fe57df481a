"""The writer SDK: how workflow workers get log lines into ``run_logs`` fast and safely.

::

    async with AsyncLogWriter(dsn, secrets=project_secrets) as writer:
        await writer.write(run_id, "fetching", step="fetch")
        await writer.write(run_id, "failed", level="error", attrs={"status": 502})

    with LogWriter(dsn) as writer:                       # synchronous code, any thread
        writer.write(run_id, "hello")

    logging.getLogger().addHandler(MeshlogsHandler(dsn=dsn, run_id=run_id))

Lines are cleaned (NUL, invalid UTF-8), masked (:mod:`~meshlogs.writer.masking`) and truncated on the
client (:mod:`~meshlogs.writer.lines`), buffered per run with a hard bound and backpressure, and sent
in batches, one ``append_run_logs()`` round trip each, in write order per run, retried with the same
idempotency key across connection loss so that nothing is lost or stored twice
(:mod:`~meshlogs.writer.async_writer`, :mod:`~meshlogs.writer.spool`, :mod:`~meshlogs.writer.retry`).
"""

from __future__ import annotations

from meshlogs.errors import (
    DeliveryError,
    LineRejectedError,
    WriterClosedError,
    WriterError,
    WriterFullError,
)
from meshlogs.writer.async_writer import AsyncLogWriter, WriterStats
from meshlogs.writer.handler import MeshlogsHandler, level_name
from meshlogs.writer.lines import LineEncoder, clean_text, truncate_message
from meshlogs.writer.masking import SecretMasker
from meshlogs.writer.retry import RetryPolicy
from meshlogs.writer.sync_writer import LogWriter

__all__ = [
    "AsyncLogWriter",
    "DeliveryError",
    "LineEncoder",
    "LineRejectedError",
    "LogWriter",
    "MeshlogsHandler",
    "RetryPolicy",
    "SecretMasker",
    "WriterClosedError",
    "WriterError",
    "WriterFullError",
    "WriterStats",
    "clean_text",
    "level_name",
    "truncate_message",
]
