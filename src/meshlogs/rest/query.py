"""Pure parser for the PostgREST query-string syntax and headers that meshlogs serves.

No I/O, no SQL: strings in, frozen dataclasses or :class:`~meshlogs.rest.errors.RestError` out. What
is parsed (PostgREST's own grammar, ``src/library/PostgREST/ApiRequest/QueryParams.hs``):

- ``select=*`` / ``select=a,alias:b,c::text`` (embedding, aggregates and JSON paths are refused
  with PGRST127);
- filters ``col=[not.]op.value`` for eq, neq, gt, gte, lt, lte, like, ilike, match, imatch,
  in.(a,"b,c"), is.(null|not_null|true|false|unknown), isdistinct; ``*`` in like/ilike patterns
  means ``%`` as in PostgREST;
- ``or=(…)``, ``and=(…)``, ``not.or=(…)`` with nesting;
- ``order=a.desc.nullslast,b``; ``limit``, ``offset``; the ``Range`` header;
- ``Prefer`` (count, return, missing, tx…), ``Accept`` (JSON array, single object, stripped nulls).

Everything is bounded: the number of filters, the size of ``in`` lists and the nesting depth of logic
trees, so a hostile query string costs a bounded amount of parsing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshlogs.rest.errors import RestError, not_implemented, parse_error

__all__ = [
    "MAX_FILTERS",
    "MAX_IN_VALUES",
    "MAX_LOGIC_DEPTH",
    "Filter",
    "IsValue",
    "Logic",
    "MediaType",
    "Op",
    "OrderTerm",
    "Prefer",
    "ReadQuery",
    "SelectItem",
    "Window",
    "parse_accept",
    "parse_filter",
    "parse_logic",
    "parse_order",
    "parse_prefer",
    "parse_read_query",
    "parse_select",
    "resolve_window",
]

MAX_FILTERS = 100
MAX_IN_VALUES = 1000
MAX_LOGIC_DEPTH = 8
MAX_SELECT_ITEMS = 200
MAX_ORDER_TERMS = 20

#: Parameters that are not filters (PostgREST's reserved names, plus the embeddable ones).
RESERVED = frozenset({"select", "columns", "on_conflict", "order", "limit", "offset", "or", "and"})


class Op(enum.Enum):
    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    LIKE = "like"
    ILIKE = "ilike"
    MATCH = "match"
    IMATCH = "imatch"
    IN = "in"
    IS = "is"
    ISDISTINCT = "isdistinct"


class IsValue(enum.Enum):
    NULL = "null"
    NOT_NULL = "not_null"
    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"


_SIMPLE_OPS = {op.value: op for op in Op if op not in {Op.IN, Op.IS}}
#: Valid PostgREST operators this subset does not implement: a clear PGRST127, not a parse error.
_UNSUPPORTED_OPS = frozenset(
    {"cs", "cd", "ov", "sl", "sr", "nxr", "nxl", "adj", "fts", "plfts", "phfts", "wfts"}
)
_EXPECTING_OP = 'unexpected "{c}" expecting "not" or operator (eq, gt, ...)'

#: Casts accepted in ``select=col::type``, mapped to the SQL type spelled by us (never by the client).
CASTS: dict[str, str] = {
    "text": "text",
    "varchar": "text",
    "int": "integer",
    "int4": "integer",
    "integer": "integer",
    "int8": "bigint",
    "bigint": "bigint",
    "numeric": "numeric",
    "float8": "double precision",
    "real": "real",
    "bool": "boolean",
    "boolean": "boolean",
    "json": "json",
    "jsonb": "jsonb",
    "uuid": "uuid",
    "date": "date",
    "timestamptz": "timestamptz",
    "timestamp": "timestamp",
}


@dataclass(frozen=True)
class SelectItem:
    """One output column; ``column == "*"`` means every column of the table."""

    column: str
    alias: str | None = None
    cast: str | None = None  # a value of CASTS


@dataclass(frozen=True)
class Filter:
    column: str
    op: Op
    value: str | tuple[str, ...] | IsValue
    negated: bool = False


@dataclass(frozen=True)
class Logic:
    """``or(…)`` / ``and(…)``, possibly negated, over filters and nested logic."""

    conjunction: str  # "and" | "or"
    children: tuple[Filter | Logic, ...]
    negated: bool = False


@dataclass(frozen=True)
class OrderTerm:
    column: str
    descending: bool = False
    nulls: str | None = None  # "first" | "last"


@dataclass(frozen=True)
class ReadQuery:
    select: tuple[SelectItem, ...]
    conditions: tuple[Filter | Logic, ...]
    order: tuple[OrderTerm, ...]
    limit: int | None
    offset: int


@dataclass(frozen=True)
class Window:
    """Rows to return: ``offset`` and ``limit`` (already capped at the server's max rows)."""

    offset: int
    limit: int


@dataclass(frozen=True)
class Prefer:
    count: str | None = None  # exact | planned | estimated
    return_: str | None = None  # representation | minimal | headers-only
    missing_default: bool = False
    tx_rollback: bool = False
    applied: tuple[str, ...] = field(default=())


class MediaType(enum.Enum):
    ARRAY = "application/json"
    OBJECT = "application/vnd.pgrst.object+json"


# --------------------------------------------------------------------------------------------- helpers


def _check_text(name: str, value: str) -> None:
    if "\x00" in value:
        raise parse_error(name, value.replace("\x00", "\\0"), "NUL bytes are not allowed")


_IDENT = re.compile(r"[A-Za-z0-9_$ ]+")


def _field_name(raw: str, what: str, whole: str) -> str:
    """A column name: PostgREST identifier characters, or a double-quoted name."""
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        name = raw[1:-1].replace('\\"', '"')
        if name:
            return name
    elif "->" in raw:
        raise not_implemented(f"JSON paths ({raw}) are not supported by meshlogs")
    elif _IDENT.fullmatch(raw) and raw.strip():
        return raw.strip()
    raise parse_error(what, whole, f"unexpected {raw!r}: expecting a column name")


# ---------------------------------------------------------------------------------------------- select


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside double quotes and parentheses."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_select(value: str) -> tuple[SelectItem, ...]:
    """Parse ``select=``; empty means ``*``.

    Raises:
        RestError: PGRST100 on bad syntax, PGRST127 for embedding, spreads, aggregates, JSON paths.
    """
    _check_text("select parameter", value)
    if value == "":
        return (SelectItem("*"),)
    items: list[SelectItem] = []
    for raw in _split_top(value):
        if raw == "":
            raise parse_error("select parameter", value, "unexpected empty field")
        if "(" in raw or raw.startswith("..."):
            raise not_implemented(
                f"embedded resources, spreads and aggregates ({raw}) are not supported by meshlogs"
            )
        body, has_cast, cast_name = raw.partition("::")
        cast: str | None = None
        if has_cast:
            cast = CASTS.get(cast_name.lower())
            if cast is None:
                raise not_implemented(f"casting to {cast_name!r} is not supported by meshlogs")
        alias: str | None = None
        if ":" in body and not body.startswith('"'):
            head, _, body = body.partition(":")
            alias = _field_name(head, "select parameter", value)
        if body == "*":
            if alias or cast:
                raise parse_error("select parameter", value, "'*' takes no alias or cast")
            items.append(SelectItem("*"))
        else:
            items.append(SelectItem(_field_name(body, "select parameter", value), alias, cast))
        if len(items) > MAX_SELECT_ITEMS:
            raise parse_error("select parameter", value, f"more than {MAX_SELECT_ITEMS} fields")
    return tuple(items)


# --------------------------------------------------------------------------------------------- filters


def _unquote_list(body: str, whole: str) -> tuple[str, ...]:
    """Elements of ``(a,"b,c",d)`` (the parentheses already stripped)."""
    values: list[str] = []
    i = 0
    n = len(body)
    while True:
        if i < n and body[i] == '"':
            j = i + 1
            buf: list[str] = []
            while j < n and body[j] != '"':
                if body[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(body[j])
                j += 1
            if j >= n:
                raise parse_error("filter", whole, "unterminated quoted value")
            values.append("".join(buf))
            i = j + 1
            if i < n and body[i] != ",":
                raise parse_error("filter", whole, f'unexpected "{body[i]}" expecting "," or ")"')
        else:
            j = body.find(",", i)
            end = n if j < 0 else j
            element = body[i:end]
            if ")" in element or "(" in element:
                raise parse_error("filter", whole, 'unexpected "(" or ")" inside a list')
            values.append(element)
            i = end
        if len(values) > MAX_IN_VALUES:
            raise parse_error("filter", whole, f"more than {MAX_IN_VALUES} values in a list")
        if i >= n:
            break
        i += 1  # the comma
        if i >= n:
            values.append("")
            break
    return tuple(values)


def _like_pattern(value: str) -> str:
    # PostgREST: '*' stands for '%' in like/ilike patterns, since '%' is awkward in URLs.
    return value.replace("*", "%")


def parse_filter(column: str, expr: str, *, whole: str | None = None) -> Filter:
    """Parse one filter expression (``[not.]op.value``) for ``column``.

    Raises:
        RestError: PGRST100 for unknown operators or bad values, PGRST127 for unsupported ones.
    """
    shown = whole if whole is not None else expr
    _check_text("filter", shown)
    negated = False
    rest = expr
    if rest.startswith("not."):
        negated = True
        rest = rest[4:]
    op_name, dot, value = rest.partition(".")
    if not dot:
        c = rest[:1] or " "
        raise parse_error("filter", shown, _EXPECTING_OP.format(c=c))
    quant = None
    if op_name.endswith(("(any)", "(all)")):
        op_name, quant = op_name[:-5], op_name[-4:-1]
    if op_name == "in":
        if quant:
            raise parse_error("filter", shown, _EXPECTING_OP.format(c="("))
        if len(value) < 2 or value[0] != "(" or value[-1] != ")":
            raise parse_error("filter", shown, 'expecting "(" and ")" around the list of values')
        return Filter(column, Op.IN, _unquote_list(value[1:-1], shown), negated)
    if op_name == "is":
        try:
            is_value = IsValue(value.lower())
        except ValueError:
            raise parse_error(
                "filter", shown, "expecting isVal: (null, not_null, true, false, unknown)"
            ) from None
        return Filter(column, Op.IS, is_value, negated)
    if op_name in _UNSUPPORTED_OPS or (quant and op_name in _SIMPLE_OPS):
        raise not_implemented(f"the operator {op_name}{f'({quant})' if quant else ''} is not supported")
    op = _SIMPLE_OPS.get(op_name)
    if op is None:
        c = op_name[:1] or "."
        raise parse_error("filter", shown, _EXPECTING_OP.format(c=c))
    if op in {Op.LIKE, Op.ILIKE}:
        value = _like_pattern(value)
    return Filter(column, op, value, negated)


# ----------------------------------------------------------------------------------------- logic trees


class _LogicParser:
    """Recursive descent over ``(a.eq.1,or(b.gt.2,not.c.is.null))``."""

    def __init__(self, text: str, whole: str) -> None:
        self.s = text
        self.i = 0
        self.whole = whole

    def fail(self, expecting: str) -> RestError:
        got = self.s[self.i] if self.i < len(self.s) else "end of input"
        return parse_error("logic tree", self.whole, f"unexpected {got!r} expecting {expecting}")

    def expect(self, c: str) -> None:
        if self.i >= len(self.s) or self.s[self.i] != c:
            raise self.fail(repr(c))
        self.i += 1

    def group(self, depth: int) -> tuple[Filter | Logic, ...]:
        if depth > MAX_LOGIC_DEPTH:
            raise parse_error("logic tree", self.whole, f"nested deeper than {MAX_LOGIC_DEPTH}")
        self.expect("(")
        items: list[Filter | Logic] = [self.item(depth)]
        while self.i < len(self.s) and self.s[self.i] == ",":
            self.i += 1
            items.append(self.item(depth))
            if len(items) > MAX_FILTERS:
                raise parse_error("logic tree", self.whole, f"more than {MAX_FILTERS} conditions")
        self.expect(")")
        return tuple(items)

    def item(self, depth: int) -> Filter | Logic:
        negated = False
        if self.s.startswith("not.", self.i):
            rest = self.s[self.i + 4 :]
            if rest.startswith(("and(", "or(")):
                negated = True
                self.i += 4
        for conj in ("and", "or"):
            if self.s.startswith(conj + "(", self.i):
                self.i += len(conj)
                return Logic(conj, self.group(depth + 1), negated)
        return self.filter()

    def filter(self) -> Filter:
        # field
        start = self.i
        if self.i < len(self.s) and self.s[self.i] == '"':
            j = self.s.find('"', self.i + 1)
            if j < 0:
                raise self.fail("a closing quote")
            self.i = j + 1
        else:
            while self.i < len(self.s) and self.s[self.i] not in ".,()":
                self.i += 1
        column = _field_name(self.s[start : self.i], "logic tree", self.whole)
        self.expect(".")
        # operator (with optional not.) and its value, up to the next top-level ',' or ')'
        negated = self.s.startswith("not.", self.i)
        if negated:
            self.i += 4
        dot = self.s.find(".", self.i)
        if dot < 0:
            raise self.fail("an operator")
        op_name = self.s[self.i : dot]
        self.i = dot + 1
        if op_name == "in":
            close = self._list_end()
            value = self.s[self.i : close + 1]
            self.i = close + 1
        else:
            value = self._scalar()
        expr = ("not." if negated else "") + op_name + "." + value
        return parse_filter(column, expr, whole=self.whole)

    def _list_end(self) -> int:
        if self.i >= len(self.s) or self.s[self.i] != "(":
            raise self.fail("'('")
        j = self.i + 1
        quoted = False
        while j < len(self.s):
            c = self.s[j]
            if quoted:
                if c == "\\":
                    j += 1
                elif c == '"':
                    quoted = False
            elif c == '"':
                quoted = True
            elif c == ")":
                return j
            j += 1
        raise self.fail("')'")

    def _scalar(self) -> str:
        """A value: ``"quoted, with \\ escapes"``, a ``{pg,array}`` literal, or text up to , or )."""
        s = self.s
        if self.i < len(s) and s[self.i] == '"':
            j = self.i + 1
            buf: list[str] = []
            while j < len(s) and s[j] != '"':
                if s[j] == "\\" and j + 1 < len(s):
                    j += 1
                buf.append(s[j])
                j += 1
            if j >= len(s):
                raise self.fail("a closing quote")
            self.i = j + 1
            return "".join(buf)
        start = self.i
        if self.i < len(s) and s[self.i] == "{":
            j = s.find("}", self.i)
            if j < 0:
                raise self.fail("'}'")
            self.i = j + 1
            return s[start : self.i]
        while self.i < len(s) and s[self.i] not in ",)":
            self.i += 1
        return s[start : self.i]


def parse_logic(key: str, value: str) -> Logic:
    """Parse ``or=(…)`` / ``and=(…)`` / ``not.or=(…)``.

    Raises:
        RestError: PGRST100 on bad syntax or limits exceeded.
    """
    _check_text("logic tree", value)
    negated = key.startswith("not.")
    conj = key[4:] if negated else key
    parser = _LogicParser(value, f"{conj}{value}")
    children = parser.group(1)
    if parser.i != len(value):
        raise parser.fail("end of input")
    return Logic(conj, children, negated)


# ----------------------------------------------------------------------------------------------- order


def parse_order(value: str) -> tuple[OrderTerm, ...]:
    """Parse ``order=a.desc.nullslast,b``.

    Raises:
        RestError: PGRST100 on bad syntax, PGRST127 for related-table ordering.
    """
    _check_text("order", value)
    terms: list[OrderTerm] = []
    for raw in _split_top(value):
        if "(" in raw:
            raise not_implemented(f"ordering by a related table ({raw}) is not supported")
        if raw.startswith('"'):
            end = raw.find('"', 1)
            if end < 0:
                raise parse_error("order", value, "unterminated quoted column")
            name_part, modifiers = raw[: end + 1], raw[end + 1 :]
            parts = [name_part] + (modifiers[1:].split(".") if modifiers.startswith(".") else [])
            if modifiers and not modifiers.startswith("."):
                raise parse_error("order", value, "expecting delimiter (.)")
        else:
            parts = raw.split(".")
        column = _field_name(parts[0], "order", value)
        descending = False
        nulls: str | None = None
        mods = parts[1:]
        if mods and mods[0] in {"asc", "desc"}:
            descending = mods.pop(0) == "desc"
        if mods and mods[0] in {"nullsfirst", "nullslast"}:
            nulls = "first" if mods.pop(0) == "nullsfirst" else "last"
        if mods:
            raise parse_error(
                "order", value, f'unexpected "{mods[0]}" expecting "asc", "desc", "nullsfirst" or "nullslast"'
            )
        terms.append(OrderTerm(column, descending, nulls))
        if len(terms) > MAX_ORDER_TERMS:
            raise parse_error("order", value, f"more than {MAX_ORDER_TERMS} terms")
    return tuple(terms)


# ------------------------------------------------------------------------------------ the whole request


def _parse_int(name: str, value: str) -> int:
    if not re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
        raise parse_error(f"{name} parameter", value, "expecting an integer")
    return int(value)


def parse_read_query(params: Iterable[tuple[str, str]], *, allow_filters: bool = True) -> ReadQuery:
    """Parse a GET/HEAD (or PATCH/DELETE) query string given as ``(key, value)`` pairs.

    Raises:
        RestError: PGRST100/PGRST103/PGRST127 as PostgREST would answer.
    """
    select: tuple[SelectItem, ...] = (SelectItem("*"),)
    conditions: list[Filter | Logic] = []
    order: tuple[OrderTerm, ...] = ()
    limit: int | None = None
    offset = 0
    for key, value in params:
        _check_text("query parameter", key)
        if key == "select":
            select = parse_select(value)
        elif key == "order":
            order = parse_order(value)
        elif key == "limit":
            limit = _parse_int("limit", value)
            if limit < 0:
                raise RestError(
                    416,
                    "PGRST103",
                    "Requested range not satisfiable",
                    "Limit should be greater than or equal to zero.",
                )
        elif key == "offset":
            offset = _parse_int("offset", value)
            if offset < 0:
                raise parse_error("offset parameter", value, "expecting a non-negative integer")
        elif key in {"or", "and", "not.or", "not.and"}:
            conditions.append(parse_logic(key, value))
        elif key in {"columns", "on_conflict"}:
            continue  # only meaningful for writes; the write handler reads them itself
        elif "." in key and not key.startswith('"'):
            last = key.rsplit(".", 1)[1]
            if last in {"order", "limit", "offset", "or", "and"}:
                raise not_implemented(f"{key}: parameters on embedded resources are not supported")
            raise not_implemented(f"{key}: filters on embedded resources are not supported")
        else:
            if not allow_filters:
                raise not_implemented(f"filter {key!r}: filters are not supported here")
            conditions.append(parse_filter(_field_name(key, "filter", key), value))
        if len(conditions) > MAX_FILTERS:
            raise parse_error("filter", key, f"more than {MAX_FILTERS} filters")
    return ReadQuery(select, tuple(conditions), order, limit, offset)


_RANGE = re.compile(r"^([0-9]{1,18})-([0-9]{0,18})$")


def resolve_window(limit: int | None, offset: int, range_header: str | None, max_rows: int) -> Window:
    """Combine ``limit``/``offset`` with a ``Range: a-b`` header and the server's max rows.

    As PostgREST: a malformed Range header is ignored; a range whose lower bound exceeds its upper
    bound is a 416 (PGRST103); the intersection of both ranges is returned, capped at ``max_rows``.
    """
    lower = offset
    upper: int | None = None if limit is None else offset + limit - 1
    if range_header:
        m = _RANGE.match(range_header.strip())
        if m:
            h_lower = int(m.group(1))
            h_upper = int(m.group(2)) if m.group(2) else None
            if h_upper is not None and h_upper < h_lower:
                raise RestError(
                    416,
                    "PGRST103",
                    "Requested range not satisfiable",
                    "The lower boundary must be lower than or equal to the upper boundary in the "
                    "Range header.",
                )
            if limit != 0:
                lower = max(lower, h_lower)
                if h_upper is not None:
                    upper = h_upper if upper is None else min(upper, h_upper)
                if upper is not None and upper < lower:
                    raise RestError(
                        416,
                        "PGRST103",
                        "Requested range not satisfiable",
                        "The lower boundary must be lower than or equal to the upper boundary in "
                        "the Range header.",
                    )
    count = max_rows if upper is None else min(upper - lower + 1, max_rows)
    return Window(lower, max(count, 0))


def parse_prefer(values: Sequence[str]) -> Prefer:
    """Parse every ``Prefer`` header (comma separated tokens); unknown tokens are ignored."""
    count = return_ = None
    missing = rollback = False
    applied: list[str] = []
    for header in values:
        for token in header.split(","):
            name, _, val = token.strip().partition("=")
            name, val = name.strip().lower(), val.strip().lower()
            if name == "count" and val in {"exact", "planned", "estimated"}:
                count = val
                applied.append(f"count={val}")
            elif name == "return" and val in {"representation", "minimal", "headers-only"}:
                return_ = val
                applied.append(f"return={val}")
            elif name == "missing" and val == "default":
                missing = True
                applied.append("missing=default")
            elif name == "tx" and val in {"commit", "rollback"}:
                rollback = val == "rollback"
                applied.append(f"tx={val}")
    return Prefer(count, return_, missing, rollback, tuple(dict.fromkeys(applied)))


def parse_accept(value: str | None) -> tuple[MediaType, bool]:
    """The response media type and whether nulls are stripped, from the ``Accept`` header.

    Raises:
        RestError: PGRST107 (406) when none of the listed types is one we produce.
    """
    if not value or not value.strip():
        return MediaType.ARRAY, False
    offered: list[str] = []
    for part in value.split(","):
        mime, *params = (p.strip() for p in part.split(";"))
        mime = mime.lower()
        offered.append(mime)
        strip = any(p.replace(" ", "").lower() == "nulls=stripped" for p in params)
        if mime in {"*/*", "application/*", "application/json", "application/vnd.pgrst.array+json"}:
            return MediaType.ARRAY, strip and mime == "application/vnd.pgrst.array+json"
        if mime == "application/vnd.pgrst.object+json":
            return MediaType.OBJECT, strip
    raise RestError(406, "PGRST107", "None of these media types are available: " + ", ".join(offered)[:200])
