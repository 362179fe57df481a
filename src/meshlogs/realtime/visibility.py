"""Are the transactions seen on the replication stream visible to new snapshots yet?

Postgres writes and flushes a transaction's commit record, which a walsender may decode and stream
at once, *before* the committing backend leaves the proc array; until it does, new snapshots still
count the transaction as running and do not show its rows. The window is microseconds on a quiet
machine and milliseconds on a busy one (and as long as a synchronous standby takes, with
``synchronous_standby_names``). An RLS check of a streamed row inside that window would find the
row invisible and drop a line the viewer may see: a silent gap (measured: 1 line in ~20,000 at 5k
msgs/s on 2 saturated cores).

So every authorization query also takes ``pg_current_snapshot()``, and its answer counts only if
that snapshot shows every transaction streamed before the query was sent; otherwise the query is
repeated. This module is the pure bookkeeping for that: which streamed xids are not known to be
visible yet, and whether a snapshot covers them. Xids from pgoutput are 32 bits and wrap around;
snapshots report 64-bit xids, compared here by their low 32 bits in modular order, as Postgres does.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Mark", "Snapshot", "StreamedXids", "precedes"]

_MOD = 1 << 32
_HALF = 1 << 31


def precedes(a: int, b: int) -> bool:
    """``a`` is an older 32-bit xid than ``b`` (modular order, like Postgres' TransactionIdPrecedes)."""
    return 0 < (b - a) % _MOD < _HALF


@dataclass(frozen=True)
class Snapshot:
    """A ``pg_current_snapshot()``: ``xmin:xmax:xip,...``, kept as low 32 bits.

    Attributes:
        xmin: every xid before it is finished.
        xmax: every xid from it on had not finished (is invisible).
        xip: xids in between that were still running.
    """

    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        """Parse the text form; a malformed one is a ``ValueError`` (never a guess)."""
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise ValueError(f"not a pg_snapshot: {text!r}")
        xmin, xmax = int(parts[0]) % _MOD, int(parts[1]) % _MOD
        xip = frozenset(int(x) % _MOD for x in parts[2].split(",") if x)
        return cls(xmin, xmax, xip)

    def shows(self, xid: int) -> bool:
        """Whether a committed ``xid`` is visible in this snapshot."""
        return precedes(xid, self.xmax) and xid not in self.xip


@dataclass(frozen=True)
class Mark:
    """Everything :class:`StreamedXids` held when the mark was taken."""

    serial: int
    newest: int | None


class StreamedXids:
    """The committed xids seen on the stream that no snapshot has been checked to show yet.

    Bounded: past ``limit`` entries the oldest are forgotten (thousands of commits later, a
    transaction is out of the proc array in all but pathological cases), so a gateway whose
    decisions all come from its cache does not grow it without end.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._serial = 0
        self._pending: dict[int, int] = {}  # xid -> serial of its last sighting, oldest first
        self._newest: int | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, xid: int) -> None:
        """A transaction (or a chunk of one) was streamed; call in stream order."""
        xid %= _MOD
        self._serial += 1
        self._pending.pop(xid, None)
        self._pending[xid] = self._serial
        if self._newest is None or precedes(self._newest, xid):
            self._newest = xid
        while len(self._pending) > self._limit:
            del self._pending[next(iter(self._pending))]

    def mark(self) -> Mark:
        """Take before sending a query whose snapshot must show what was streamed so far."""
        return Mark(self._serial, self._newest if self._pending else None)

    def covered(self, mark: Mark, snapshot: Snapshot) -> bool:
        """Whether ``snapshot`` shows every xid added up to ``mark``.

        The newest such xid must precede ``xmax``, and none of them may be in ``xip``; xids added
        after the mark do not matter. Cost: one check per running transaction in the snapshot.
        """
        if mark.newest is None:
            return True
        if not precedes(mark.newest, snapshot.xmax):
            return False
        for xid in snapshot.xip:
            serial = self._pending.get(xid)
            if serial is not None and serial <= mark.serial:
                return False
        return True

    def confirm(self, mark: Mark) -> None:
        """Forget the xids added up to ``mark``: a snapshot showed them, so every later one will."""
        pending = self._pending
        while pending:
            xid = next(iter(pending))
            if pending[xid] > mark.serial:
                break
            del pending[xid]
