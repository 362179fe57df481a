"""Log sequence numbers: positions in the Postgres write-ahead log, as an ordered value type.

An LSN is an unsigned 64-bit byte offset into the WAL. Postgres prints it as two hexadecimal halves
``XXXXXXXX/XXXXXXXX`` (high 32 bits, low 32 bits), for example ``16/B374D848``; PostgreSQL 18 and
earlier print the low half without zero padding (``0/16B3748``), later versions may pad it
(``0/016B3748``). :meth:`Lsn.parse` accepts both; ``str()`` prints the unpadded form.

Positions cross module boundaries only as :class:`Lsn`, never as raw ints or strings (STYLE §8.2 rule 5),
so a byte count can never be confused with a position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["Lsn"]

_MAX = (1 << 64) - 1
_TEXT = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


@dataclass(frozen=True, order=True, slots=True)
class Lsn:
    """A WAL position. Ordered, hashable, immutable.

    Attributes:
        value: the position as an unsigned 64-bit integer (0 is ``InvalidXLogRecPtr``).

    Raises:
        ValueError: ``value`` is not an int in ``0 .. 2**64 - 1``.
    """

    value: int

    ZERO: ClassVar[Lsn]

    def __post_init__(self) -> None:
        if type(self.value) is not int or not 0 <= self.value <= _MAX:
            raise ValueError(f"an LSN is an integer in 0..2**64-1, not {self.value!r}")

    @classmethod
    def parse(cls, text: str) -> Lsn:
        """Parse Postgres' text form ``HIGH/LOW`` (hexadecimal halves, 1 to 8 digits each).

        Raises:
            ValueError: ``text`` is not in that form.
        """
        match = _TEXT.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"not an LSN (expected HIGH/LOW in hexadecimal, like 16/B374D848): {text!r}")
        return cls((int(match.group(1), 16) << 32) | int(match.group(2), 16))

    @classmethod
    def from_wire(cls, value: int) -> Lsn:
        """An LSN from a value already known to be an unsigned 64-bit int (``struct`` format ``Q``).

        Skips the range check of the constructor: the decoders build two per row on the hot path.
        """
        lsn = _new(cls)
        _set_value(lsn, value)
        return lsn

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __bool__(self) -> bool:
        """False for ``0/0`` (``InvalidXLogRecPtr``), True for every real position."""
        return self.value != 0

    def __add__(self, nbytes: int) -> Lsn:
        """The position ``nbytes`` further on (``nbytes`` may be negative)."""
        if type(nbytes) is not int:
            return NotImplemented
        return Lsn(self.value + nbytes)

    def __sub__(self, other: Lsn) -> int:
        """The distance in bytes from ``other`` to this position (negative when ``other`` is later)."""
        if not isinstance(other, Lsn):
            return NotImplemented
        return self.value - other.value


_new = object.__new__
_set_value = Lsn.__dict__["value"].__set__  # the slot's member descriptor
Lsn.ZERO = Lsn(0)
