"""The seq merge on its own: duplicates dropped, order restored, gaps held and filled, holes reported."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from meshlogs.tail.merge import Hole, Merger


def merger(after: int = 0, max_pending: int = 1000) -> Merger[int]:
    return Merger(lambda seq: seq, after=after, max_pending=max_pending)


def test_in_order_rows_are_released_at_once() -> None:
    m = merger()
    assert [m.offer_live(s).rows for s in (1, 2, 3)] == [[1], [2], [3]]
    assert m.last == 3 and not m.needs_backfill


def test_duplicates_and_old_rows_are_dropped() -> None:
    m = merger()
    m.offer_live(1)
    m.offer_live(2)
    assert m.offer_live(2).rows == [] and m.offer_live(1).rows == []
    assert m.duplicates == 2 and m.last == 2


def test_a_gap_holds_rows_and_asks_for_a_backfill() -> None:
    m = merger()
    m.offer_live(1)
    assert m.offer_live(3).rows == [] and m.offer_live(4).rows == []
    assert m.needs_backfill and m.pending == 2
    assert m.offer_live(3).rows == []  # a duplicate of a held row
    out = m.offer_live(2)  # the late row closes the gap and releases what was held
    assert out.rows == [2, 3, 4] and not m.needs_backfill and m.last == 4


def test_backfill_fills_a_gap_and_releases_held_rows() -> None:
    m = merger()
    m.offer_live(1)
    m.offer_live(5)
    out = m.offer_backfill([2, 3, 4, 5, 6])
    # 5 arrived live: 4 lines were restored from the server
    assert out.rows == [2, 3, 4, 5, 6] and out.restored == 4 and out.holes == []
    assert not m.needs_backfill and m.last == 6


def test_backfill_page_overlapping_what_was_shown_is_deduplicated() -> None:
    m = merger()
    for s in (1, 2, 3):
        m.offer_live(s)
    out = m.offer_backfill([2, 3, 4])
    assert out.rows == [4] and out.restored == 1


def test_since_seq_starts_after_it() -> None:
    m = merger(after=10)
    assert m.offer_live(5).rows == [] and m.offer_live(11).rows == [11]
    assert merger(after=10).offer_backfill([9, 10, 11, 12]).rows == [11, 12]


def test_hole_inside_a_backfill_page_is_real_and_reported() -> None:
    m = merger()
    out = m.offer_backfill([1, 2, 6, 7])
    assert out.rows == [1, 2, 6, 7] and out.holes == [Hole(3, 5)] and out.holes[0].size == 3


def test_held_rows_below_a_backfill_hole_are_kept() -> None:
    m = merger()
    m.offer_live(4)  # held: 1..3 missing
    out = m.offer_backfill([6, 7])  # the server no longer has 1..3 and 5
    assert out.rows == [4, 6, 7] and out.holes == [Hole(1, 3), Hole(5, 5)]


def test_settle_releases_rows_held_since_before_a_complete_backfill() -> None:
    m = merger()
    m.offer_live(1)
    m.offer_live(4)  # arrives, then a backfill starts
    mark = m.mark()
    m.offer_live(9)  # arrives during the backfill: not settled by it
    assert m.offer_backfill([]).rows == []
    out = m.settle(mark)
    assert out.rows == [4] and out.holes == [Hole(2, 3)] and m.pending == 1
    out = m.settle(m.mark())
    assert out.rows == [9] and out.holes == [Hole(5, 8)] and not m.needs_backfill


def test_pending_rows_are_bounded() -> None:
    m = merger(max_pending=10)
    for s in range(3, 30):
        m.offer_live(s)
    assert m.pending <= 10 and m.evicted > 0
    # the lowest seqs are kept; the rest come back through the backfill
    out = m.offer_backfill(list(range(1, 30)))
    assert out.rows == list(range(1, 30)) and out.holes == []


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=120),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    drop=st.floats(min_value=0, max_value=0.6),
    dup=st.floats(min_value=0, max_value=0.3),
)
def test_any_live_mess_plus_backfills_gives_exactly_1_to_n(
    n: int, seed: int, drop: float, dup: float
) -> None:
    """Live rows lost, duplicated and locally reordered; backfills at random moments (pages of the
    committed prefix, capped like PostgREST's max-rows). The output is exactly 1..n, in order."""
    rng = random.Random(seed)
    live: list[int] = []
    for s in range(1, n + 1):
        if rng.random() >= drop:
            live.append(s)
        if rng.random() < dup:
            live.append(rng.randint(1, s))
    for i in range(len(live) - 1):  # a little reordering, as a reconnect race could cause
        if rng.random() < 0.1:
            live[i], live[i + 1] = live[i + 1], live[i]
    m = merger(max_pending=rng.choice([3, 50, 1000]))
    shown: list[int] = []
    committed = 0
    for s in live:
        committed = max(committed, s)
        shown += m.offer_live(s).rows
        if m.needs_backfill or rng.random() < 0.05:
            mark = m.mark()
            while True:
                page = list(range(m.last + 1, committed + 1))[: rng.choice([1, 7, 1000])]
                if not page:
                    break
                out = m.offer_backfill(page)
                assert out.holes == []
                shown += out.rows
            shown += m.settle(mark).rows
    mark = m.mark()  # the run finished: one last backfill
    while page := list(range(m.last + 1, n + 1))[:50]:
        shown += m.offer_backfill(page).rows
    shown += m.settle(mark).rows
    assert shown == list(range(1, n + 1))
    assert not m.needs_backfill
