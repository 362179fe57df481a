"""The bookkeeping that keeps RLS checks from running before a streamed commit is visible."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlogs.realtime.visibility import Snapshot, StreamedXids, precedes

MOD = 1 << 32


def test_snapshot_parses_the_text_form_and_keeps_low_32_bits() -> None:
    epoch = 3 << 32
    snap = Snapshot.parse(f"{epoch + 100}:{epoch + 110}:{epoch + 103},{epoch + 107}")
    assert snap == Snapshot(100, 110, frozenset({103, 107}))
    assert Snapshot.parse("5:5:") == Snapshot(5, 5, frozenset())
    assert [x for x in range(98, 112) if snap.shows(x)] == [98, 99, 100, 101, 102, 104, 105, 106, 108, 109]


@pytest.mark.parametrize("text", ["", "1:2", "a:b:", "1:2:3:4", "1:2:x"])
def test_a_malformed_snapshot_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        Snapshot.parse(text)


def test_precedes_wraps_around() -> None:
    assert precedes(MOD - 2, 3) and not precedes(3, MOD - 2)
    assert not precedes(7, 7)
    assert precedes(10, 11) and not precedes(11, 10)


def test_a_running_or_future_xid_is_not_covered_until_it_finishes() -> None:
    xids = StreamedXids()
    xids.add(105)
    mark = xids.mark()
    assert not xids.covered(mark, Snapshot(100, 110, frozenset({105})))  # still in the proc array
    assert not xids.covered(mark, Snapshot(100, 105, frozenset()))  # not below xmax
    later = Snapshot(106, 111, frozenset())
    assert xids.covered(mark, later)
    xids.confirm(mark)
    assert len(xids) == 0
    assert xids.covered(xids.mark(), Snapshot(1, 2, frozenset()))  # nothing pending


def test_only_xids_up_to_the_mark_count() -> None:
    xids = StreamedXids()
    xids.add(50)
    mark = xids.mark()
    xids.add(60)  # streamed while the query was in flight
    snap = Snapshot(40, 55, frozenset())
    assert xids.covered(mark, snap)
    xids.confirm(mark)
    assert len(xids) == 1  # 60 still waits for a snapshot that shows it
    assert not xids.covered(xids.mark(), snap)


def test_it_stays_bounded() -> None:
    xids = StreamedXids(limit=100)
    for x in range(1000):
        xids.add(x)
    assert len(xids) == 100


@given(
    base=st.integers(0, MOD - 1),
    offsets=st.lists(st.integers(0, 1000), min_size=1, max_size=30),
    running=st.sets(st.integers(0, 1000), max_size=10),
    xmax_offset=st.integers(0, 1100),
)
def test_covered_means_every_marked_xid_is_shown(
    base: int, offsets: list[int], running: set[int], xmax_offset: int
) -> None:
    """Across the 32-bit wraparound: covered() is exactly "the snapshot shows every xid"."""
    xids = StreamedXids()
    streamed = [(base + o) % MOD for o in offsets]
    for x in streamed:
        xids.add(x)
    snap = Snapshot(base, (base + xmax_offset) % MOD, frozenset((base + r) % MOD for r in running))
    assert xids.covered(xids.mark(), snap) == all(snap.shows(x) for x in streamed)
