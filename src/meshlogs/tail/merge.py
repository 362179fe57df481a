"""The gap-free merge of live rows and backfilled pages, by ``seq`` (ARCHITECTURE §5, step 3). Pure.

A run's lines carry a dense ``seq`` (1, 2, 3, …) in commit order, so a client that has printed
everything up to ``last`` knows exactly what comes next. Rows arrive from two sources:

- **live** rows (realtime ``postgres_changes``), which may be late, duplicated, or missing when a
  socket dropped. A live row with ``seq <= last`` is a duplicate and dropped; ``seq == last + 1`` is
  released (with any held rows that now follow on); ``seq > last + 1`` is *held* and
  :attr:`Merger.needs_backfill` turns true, so the caller fetches the hole over REST.
- **backfill** pages (``GET /rest/v1/run_logs?seq=gt.<last>&order=seq.asc``), which are the truth: one
  page is one snapshot, and since seq order is commit order, a snapshot that holds seq ``s`` holds every
  committed seq below ``s``. So a hole *inside a backfill page* is real (the rows were deleted, e.g. by
  retention): it is skipped and reported as a :class:`Hole`, never waited for.

Held rows whose hole a complete backfill could not fill (the backfill began after they arrived, yet
the server no longer has rows before them) are released by :meth:`Merger.settle`, again with the hole
reported, so a deleted range can never stall the stream.

Bounded: at most ``max_pending`` rows are held; beyond that the highest seqs are dropped (they are
fetched again by the backfill the gap already asked for). Nothing is ever silently skipped: every
seq above the starting point is either released or reported inside a :class:`Hole`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["DEFAULT_MAX_PENDING", "Hole", "Merged", "Merger"]

R = TypeVar("R")

#: Held live rows at most (a few MB of log lines).
DEFAULT_MAX_PENDING = 20_000


@dataclass(frozen=True, order=True)
class Hole:
    """Seqs ``first..last`` (inclusive) that the server no longer has."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass
class Merged(Generic[R]):
    """What one offer released, in seq order.

    Attributes:
        rows: rows to show now, strictly increasing seq, each exactly once.
        holes: ranges skipped because the server does not have them.
        restored: how many of ``rows`` came from a backfill page (not from the live stream).
    """

    rows: list[R] = field(default_factory=list)
    holes: list[Hole] = field(default_factory=list)
    restored: int = 0

    def extend(self, other: Merged[R]) -> None:
        self.rows.extend(other.rows)
        self.holes.extend(other.holes)
        self.restored += other.restored


class Merger(Generic[R]):
    """Orders rows of one run by seq, drops duplicates, holds what comes after a gap.

    Args:
        seq_of: the seq of a row.
        after: seqs up to this one are considered seen (``--since-seq``); 0 shows everything.
        max_pending: most live rows held while a gap is open.
    """

    def __init__(self, seq_of: Callable[[R], int], *, after: int = 0, max_pending: int = DEFAULT_MAX_PENDING):
        if after < 0:
            raise ValueError("after must be >= 0")
        if max_pending < 1:
            raise ValueError("max_pending must be positive")
        self._seq_of = seq_of
        self._last = after
        self._max_pending = max_pending
        self._pending: dict[int, tuple[int, R]] = {}  # seq -> (arrival tick, row)
        self._heap: list[int] = []  # seqs in _pending (lazily cleaned)
        self._tick = 0
        self.duplicates = 0
        self.evicted = 0

    @property
    def last(self) -> int:
        """The highest seq released so far (or the starting point)."""
        return self._last

    @property
    def pending(self) -> int:
        """Live rows held behind a gap."""
        return len(self._pending)

    @property
    def needs_backfill(self) -> bool:
        """True while rows are held behind a gap (a backfill from :attr:`last` fills it)."""
        return bool(self._pending)

    def mark(self) -> int:
        """A position in the live stream; pass it to :meth:`settle` when a backfill started here ends."""
        return self._tick

    def offer_live(self, row: R) -> Merged[R]:
        """Take one live row; release what is now in order."""
        self._tick += 1
        out: Merged[R] = Merged()
        seq = self._seq_of(row)
        if seq <= self._last or seq in self._pending:
            self.duplicates += 1
            return out
        if seq == self._last + 1:
            self._release(row, seq, out)
            self._drain(out)
            return out
        self._pending[seq] = (self._tick, row)
        heapq.heappush(self._heap, seq)
        if len(self._pending) > self._max_pending:
            self._evict()
        return out

    def offer_backfill(self, rows: Iterable[R]) -> Merged[R]:
        """Take one backfill page (ascending seq, one snapshot). Holes inside it are real."""
        out: Merged[R] = Merged()
        for row in rows:
            seq = self._seq_of(row)
            if seq <= self._last:
                continue
            # Held live rows below this one exist on the server (they were delivered): keep them.
            while self._heap and self._heap[0] < seq:
                held = heapq.heappop(self._heap)
                entry = self._pending.pop(held, None)
                if entry is not None:
                    self._skip_to(held, out)
                    self._release(entry[1], held, out)
            self._skip_to(seq, out)
            self._pending.pop(seq, None)
            self._release(row, seq, out)
            out.restored += 1
            self._drain(out)
        return out

    def settle(self, mark: int) -> Merged[R]:
        """After a complete backfill begun at ``mark``: release rows held since before it.

        Such a row was committed before the backfill's snapshots were taken, so whatever the backfill
        did not return before it is gone from the server; its hole is reported, not waited for.
        """
        out: Merged[R] = Merged()
        while self._heap:
            held = self._heap[0]
            entry = self._pending.get(held)
            if entry is None:
                heapq.heappop(self._heap)
                continue
            if entry[0] > mark:
                break
            heapq.heappop(self._heap)
            del self._pending[held]
            self._skip_to(held, out)
            self._release(entry[1], held, out)
            self._drain(out)
        return out

    # -- internals ----------------------------------------------------------------------------------

    def _release(self, row: R, seq: int, out: Merged[R]) -> None:
        out.rows.append(row)
        self._last = seq

    def _skip_to(self, seq: int, out: Merged[R]) -> None:
        if seq > self._last + 1:
            out.holes.append(Hole(self._last + 1, seq - 1))
            self._last = seq - 1

    def _drain(self, out: Merged[R]) -> None:
        while self._heap:
            head = self._heap[0]
            if head not in self._pending:
                heapq.heappop(self._heap)
                continue
            if head != self._last + 1:
                if head <= self._last:  # released through a backfill meanwhile
                    heapq.heappop(self._heap)
                    del self._pending[head]
                    continue
                return
            heapq.heappop(self._heap)
            _, row = self._pending.pop(head)
            self._release(row, head, out)

    def _evict(self) -> None:
        # Drop the highest seqs: they are the furthest from being released, and the backfill the
        # gap asked for fetches them again.
        # Evict down to 90 % of the bound so that a flood does not re-sort on every row.
        excess = len(self._pending) - self._max_pending * 9 // 10
        for seq in sorted(self._pending, reverse=True)[:excess]:
            del self._pending[seq]
            self.evicted += 1
        self._heap = sorted(self._pending)
