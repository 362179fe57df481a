"""walproto: XLogData / keepalive parsing and standby status building, against the documented layout."""

from __future__ import annotations

import contextlib
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlogs.capture import walproto
from meshlogs.capture.lsn import Lsn
from meshlogs.capture.walproto import Keepalive, XLogData
from meshlogs.errors import DecodeError

U64 = st.integers(0, (1 << 64) - 1)
I64 = st.integers(-(1 << 63), (1 << 63) - 1)


def xlogdata(start: int, end: int, clock: int, payload: bytes) -> bytes:
    return b"w" + struct.pack("!QQq", start, end, clock) + payload


def keepalive(end: int, clock: int, reply: int) -> bytes:
    return b"k" + struct.pack("!QqB", end, clock, reply)


def test_xlogdata() -> None:
    message = walproto.parse(xlogdata(0x16B3748, 0x16B3800, 1_000_000, b"B..."))
    assert message == XLogData(Lsn.parse("0/16B3748"), Lsn.parse("0/16B3800"), 1_000_000, b"B...")
    assert message.server_time == datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert walproto.parse(memoryview(xlogdata(1, 2, 3, b""))) == XLogData(Lsn(1), Lsn(2), 3, b"")


def test_keepalive() -> None:
    assert walproto.parse(keepalive(5, -1, 1)) == Keepalive(Lsn(5), -1, True)
    message = walproto.parse(keepalive(5, 0, 0))
    assert message == Keepalive(Lsn(5), 0, False)
    assert message.server_time == walproto.PG_EPOCH


def test_standby_status_layout() -> None:
    now = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=UTC)
    data = walproto.standby_status(Lsn(30), Lsn(20), Lsn(10), now, reply=True)
    tag, write, flush, apply, clock, reply = struct.unpack("!cQQQqB", data)
    assert (tag, write, flush, apply, reply) == (b"r", 30, 20, 10, 1)
    assert walproto.from_pg_time(clock) == now
    assert walproto.standby_status(Lsn(1), Lsn(1), Lsn(1), now)[-1] == 0
    assert len(data) == 34


def test_pg_time_conversions() -> None:
    assert walproto.to_pg_time(walproto.PG_EPOCH) == 0
    assert walproto.to_pg_time(datetime(1999, 12, 31, 23, 59, 59)) == -1_000_000  # naive is UTC
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert walproto.from_pg_time(walproto.to_pg_time(moment)) == moment
    other_zone = moment.astimezone(UTC).replace(tzinfo=UTC) + timedelta(0)
    assert walproto.to_pg_time(other_zone) == walproto.to_pg_time(moment)
    with pytest.raises(DecodeError, match="out of range"):
        walproto.from_pg_time(1 << 62)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "empty"),
        (b"w" + b"\0" * 23, "truncated"),
        (b"k" + b"\0" * 16, "18 bytes"),
        (b"k" + b"\0" * 18, "18 bytes"),
        (b"k" + b"\0" * 16 + b"\x02", "reply flag"),
        (b"s" + b"\0" * 32, "unknown replication message kind 's'"),
        (b"\x01", "unknown replication message kind 0x01"),
    ],
)
def test_malformed(data: bytes, error: str) -> None:
    with pytest.raises(DecodeError, match=error):
        walproto.parse(data)


def test_size_limit() -> None:
    data = xlogdata(1, 2, 3, b"x" * 100)
    assert walproto.parse(data, max_size=len(data))
    with pytest.raises(DecodeError, match="exceeds the limit"):
        walproto.parse(data, max_size=len(data) - 1)


@given(U64, U64, I64, st.binary(max_size=64))
def test_xlogdata_round_trip(start: int, end: int, clock: int, payload: bytes) -> None:
    assert walproto.parse(xlogdata(start, end, clock, payload)) == XLogData(
        Lsn(start), Lsn(end), clock, payload
    )


@given(U64, I64, st.booleans())
def test_keepalive_round_trip(end: int, clock: int, reply: bool) -> None:
    assert walproto.parse(keepalive(end, clock, int(reply))) == Keepalive(Lsn(end), clock, reply)


@given(U64, U64, U64, st.datetimes(timezones=st.just(UTC)), st.booleans())
def test_standby_status_round_trip(write: int, flush: int, apply: int, now: datetime, reply: bool) -> None:
    data = walproto.standby_status(Lsn(write), Lsn(flush), Lsn(apply), now, reply=reply)
    assert struct.unpack("!cQQQqB", data) == (b"r", write, flush, apply, walproto.to_pg_time(now), int(reply))


@given(st.binary(max_size=64))
def test_fuzz_parse_succeeds_or_raises_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        walproto.parse(data)


@given(st.sampled_from([b"w", b"k"]), st.binary(max_size=40))
def test_fuzz_known_kinds(tag: bytes, body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        walproto.parse(tag + body)
