"""The batching state machine, without I/O: due rules, ordering, bounds, flush marks."""

from __future__ import annotations

import orjson
import pytest

from meshlogs.writer.spool import Batch, Spool


def line(i: int, pad: int = 0) -> bytes:
    return orjson.dumps({"level": "info", "message": f"m{i}" + "x" * pad})


def spool(**kw: float) -> Spool:
    options = {
        "batch_lines": 3,
        "batch_bytes": 10_000,
        "flush_interval": 1.0,
        "max_lines": 1000,
        "max_bytes": 10**6,
    }
    options.update(kw)
    return Spool(**options)  # type: ignore[arg-type]


def messages(batch: Batch) -> list[str]:
    return [m["message"] for m in orjson.loads(bytes(batch.payload))]


def test_batch_by_count() -> None:
    s = spool()
    assert s.add("r", line(1), 0.0) is True  # first line: a timer to arm
    assert s.add("r", line(2), 0.0) is False
    assert s.take(0.0) is None
    assert s.add("r", line(3), 0.0) is True  # due by count
    b = s.take(0.0)
    assert b is not None and messages(b) == ["m1", "m2", "m3"]
    assert s.pending_lines == 3  # in flight still counts
    s.complete(b, 0.0)
    assert s.pending_lines == 0 and s.pending_bytes == 0


def test_batch_by_bytes() -> None:
    s = spool(batch_lines=100, batch_bytes=100)
    s.add("r", line(1, 40), 0.0)
    assert s.take(0.0) is None
    assert s.add("r", line(2, 40), 0.0) is True
    b = s.take(0.0)
    assert b is not None
    assert messages(b) == ["m1" + "x" * 40]  # the second would push the batch past 100 bytes
    s.complete(b, 0.0)
    assert s.take(0.0) is None  # the rest is under the byte limit: it waits for its deadline
    b2 = s.take(1.0)
    assert b2 is not None and len(b2) == 1


def test_batch_by_time() -> None:
    s = spool(batch_lines=100)
    s.add("r", line(1), 10.0)
    assert s.next_deadline() == 11.0
    assert s.take(10.5) is None
    b = s.take(11.0)
    assert b is not None and messages(b) == ["m1"]


def test_one_batch_in_flight_per_run_and_order() -> None:
    s = spool(max_lines=100)
    for i in range(7):
        s.add("r", line(i), 0.0)
    b1 = s.take(0.0)
    assert b1 is not None and messages(b1) == ["m0", "m1", "m2"]
    assert s.take(5.0) is None  # run busy, even past its deadline
    s.complete(b1, 5.0)
    b2 = s.take(5.0)
    assert b2 is not None and messages(b2) == ["m3", "m4", "m5"]
    s.complete(b2, 5.0)
    b3 = s.take(5.0)
    assert b3 is not None and messages(b3) == ["m6"]


def test_runs_are_independent_and_round_robin() -> None:
    s = spool(max_lines=100)
    for i in range(6):
        s.add("a", line(i), 0.0)
        s.add("b", line(100 + i), 0.0)
    first = s.take(0.0)
    second = s.take(0.0)
    assert first is not None and second is not None
    assert {first.run_id, second.run_id} == {"a", "b"}
    assert s.take(0.0) is None


def test_bounds_and_empty_spool_always_takes_one_line() -> None:
    s = spool(max_lines=3, max_bytes=60)
    big = line(0, 200)
    assert s.has_room(len(big))  # empty: always one line, however big
    s.add("r", big, 0.0)
    assert not s.has_room(10)  # over the byte bound now
    s2 = spool(max_lines=3)
    for i in range(3):
        assert s2.has_room(10)
        s2.add("r", line(i), 0.0)
    assert not s2.has_room(10)
    assert s2.peak_lines == 3


def test_flush_mark_makes_lines_due_and_tracks_completion() -> None:
    s = spool(batch_lines=100, max_lines=1000)
    s.add("a", line(1), 0.0)
    s.add("b", line(2), 0.0)
    mark = s.mark_flush()
    assert not s.flushed(mark)
    b1, b2 = s.take(0.0), s.take(0.0)
    assert b1 is not None and b2 is not None
    s.add("a", line(3), 0.0)  # written after the flush began: not waited for
    s.complete(b1, 0.0)
    s.complete(b2, 0.0)
    assert s.flushed(mark)


def test_flush_covers_lines_behind_an_in_flight_batch() -> None:
    s = spool(batch_lines=2, max_lines=1000)
    for i in range(3):
        s.add("r", line(i), 0.0)
    b1 = s.take(0.0)
    assert b1 is not None
    mark = s.mark_flush()  # m2 is buffered behind the in-flight batch
    s.complete(b1, 0.0)
    b2 = s.take(0.0)
    assert b2 is not None and messages(b2) == ["m2"]
    s.complete(b2, 0.0)
    assert s.flushed(mark)


def test_pressure_makes_everything_due() -> None:
    s = spool(batch_lines=100)
    s.add("r", line(1), 0.0)
    assert s.take(0.0) is None
    assert s.set_pressure(True) is True
    b = s.take(0.0)
    assert b is not None
    s.set_pressure(False)


def test_drop_line_keeps_a_valid_payload() -> None:
    s = spool(batch_lines=3)
    for i in range(3):
        s.add("r", line(i), 0.0)
    b = s.take(0.0)
    assert b is not None
    key = b.key
    assert orjson.loads(s.drop_line(b, 2))["message"] == "m2"  # last line: "]" must move
    assert messages(b) == ["m0", "m1"]
    assert orjson.loads(s.drop_line(b, 0))["message"] == "m0"
    assert messages(b) == ["m1"]
    assert s.pending_lines == 1
    assert s.new_key() != key
    s.complete(b, 0.0)
    assert s.pending_lines == 0 and s.pending_bytes == 0


def test_idle_runs_are_forgotten() -> None:
    s = spool()
    for i in range(3):
        s.add("r", line(i), 0.0)
    b = s.take(0.0)
    assert b is not None
    s.complete(b, 0.0)
    assert s.buffered_runs() == 0


def test_stale_timer_does_not_flush_a_refilled_run_early() -> None:
    s = spool(batch_lines=2, flush_interval=1.0, max_lines=100)
    s.add("r", line(1), 0.0)
    s.add("r", line(2), 0.0)
    b = s.take(0.0)
    assert b is not None
    s.complete(b, 0.1)
    s.add("r", line(3), 0.5)  # new deadline 1.5; the old timer (1.0) is stale
    assert s.take(1.0) is None
    assert s.take(1.5) is not None


def test_keys_are_unique() -> None:
    s = spool()
    keys = {s.new_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(1 <= len(k) <= 200 for k in keys)


@pytest.mark.parametrize(
    "kw", [{"batch_lines": 0}, {"batch_lines": 10001}, {"max_lines": 2}, {"flush_interval": 0}]
)
def test_invalid_configuration(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        spool(**kw)
