"""Supabase postgres_changes filters: ``column=op.value``, parsed once, matched per change.

The grammar is the one every Supabase server since 2023 accepts (``postgres_cdc_rls/subscriptions.ex``):
split on the first ``=`` into column and the rest, split the rest on the first ``.`` into operator and
value; the value may itself contain ``.`` and ``=``. Operators: ``eq neq lt lte gt gte in``.
``in`` takes ``(v1,v2,...)``, at most 100 values, each optionally double-quoted (``"c,d"`` with
``\\`` escapes) as in a Postgres array literal; other values may be PostgREST-quoted the same way.
The newer operators (``like``, ``is`` ...), ``not.`` negation and comma-separated AND exist only on
Supabase servers from mid-2026 and are refused here with a clear message.

The value is cast to the column's type when the filter is parsed (:mod:`meshlogs.protocol.pgtypes`),
so a bad value is an :class:`~meshlogs.errors.InvalidFilterError` at subscribe time, as Supabase's
SQL cast is, and matching a change compares typed values only. Evaluation follows SQL: a NULL or
missing column never matches (not even ``neq``), which is also why a filtered DELETE needs
``REPLICA IDENTITY FULL`` (the old row otherwise carries only the primary key).

For the fan-out index, :attr:`Filter.index_values` gives the canonical values an ``eq``/``in``
filter can match; a change is looked up with :func:`index_value` of its row value under the same
type, so subscriptions can live in a dict keyed by ``(schema, table, column, value)``.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from meshlogs.errors import InvalidFilterError
from meshlogs.protocol.pgtypes import PgType, pg_type

__all__ = ["MAX_IN_VALUES", "Filter", "FilterOp", "index_value", "parse_filter"]

MAX_IN_VALUES: Final = 100
"""Most values an ``in`` list may hold (Supabase's ``subscription_check_filters`` limit)."""

_MAX_FILTER_CHARS: Final = 10_000


class FilterOp(enum.Enum):
    """The supported operators, by their PostgREST names."""

    EQ = "eq"
    NEQ = "neq"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    IN = "in"


_ORDERING: Final = frozenset({FilterOp.LT, FilterOp.LTE, FilterOp.GT, FilterOp.GTE})
_NEWER_OPS: Final = frozenset({"like", "ilike", "is", "match", "imatch", "isdistinct", "not"})


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed, typed filter.

    Attributes:
        column: the column name, exactly as written.
        op: the operator.
        column_type: the column's type.
        values: the canonical value(s): one for comparison operators, the distinct non-NULL list
            members for ``in`` (possibly none: ``in.()`` matches nothing).
        text: the filter string as the client wrote it.
    """

    column: str
    op: FilterOp
    column_type: PgType = field(compare=False)
    values: tuple[Hashable, ...]
    text: str = field(compare=False)

    @property
    def index_values(self) -> tuple[Hashable, ...] | None:
        """Canonical values under which the fan-out index may file this filter.

        A change whose :func:`index_value` for :attr:`column` is one of these values may match;
        a change with another value cannot. ``None`` for operators that cannot be indexed by value.
        """
        if self.op is FilterOp.EQ or self.op is FilterOp.IN:
            return self.values
        return None

    @property
    def eq_key(self) -> tuple[str, Hashable] | None:
        """``(column, canonical value)`` for an ``eq`` filter, else ``None``."""
        if self.op is FilterOp.EQ:
            return (self.column, self.values[0])
        return None

    def matches(self, record: Mapping[str, object]) -> bool:
        """Whether a row passes this filter, with SQL semantics.

        Args:
            record: the row (new row for INSERT/UPDATE, old identity for DELETE), column name →
                typed value.

        Returns:
            ``False`` when the column is missing, NULL, or unreadable as the column's type.
        """
        actual = self.column_type.coerce(record.get(self.column))
        if actual is None:
            return False
        op = self.op
        if op is FilterOp.EQ:
            return actual == self.values[0]
        if op is FilterOp.IN:
            return actual in self.values
        if op is FilterOp.NEQ:
            return actual != self.values[0]
        # Canonical values of one ordered type are mutually comparable by construction.
        left: Any = actual
        right: Any = self.values[0]
        if op is FilterOp.LT:
            return bool(left < right)
        if op is FilterOp.LTE:
            return bool(left <= right)
        if op is FilterOp.GT:
            return bool(left > right)
        return bool(left >= right)


def index_value(column_type: str | PgType, value: object) -> Hashable | None:
    """The canonical form of a row value, to look a change up in the fan-out index.

    Args:
        column_type: the column's type (name or :class:`PgType`).
        value: the row value as the capture pipeline produced it.

    Returns:
        A value equal to the matching filters' :attr:`Filter.index_values` member, or ``None`` for
        NULL, an unreadable value, or an unsupported type (such rows match no ``eq``/``in`` filter).
    """
    if isinstance(column_type, str):
        try:
            column_type = pg_type(column_type)
        except KeyError:
            return None
    return column_type.coerce(value)


def _error(text: str, message: str) -> InvalidFilterError:
    shown = text if len(text) <= 120 else text[:117] + "..."
    return InvalidFilterError(f"Error parsing `filter` params {shown!r}: {message}")


def _unquote(value: str) -> str:
    # PostgREST quoting, as Supabase's unquote_value: a value that is exactly one double-quoted
    # string loses its quotes and backslash escapes; anything else is taken literally.
    if len(value) < 2 or value[0] != '"':
        return value
    out = []
    index = 1
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            out.append(value[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(out) if index == len(value) - 1 else value
        out.append(char)
        index += 1
    return value


_BLANKS: Final = " \t\n\r"


def _quoted_item(text: str, body: str, index: int) -> tuple[str, int]:
    # `index` is just past the opening quote; returns the item and the index past the closing one.
    chars = []
    size = len(body)
    while index < size:
        char = body[index]
        if char == "\\":
            if index + 1 >= size:
                break
            chars.append(body[index + 1])
            index += 2
        elif char == '"':
            return "".join(chars), index + 1
        else:
            chars.append(char)
            index += 1
    raise _error(text, "unterminated quoted value in `in` list")


def _split_in_list(text: str, body: str) -> list[str | None]:
    # The list becomes a Postgres array literal ({...}) in Supabase; read it with the array input
    # rules: commas separate, double quotes protect commas and spaces, backslash escapes, unquoted
    # elements are trimmed, and an unquoted NULL is a NULL element.
    items: list[str | None] = []
    if not body.strip():
        return items
    index, size = 0, len(body)
    while True:
        while index < size and body[index] in _BLANKS:
            index += 1
        if index < size and body[index] == '"':
            item, index = _quoted_item(text, body, index + 1)
            while index < size and body[index] in _BLANKS:
                index += 1
            items.append(item)
        else:
            start = index
            while index < size and body[index] != ",":
                if body[index] in '"{}\\':
                    raise _error(text, f"unexpected {body[index]!r} in `in` list; quote the value")
                index += 1
            element = body[start:index].strip(_BLANKS)
            if not element:
                raise _error(text, "empty value in `in` list")
            items.append(None if element.upper() == "NULL" else element)
        if len(items) > MAX_IN_VALUES:
            raise _error(text, f"`in` takes at most {MAX_IN_VALUES} values")
        if index >= size:
            return items
        if body[index] != ",":
            raise _error(text, "expected ',' between `in` values")
        index += 1


def _cast(text: str, column: str, column_type: PgType, literal: str) -> Hashable:
    try:
        return column_type.parse(literal)
    except ValueError as exc:
        shown = literal if len(literal) <= 60 else literal[:57] + "..."
        raise _error(
            text, f"invalid value {shown!r} for column {column!r} of type {column_type.name} ({exc})"
        ) from None


def parse_filter(text: str, columns: Mapping[str, str]) -> Filter | None:
    """Parse and type a filter against a table's columns.

    Args:
        text: the binding's ``filter`` string, e.g. ``run_id=eq.42`` or ``level=in.(warn,error)``.
        columns: column name → Postgres type name (``pg_type.typname`` or SQL alias) for the table,
            e.g. ``{"id": "int8", "run_id": "uuid", "ts": "timestamptz", "attrs": "jsonb"}``.

    Returns:
        The filter, or ``None`` when ``text`` is empty or blank (Supabase treats that as no filter).

    Raises:
        InvalidFilterError: bad grammar, unknown column, unsupported operator or column type, or a
            value that does not cast to the column's type. The message says which.
    """
    if len(text) > _MAX_FILTER_CHARS:
        raise _error(text, f"filter is longer than {_MAX_FILTER_CHARS} characters")
    stripped = text.strip()
    if not stripped:
        return None
    column, sep, rest = stripped.partition("=")
    op_name, dot, literal = rest.partition(".")
    if not sep or not column or not dot:
        raise _error(text, "expected `column=operator.value`, e.g. `run_id=eq.42`")
    try:
        op = FilterOp(op_name)
    except ValueError:
        hint = " on this server" if op_name in _NEWER_OPS else ""
        raise _error(
            text,
            f"unsupported operator {op_name!r}{hint}; use one of eq, neq, lt, lte, gt, gte, in",
        ) from None
    if column not in columns:
        raise _error(text, f"column {column!r} does not exist or cannot be filtered on")
    type_name = columns[column]
    try:
        column_type = pg_type(type_name)
    except KeyError:
        raise _error(text, f"filtering on column {column!r} of type {type_name} is not supported") from None
    if op in _ORDERING and not column_type.ordered:
        raise _error(text, f"operator {op.value!r} is not supported on type {column_type.name}")
    if op is FilterOp.IN:
        if len(literal) < 2 or literal[0] != "(" or literal[-1] != ")":
            raise _error(text, "`in` filter value must be wrapped by parentheses")
        values: list[Hashable] = []
        for item in _split_in_list(text, literal[1:-1]):
            if item is None:
                continue  # `col = any('{1,NULL}')` never matches through the NULL
            value = _cast(text, column, column_type, item)
            if value not in values:
                values.append(value)
        return Filter(column, op, column_type, tuple(values), text)
    value = _cast(text, column, column_type, _unquote(literal))
    return Filter(column, op, column_type, (value,), text)
