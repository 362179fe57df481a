"""The streaming replication sub-protocol carried in CopyData messages: pure parse and build.

Once ``START_REPLICATION`` has switched the connection to COPY BOTH mode, every CopyData message the
server sends is one of these (PostgreSQL docs, "Streaming Replication Protocol", 53.4)::

    XLogData (B)
        Byte1('w')   Identifies the message as WAL data.
        Int64        The starting point of the WAL data in this message.
        Int64        The current end of WAL on the server.
        Int64        The server's system clock at the time of transmission, as microseconds
                     since midnight on 2000-01-01.
        Byten        A section of the WAL data stream. (For logical replication: exactly one
                     message of the output plugin, here pgoutput.)

    Primary keepalive message (B)
        Byte1('k')   Identifies the message as a sender keepalive.
        Int64        The current end of WAL on the server.
        Int64        The server's system clock at the time of transmission, as microseconds
                     since midnight on 2000-01-01.
        Byte1        1 means that the client should reply to this message as soon as possible,
                     to avoid a timeout disconnect. 0 otherwise.

and the client answers with::

    Standby status update (F)
        Byte1('r')   Identifies the message as a receiver status update.
        Int64        The location of the last WAL byte + 1 received and written to disk in the
                     standby.
        Int64        The location of the last WAL byte + 1 flushed to disk in the standby.
        Int64        The location of the last WAL byte + 1 applied in the standby.
        Int64        The client's system clock at the time of transmission, as microseconds
                     since midnight on 2000-01-01.
        Byte1        If 1, the client requests the server to reply to this message immediately.

Everything here is pure: bytes in, values out; clocks are arguments (STYLE §8.2 rule 1). Malformed
input raises :class:`~meshlogs.errors.DecodeError` and nothing else. Other CopyData kinds (PostgreSQL
18's primary status update ``s``, only sent on request) are refused the same way: this client never
asks for them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from meshlogs.capture._frozen import fast_init
from meshlogs.capture.lsn import Lsn
from meshlogs.errors import DecodeError

__all__ = [
    "PG_EPOCH",
    "Keepalive",
    "ReplicationMessage",
    "XLogData",
    "from_pg_time",
    "parse",
    "standby_status",
    "to_pg_time",
]

#: Origin of every Postgres timestamp on the wire: 2000-01-01 00:00:00 UTC.
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

_XLOGDATA = struct.Struct("!QQq")  # after the tag byte: start, end, clock
_KEEPALIVE = struct.Struct("!QqB")  # after the tag byte: end, clock, reply
_STATUS = struct.Struct("!cQQQqB")


def from_pg_time(micros: int) -> datetime:
    """A wire timestamp (microseconds since 2000-01-01 UTC) as an aware UTC datetime.

    Raises:
        DecodeError: the value is outside what :class:`datetime` can hold (years 1..9999).
    """
    try:
        return PG_EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise DecodeError(f"timestamp out of range: {micros} microseconds after 2000-01-01") from None


def to_pg_time(moment: datetime) -> int:
    """An aware datetime as microseconds since 2000-01-01 UTC (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@fast_init
@dataclass(frozen=True, slots=True)
class XLogData:
    """One ``w`` message: a piece of the WAL stream (for pgoutput, exactly one output message).

    Attributes:
        data_start: WAL position of the data (``0/0`` for messages without one, e.g. Relation).
        wal_end: the server's current end of WAL (what it has sent so far, for a logical sender).
        server_clock: server time of sending, microseconds since 2000-01-01 (see ``server_time``).
        payload: the data; for logical replication one pgoutput message.
    """

    data_start: Lsn
    wal_end: Lsn
    server_clock: int
    payload: bytes

    @property
    def server_time(self) -> datetime:
        """``server_clock`` as an aware UTC datetime."""
        return from_pg_time(self.server_clock)


@fast_init
@dataclass(frozen=True, slots=True)
class Keepalive:
    """One ``k`` message: the server is alive, at ``wal_end``, and may want a status update.

    Attributes:
        wal_end: the server's current end of WAL (for a logical sender: everything before it has
            been decoded and sent).
        server_clock: server time of sending, microseconds since 2000-01-01 (see ``server_time``).
        reply_requested: the server disconnects us after ``wal_sender_timeout`` unless we answer.
    """

    wal_end: Lsn
    server_clock: int
    reply_requested: bool

    @property
    def server_time(self) -> datetime:
        """``server_clock`` as an aware UTC datetime."""
        return from_pg_time(self.server_clock)


ReplicationMessage = XLogData | Keepalive


def parse(data: bytes | bytearray | memoryview, *, max_size: int = 1 << 30) -> ReplicationMessage:
    """Parse one CopyData message received in COPY BOTH mode.

    Args:
        data: the CopyData body (without the CopyData framing libpq removes).
        max_size: refuse messages longer than this many bytes (the caller's memory bound).

    Returns:
        :class:`XLogData` (the payload is copied into ``bytes``) or :class:`Keepalive`.

    Raises:
        DecodeError: empty, too long, truncated, an unknown kind, or a keepalive with trailing
            bytes or a reply flag other than 0/1.
    """
    size = len(data)
    if size == 0:
        raise DecodeError("empty replication message")
    if size > max_size:
        raise DecodeError(f"replication message of {size} bytes exceeds the limit of {max_size}")
    tag = data[0]
    if tag == 0x77:  # 'w'
        if size < 25:
            raise DecodeError(f"XLogData message truncated: {size} bytes, header needs 25")
        start, end, clock = _XLOGDATA.unpack_from(data, 1)
        return XLogData(Lsn.from_wire(start), Lsn.from_wire(end), clock, bytes(data[25:]))
    if tag == 0x6B:  # 'k'
        if size != 18:
            raise DecodeError(f"keepalive message must be 18 bytes, got {size}")
        end, clock, reply = _KEEPALIVE.unpack_from(data, 1)
        if reply > 1:
            raise DecodeError(f"keepalive reply flag must be 0 or 1, got {reply}")
        return Keepalive(Lsn.from_wire(end), clock, reply == 1)
    raise DecodeError(f"unknown replication message kind {_show_tag(tag)}")


def standby_status(write: Lsn, flush: Lsn, apply: Lsn, now: datetime, *, reply: bool = False) -> bytes:
    """Build a standby status update (``r``), ready for ``put_copy_data``.

    For a logical slot, ``flush`` becomes the slot's ``confirmed_flush_lsn``: the server may recycle
    WAL before it and will not resend what lies before it.

    Args:
        write: last position received.
        flush: last position the client has fully handled (here: handed to the consumer and acked).
        apply: last position applied; we report the same as ``flush``.
        now: the client's clock (passed in, never read here).
        reply: ask the server to answer at once with a keepalive.
    """
    return _STATUS.pack(b"r", write.value, flush.value, apply.value, to_pg_time(now), 1 if reply else 0)


def _show_tag(tag: int) -> str:
    return repr(chr(tag)) if 0x20 < tag < 0x7F else f"0x{tag:02x}"
