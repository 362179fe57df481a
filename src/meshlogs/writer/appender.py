"""One ``append_run_logs()`` round trip on one connection: the writer's only SQL.

A :class:`Lane` owns one autocommit connection (opened lazily, replaced after any failure) and sends
a batch as ``select public.append_run_logs(run, lines, batch_key)``. The statement is prepared, and
the JSON array travels as the exact bytes the spool assembled (a text-format ``jsonb`` parameter
through :class:`RawJsonbDumper`), so nothing is parsed or re-encoded on the client.

Autocommit matters: psycopg waits for ReadyForQuery, which Postgres sends after COMMIT, so a returned
seq means the batch is durable; any failure before that is ambiguous, which the batch's idempotency
key makes safe to retry.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper

from meshlogs.writer.spool import Batch

__all__ = ["APPEND_SQL", "Lane", "RawJsonb", "RawJsonbDumper"]

APPEND_SQL = "select public.append_run_logs(%s::uuid, %s, %s::text)"


class RawJsonb:
    """Already-serialized JSON to pass as a ``jsonb`` parameter without re-encoding it."""

    __slots__ = ("data",)

    def __init__(self, data: bytearray) -> None:
        self.data = data


class RawJsonbDumper(Dumper):
    """Dumps :class:`RawJsonb` as its bytes, typed ``jsonb``, in text format."""

    oid = psycopg.postgres.types["jsonb"].oid
    format = pq.Format.TEXT

    def dump(self, obj: Any) -> bytearray:
        data: bytearray = obj.data
        return data


class Lane:
    """One sender connection.

    Args:
        index: position among the writer's lanes (for task names).
        dsn: libpq URL.
        connect_timeout: seconds for one connection attempt.
        application_name: shown in ``pg_stat_activity``.
    """

    def __init__(self, index: int, dsn: str, *, connect_timeout: float, application_name: str) -> None:
        self.index = index
        self._dsn = dsn
        self._connect_timeout = max(1, round(connect_timeout))
        self._application_name = application_name
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def append(self, batch: Batch) -> int:
        """Send ``batch``; return the run's last seq. Connects first if needed.

        Raises:
            psycopg.Error, OSError: the attempt failed (see :func:`meshlogs.writer.retry.classify`).
        """
        conn = self._conn
        if conn is None or conn.closed:
            self._conn = None
            conn = await psycopg.AsyncConnection.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name=self._application_name,
            )
            conn.adapters.register_dumper(RawJsonb, RawJsonbDumper)
            self._conn = conn
        cur = await conn.execute(APPEND_SQL, (batch.run_id, RawJsonb(batch.payload), batch.key), prepare=True)
        row = await cur.fetchone()
        return int(row[0]) if row is not None else 0

    async def discard(self) -> None:
        """Close the connection (after a failure, or at the end); the next append reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            # Closing a broken connection can fail in many ways; it is gone anyway.
            with contextlib.suppress(Exception):
                await conn.close()
