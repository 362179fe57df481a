"""Postgres column types as filters need them: parse a literal once, coerce row values, compare.

A filter value is cast to the column's type when the subscription is made (Supabase casts it in SQL
and refuses the subscription when the cast fails); afterwards every change compares typed values.
Here each supported type is a :class:`PgType` that maps both sides into one *canonical* Python value:

* :meth:`PgType.parse` — the filter literal (text) → canonical value, or :class:`ValueError`.
* :meth:`PgType.coerce` — a row value as the capture pipeline hands it over (``int``, ``Decimal``,
  ``bool``, ``str`` in Postgres text output for uuid and timestamps, ``dict``/``list`` for jsonb) →
  canonical value, or ``None`` for SQL NULL *and* for anything that cannot be read, so that a filter
  on an unreadable value fails closed (delivers nothing) instead of raising in the fan-out path.

Canonical values compare with ``==``/``<`` exactly as Postgres compares the typed values, and hash
consistently, so the fan-out index can key subscriptions on them:

* numbers: ``int``; ``numeric`` and floats as ``(rank, value)`` where rank 1 is NaN, because Postgres
  sorts NaN above every number and treats NaN = NaN (Python does neither).
* timestamps and dates: ``(rank, value)`` with rank -1/1 for ``-infinity``/``infinity``;
  ``timestamptz`` values are aware datetimes in UTC (text without an offset is read as UTC, the
  Supabase session time zone), ``timestamp`` values are naive.
* ``uuid``: the lower-case hyphenated text (input is case-insensitive, braces and missing hyphens
  are accepted as Postgres accepts them).
* ``text``/``varchar``/``name``: the string; ``bpchar`` ignores trailing spaces as Postgres does.
  Ordering compares code points (the C collation); a database collation such as ``en_US`` may order
  non-ASCII or mixed-case text differently for ``lt``/``gt`` filters.
* ``jsonb``: a hashable normal form (objects as sorted pairs, numbers as ``Decimal``, so ``1`` and
  ``1.0`` are equal and ``true`` is not ``1``). jsonb only supports ``eq``/``neq``/``in``.

``json`` has no equality operator in Postgres and other types are not supported: :func:`pg_type`
raises ``KeyError`` for them and the filter parser turns that into a clear error.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Hashable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

__all__ = ["PG_TYPES", "PgType", "pg_type"]

_UTC = dt.UTC


class PgType:
    """One supported Postgres type: how to parse, coerce and order its values.

    Attributes:
        name: the canonical type name (``pg_type.typname``: ``int8``, ``timestamptz`` ...).
        ordered: whether ``lt``/``lte``/``gt``/``gte`` are allowed.
    """

    __slots__ = ("name", "ordered")

    def __init__(self, name: str, *, ordered: bool = True) -> None:
        self.name = name
        self.ordered = ordered

    def parse(self, text: str) -> Hashable:
        """Cast a filter literal to the canonical value.

        Args:
            text: the literal as it appears after ``op.`` (already unquoted).

        Returns:
            The canonical value.

        Raises:
            ValueError: Postgres would reject the cast.
        """
        raise NotImplementedError

    def coerce(self, value: object) -> Hashable | None:
        """Turn a row value into the canonical value; ``None`` for NULL or an unreadable value.

        Args:
            value: the row value as the capture pipeline produced it.

        Returns:
            The canonical value, or ``None``.
        """
        if value is None:
            return None
        try:
            return self._coerce(value)
        except (ValueError, TypeError, ArithmeticError, OverflowError):
            return None

    def _coerce(self, value: object) -> Hashable | None:
        return self.parse(value) if isinstance(value, str) else None

    def __repr__(self) -> str:
        return f"PgType({self.name!r})"


# Postgres integer input: optional sign, decimal digits with single underscores between them
# (PG 16), or 0x/0o/0b prefixed literals; surrounding whitespace allowed.
_INT_RE = re.compile(
    r"\s*(?P<sign>[+-]?)(?:(?P<dec>\d+(?:_\d+)*)|0[xX](?P<hex>[0-9a-fA-F]+(?:_[0-9a-fA-F]+)*)"
    r"|0[oO](?P<oct>[0-7]+(?:_[0-7]+)*)|0[bB](?P<bin>[01]+(?:_[01]+)*))\s*",
    re.ASCII,
)


class _Int(PgType):
    __slots__ = ("low", "high")

    def __init__(self, name: str, bits: int) -> None:
        super().__init__(name)
        self.low = -(1 << (bits - 1))
        self.high = (1 << (bits - 1)) - 1

    def parse(self, text: str) -> int:
        match = _INT_RE.fullmatch(text)
        if match is None:
            raise ValueError(f"invalid input syntax for type {self.name}")
        for group, base in (("dec", 10), ("hex", 16), ("oct", 8), ("bin", 2)):
            digits = match[group]
            if digits is not None:
                if len(digits) > 80:
                    raise ValueError(f"value out of range for type {self.name}")
                number = int(digits.replace("_", ""), base)
                break
        number = -number if match["sign"] == "-" else number
        if not self.low <= number <= self.high:
            raise ValueError(f"value out of range for type {self.name}")
        return number

    def _coerce(self, value: object) -> Hashable | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, Decimal | float) and value == value and value % 1 == 0:
            return int(value)
        return super()._coerce(value)


# Postgres numeric and float input: decimal with optional exponent and underscores (PG 16),
# NaN, [+-]Infinity (Inf for floats); surrounding whitespace allowed.
_NUMBER_RE = re.compile(
    r"\s*(?:[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d{1,9})?"
    r"|[+-]?(?:inf|infinity)|nan)\s*",
    re.ASCII | re.IGNORECASE,
)
_NAN_KEY: Final = (1, Decimal(0))


class _Numeric(PgType):
    """numeric/decimal: ``Decimal`` with NaN ranked above everything (Postgres semantics)."""

    def parse(self, text: str) -> tuple[int, Decimal]:
        if len(text) > 1000 or _NUMBER_RE.fullmatch(text) is None:
            raise ValueError(f"invalid input syntax for type {self.name}")
        try:
            number = Decimal(text.strip().replace("_", ""))
        except InvalidOperation:
            raise ValueError(f"invalid input syntax for type {self.name}") from None
        return self._key(number)

    @staticmethod
    def _key(number: Decimal) -> tuple[int, Decimal]:
        return _NAN_KEY if number.is_nan() else (0, number)

    def _coerce(self, value: object) -> Hashable | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, Decimal):
            return self._key(value)
        if isinstance(value, int):
            return (0, Decimal(value))
        if isinstance(value, float):
            # repr() gives the shortest text that round-trips, i.e. what Postgres printed.
            return self._key(Decimal(repr(value)))
        return super()._coerce(value)


_FLOAT_NAN_KEY: Final = (1, 0.0)


class _Float(PgType):
    """float4/float8: ``float`` with NaN ranked above everything (Postgres semantics)."""

    def parse(self, text: str) -> tuple[int, float]:
        if len(text) > 1000 or _NUMBER_RE.fullmatch(text) is None:
            raise ValueError(f"invalid input syntax for type {self.name}")
        number = float(text.strip().replace("_", ""))
        if math.isinf(number) and "inf" not in text.lower():
            raise ValueError(f"value out of range for type {self.name}")
        return self._key(number)

    @staticmethod
    def _key(number: float) -> tuple[int, float]:
        return _FLOAT_NAN_KEY if math.isnan(number) else (0, number)

    def _coerce(self, value: object) -> Hashable | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, float | int | Decimal):
            return self._key(float(value))
        return super()._coerce(value)


_TRUE: Final = frozenset({"t", "true", "y", "yes", "on", "1"})
_FALSE: Final = frozenset({"f", "false", "n", "no", "off", "0"})


class _Bool(PgType):
    def parse(self, text: str) -> bool:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(f"invalid input syntax for type {self.name}")

    def _coerce(self, value: object) -> Hashable | None:
        if isinstance(value, bool):
            return value
        return super()._coerce(value)


class _Text(PgType):
    __slots__ = ("blank_padded",)

    def __init__(self, name: str, *, blank_padded: bool = False) -> None:
        super().__init__(name)
        self.blank_padded = blank_padded

    def parse(self, text: str) -> str:
        if "\x00" in text:
            raise ValueError(f"invalid byte sequence for type {self.name}: 0x00")
        return text.rstrip(" ") if self.blank_padded else text

    def _coerce(self, value: object) -> Hashable | None:
        if isinstance(value, str):
            return value.rstrip(" ") if self.blank_padded else value
        return None


# Postgres accepts an optional hyphen after any group of four hex digits, optionally in braces.
_UUID_RE = re.compile(r"[0-9a-fA-F]{4}(?:-?[0-9a-fA-F]{4}){7}", re.ASCII)


class _Uuid(PgType):
    def parse(self, text: str) -> str:
        stripped = text.strip()
        core = stripped[1:-1] if stripped[:1] == "{" and stripped[-1:] == "}" else stripped
        # Python's UUID() is laxer (urn: prefixes, hyphens anywhere); check Postgres' grammar first.
        if _UUID_RE.fullmatch(core) is None:
            raise ValueError(f"invalid input syntax for type {self.name}")
        return str(uuid.UUID(hex=core.replace("-", "")))

    def _coerce(self, value: object) -> Hashable | None:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            # Fast path: Postgres prints uuids lower-case and hyphenated.
            if len(value) == 36 and value[8] == value[13] == value[18] == value[23] == "-":
                return value.lower()
            return self.parse(value)
        return None


_INFINITY: Final = frozenset({"infinity", "+infinity"})
_MINUS_INFINITY: Final = "-infinity"
_MIN_AWARE: Final = dt.datetime.min.replace(tzinfo=_UTC)
_MIN_NAIVE: Final = dt.datetime.min
_MIN_DATE: Final = dt.date.min
# Postgres' text output puts a space between date and time and may print a two-digit offset.
_TS_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,20})?)?)?"
    r"(?:\s*(?:[zZ]|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?))?",
    re.ASCII,
)


def _parse_timestamp(text: str) -> dt.datetime:
    stripped = text.strip()
    if _TS_RE.fullmatch(stripped) is None:
        raise ValueError("invalid input syntax")
    # fromisoformat (3.11) reads "+00", "+05:30:15" and any number of fraction digits.
    return dt.datetime.fromisoformat(stripped.replace(" ", "T", 1).replace(" ", ""))


class _Timestamp(PgType):
    """timestamptz / timestamp: ``(rank, datetime)`` with ±infinity ranked outside every value."""

    __slots__ = ("aware",)

    def __init__(self, name: str, *, aware: bool) -> None:
        super().__init__(name)
        self.aware = aware

    def parse(self, text: str) -> tuple[int, dt.datetime]:
        word = text.strip().lower()
        floor = _MIN_AWARE if self.aware else _MIN_NAIVE
        if word in _INFINITY:
            return (1, floor)
        if word == _MINUS_INFINITY:
            return (-1, floor)
        try:
            value = _parse_timestamp(text)
        except (ValueError, OverflowError):
            raise ValueError(f"invalid input syntax for type {self.name}") from None
        return self._key(value)

    def _key(self, value: dt.datetime) -> tuple[int, dt.datetime]:
        if self.aware:
            value = value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
        else:
            value = value.replace(tzinfo=None)
        return (0, value)

    def _coerce(self, value: object) -> Hashable | None:
        if isinstance(value, dt.datetime):
            return self._key(value)
        return super()._coerce(value)


class _Date(PgType):
    def parse(self, text: str) -> tuple[int, dt.date]:
        word = text.strip().lower()
        if word in _INFINITY:
            return (1, _MIN_DATE)
        if word == _MINUS_INFINITY:
            return (-1, _MIN_DATE)
        try:
            return (0, _parse_timestamp(text).date())
        except (ValueError, OverflowError):
            raise ValueError(f"invalid input syntax for type {self.name}") from None

    def _coerce(self, value: object) -> Hashable | None:
        if isinstance(value, dt.datetime):
            return (0, value.date())
        if isinstance(value, dt.date):
            return (0, value)
        return super()._coerce(value)


def _json_key(value: Any, depth: int = 0) -> Hashable:
    # A hashable normal form with jsonb equality: key order is irrelevant, 1 == 1.0, true != 1.
    if depth > 64:
        raise ValueError("jsonb value nested too deeply")
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float | Decimal):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite():
            raise ValueError("jsonb numbers are finite")
        return ("num", number)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, list | tuple):
        return ("arr", tuple(_json_key(item, depth + 1) for item in value))
    if isinstance(value, dict):
        return ("obj", tuple(sorted((str(k), _json_key(v, depth + 1)) for k, v in value.items())))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


class _Jsonb(PgType):
    def __init__(self, name: str) -> None:
        super().__init__(name, ordered=False)

    def parse(self, text: str) -> Hashable:
        try:
            return _json_key(orjson.loads(text))
        except orjson.JSONDecodeError:
            raise ValueError(f"invalid input syntax for type {self.name}") from None

    def _coerce(self, value: object) -> Hashable | None:
        # Row values are already parsed JSON; a str is a JSON string, not text to parse.
        return _json_key(value)


_TYPES: tuple[PgType, ...] = (
    _Int("int2", 16),
    _Int("int4", 32),
    _Int("int8", 64),
    _Numeric("numeric"),
    _Float("float4"),
    _Float("float8"),
    _Bool("bool"),
    _Text("text"),
    _Text("varchar"),
    _Text("name"),
    _Text("bpchar", blank_padded=True),
    _Uuid("uuid"),
    _Timestamp("timestamptz", aware=True),
    _Timestamp("timestamp", aware=False),
    _Date("date"),
    _Jsonb("jsonb"),
)

PG_TYPES: Final[Mapping[str, PgType]] = {t.name: t for t in _TYPES}
"""Supported types by canonical name (``pg_type.typname``)."""

_ALIASES: Final[Mapping[str, str]] = {
    "smallint": "int2",
    "integer": "int4",
    "int": "int4",
    "bigint": "int8",
    "decimal": "numeric",
    "real": "float4",
    "double precision": "float8",
    "boolean": "bool",
    "character varying": "varchar",
    "char": "bpchar",
    "character": "bpchar",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
}


def pg_type(name: str) -> PgType:
    """Look up a supported type by ``typname`` or SQL alias (``bigint``, ``boolean`` ...).

    Args:
        name: the type name, case-insensitive.

    Returns:
        The type.

    Raises:
        KeyError: the type is not supported for filters (``json``, arrays, ``bytea`` ...).
    """
    key = name.strip().lower()
    return PG_TYPES[_ALIASES.get(key, key)]
