"""Filter parsing against column types, SQL-like matching, and the fan-out index keys."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlogs.errors import InvalidFilterError
from meshlogs.protocol.filters import MAX_IN_VALUES, Filter, FilterOp, index_value, parse_filter
from meshlogs.protocol.pgtypes import pg_type

COLUMNS = {
    "id": "int8",
    "run_id": "uuid",
    "seq": "int8",
    "level": "text",
    "ts": "timestamptz",
    "attrs": "jsonb",
    "small": "int2",
    "n": "int4",
    "amount": "numeric",
    "ratio": "float8",
    "ok": "bool",
    "day": "date",
    "local": "timestamp",
    "code": "bpchar",
    "raw": "json",
    "tags": "_text",
    "name": "character varying",
    "big": "bigint",
}
RUN = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
UTC = dt.UTC


def parse(text: str) -> Filter:
    parsed = parse_filter(text, COLUMNS)
    assert parsed is not None
    return parsed


# -------------------------------------------------------------------------------------- parse


def test_eq_on_int8() -> None:
    f = parse("id=eq.42")
    assert (f.column, f.op, f.values, f.text) == ("id", FilterOp.EQ, (42,), "id=eq.42")
    assert f.eq_key == ("id", 42)
    assert f.index_values == (42,)


def test_value_may_contain_dots_and_equals() -> None:
    assert parse("level=eq.a.b=c").values == ("a.b=c",)
    assert parse("ts=gt.2026-09-01T10:00:00.5Z").values == (
        (0, dt.datetime(2026, 9, 1, 10, 0, 0, 500000, tzinfo=UTC)),
    )


def test_blank_filter_is_no_filter() -> None:
    assert parse_filter("", COLUMNS) is None
    assert parse_filter("   ", COLUMNS) is None


def test_uuid_is_case_insensitive_and_canonical() -> None:
    upper = parse(f"run_id=eq.{RUN.upper()}")
    braces = parse("run_id=eq.{a0eebc999c0b4ef8bb6d6bb9bd380a11}")
    assert upper.values == braces.values == (RUN,)
    assert upper.matches({"run_id": RUN})
    assert upper.matches({"run_id": uuid.UUID(RUN)})
    assert not upper.matches({"run_id": "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("n=eq.-2147483648", -2147483648),
        ("small=eq.32767", 32767),
        ("id=eq. 7 ", 7),
        ("id=eq.+7", 7),
        ("id=eq.1_000", 1000),
        ("id=eq.0x1F", 31),
        ("big=eq.9223372036854775807", 9223372036854775807),
        ("ok=eq.t", True),
        ("ok=eq.FALSE", False),
        ("ok=eq.on", True),
        ("amount=eq.1.50", (0, Decimal("1.50"))),
        ("amount=eq.NaN", (1, Decimal(0))),
        ("ratio=eq.-Infinity", (0, float("-inf"))),
        ("ratio=eq.1e3", (0, 1000.0)),
        ("day=eq.2026-09-01", (0, dt.date(2026, 9, 1))),
        ("day=lt.infinity", (1, dt.date.min)),
        ("local=eq.2026-09-01 10:00:00+05", (0, dt.datetime(2026, 9, 1, 10))),
        ("ts=eq.2026-09-01 12:00:00+02", (0, dt.datetime(2026, 9, 1, 10, tzinfo=UTC))),
        ("ts=eq.2026-09-01 10:00", (0, dt.datetime(2026, 9, 1, 10, tzinfo=UTC))),
        ("ts=gt.-infinity", (-1, dt.datetime.min.replace(tzinfo=UTC))),
        ("code=eq.ab  ", "ab"),
        ('level=eq."quoted, with \\" escape"', 'quoted, with " escape'),
        ('level=eq."half', '"half'),
        ("level=eq.", ""),
        ("name=eq.x", "x"),
    ],
)
def test_values_are_cast_at_parse_time(text: str, value: object) -> None:
    assert parse(text).values == (value,)


def test_in_list_quoting_trimming_nulls_and_duplicates() -> None:
    f = parse('level=in.(a, b ,"c,d", "e\\"f",NULL,a)')
    assert f.op is FilterOp.IN
    assert f.values == ("a", "b", "c,d", 'e"f')
    assert f.index_values == f.values
    assert f.eq_key is None
    assert parse("id=in.()").values == ()
    assert parse("id=in.(1,2,3)").values == (1, 2, 3)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("id", "expected `column=operator.value`"),
        ("undefined", "expected `column=operator.value`"),
        ("id=eq", "expected `column=operator.value`"),
        ("=eq.1", "expected `column=operator.value`"),
        ("id=foo.1", "unsupported operator 'foo'"),
        ("level=like.a%", "unsupported operator 'like' on this server"),
        ("id=not.eq.1", "unsupported operator 'not' on this server"),
        ("nope=eq.1", "column 'nope' does not exist"),
        ("raw=eq.{}", "type json is not supported"),
        ("tags=eq.{a}", "type _text is not supported"),
        ("attrs=gt.{}", "operator 'gt' is not supported on type jsonb"),
        ("id=eq.abc", "invalid value 'abc' for column 'id' of type int8"),
        ("id=eq.1.5", "type int8"),
        ("id=eq.", "type int8"),
        ("id=eq.1__0", "type int8"),
        ("small=eq.40000", "out of range for type int2"),
        ("id=eq.99999999999999999999", "out of range for type int8"),
        ("id=eq.٣", "type int8"),
        ("run_id=eq.42", "type uuid"),
        ("run_id=eq.a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "type uuid"),
        ("run_id=eq.urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "type uuid"),
        ("run_id=eq.a0eebc999c0b4ef8bb6d6bb9bd380a1_", "type uuid"),
        ("ts=gt.yesterday", "type timestamptz"),
        ("ts=gt.2026-13-01", "type timestamptz"),
        ("ts=gt.now", "type timestamptz"),
        ("day=eq.12/01/2026", "type date"),
        ("ok=eq.maybe", "type bool"),
        ("amount=eq.1,5", "type numeric"),
        ("ratio=eq.1e999", "out of range for type float8"),
        ("attrs=eq.{bad", "type jsonb"),
        ("level=eq.a\x00b", "type text"),
        ("id=in.1,2", "must be wrapped by parentheses"),
        ("id=in.(1,,2)", "empty value in `in` list"),
        ('level=in.("a)', "unterminated quoted value"),
        ('level=in.("a"b)', "expected ','"),
        ("level=in.(a{b)", "unexpected '{'"),
        ("id=in.(1,x)", "invalid value 'x'"),
        ("id=in.(" + ",".join(["1"] * (MAX_IN_VALUES + 1)) + ")", "at most 100 values"),
        ("id=eq." + "1" * 10_001, "longer than 10000 characters"),
    ],
)
def test_parse_errors_are_clear(text: str, fragment: str) -> None:
    with pytest.raises(InvalidFilterError) as info:
        parse_filter(text, COLUMNS)
    assert fragment in str(info.value)
    assert info.value.code == "InvalidFilter"
    assert str(info.value).startswith("Error parsing `filter` params")


# ------------------------------------------------------------------------------------ matching


@pytest.mark.parametrize(
    ("text", "record", "expected"),
    [
        ("seq=eq.3", {"seq": 3}, True),
        ("seq=eq.3", {"seq": 4}, False),
        ("seq=neq.3", {"seq": 4}, True),
        ("seq=neq.3", {"seq": 3}, False),
        ("seq=lt.3", {"seq": 2}, True),
        ("seq=lt.3", {"seq": 3}, False),
        ("seq=lte.3", {"seq": 3}, True),
        ("seq=gt.3", {"seq": 4}, True),
        ("seq=gt.3", {"seq": 3}, False),
        ("seq=gte.3", {"seq": 3}, True),
        ("seq=gte.3", {"seq": 2}, False),
        ("seq=in.(1,3)", {"seq": 3}, True),
        ("seq=in.(1,3)", {"seq": 2}, False),
        ("seq=in.(1,NULL)", {"seq": None}, False),
        # NULL and missing columns never match, not even neq (SQL three-valued logic).
        ("seq=neq.3", {"seq": None}, False),
        ("seq=neq.3", {}, False),
        ("seq=lt.3", {"id": 1}, False),
        # bool is not an int8 value
        ("seq=eq.1", {"seq": True}, False),
        ("seq=eq.3", {"seq": "3"}, True),
        ("seq=eq.3", {"seq": "x"}, False),
        ("level=eq.error", {"level": "error"}, True),
        ("level=eq.error", {"level": "Error"}, False),
        ("level=gt.B", {"level": "a"}, True),  # code point order (C collation)
        ("level=in.(warn,error)", {"level": "warn"}, True),
        ("code=eq.ab", {"code": "ab   "}, True),
        ("ok=eq.true", {"ok": True}, True),
        ("ok=lt.true", {"ok": False}, True),
        ("ok=eq.true", {"ok": 1}, False),
        ("amount=eq.1.5", {"amount": Decimal("1.50")}, True),
        ("amount=eq.2", {"amount": 2}, True),
        ("amount=eq.0.1", {"amount": 0.1}, True),
        ("amount=gt.1e10", {"amount": Decimal("NaN")}, True),  # NaN sorts above every number
        ("amount=eq.NaN", {"amount": Decimal("NaN")}, True),  # and equals itself
        ("amount=lt.Infinity", {"amount": Decimal("NaN")}, False),
        ("ratio=eq.NaN", {"ratio": float("nan")}, True),
        ("ratio=gt.Infinity", {"ratio": float("nan")}, True),
        ("ratio=lt.0", {"ratio": -0.5}, True),
        ("ratio=eq.0", {"ratio": -0.0}, True),
        ("ts=gt.2026-09-01T10:00:00Z", {"ts": "2026-09-01 10:00:00.000001+00"}, True),
        ("ts=eq.2026-09-01T10:00:00Z", {"ts": "2026-09-01 12:00:00+02"}, True),
        ("ts=eq.2026-09-01T10:00:00Z", {"ts": "2026-09-01T10:00:00+00:00"}, True),
        ("ts=eq.2026-09-01T10:00:00Z", {"ts": dt.datetime(2026, 9, 1, 10, tzinfo=UTC)}, True),
        ("ts=eq.2026-09-01T10:00:00Z", {"ts": dt.datetime(2026, 9, 1, 10)}, True),
        ("ts=lt.2026-09-01T10:00:00Z", {"ts": "-infinity"}, True),
        ("ts=gt.2026-09-01T10:00:00Z", {"ts": "infinity"}, True),
        ("ts=lt.infinity", {"ts": "infinity"}, False),
        ("ts=gt.2026-09-01", {"ts": "not a time"}, False),
        ("ts=gt.2026-09-01", {"ts": "0044-03-15 10:00:00+00 BC"}, False),
        ("local=lt.2026-09-01T10:00:01", {"local": "2026-09-01 10:00:00"}, True),
        ("day=gte.2026-09-01", {"day": dt.date(2026, 9, 1)}, True),
        ("day=gte.2026-09-01", {"day": "2026-08-31"}, False),
        ("day=eq.2026-09-01", {"day": dt.datetime(2026, 9, 1, 23, 59)}, True),
        ('attrs=eq.{"a":1,"b":[true,null]}', {"attrs": {"b": [True, None], "a": 1.0}}, True),
        ('attrs=eq.{"a":1}', {"attrs": {"a": True}}, False),
        ('attrs=neq.{"a":1}', {"attrs": {"a": 2}}, True),
        # PostgREST quotes are stripped first, so a JSON string needs escaped inner quotes.
        ('attrs=eq."\\"x\\""', {"attrs": "x"}, True),
        ("attrs=in.(1,2)", {"attrs": 2}, True),
        ("attrs=eq.1", {"attrs": {1, 2}}, False),  # not a JSON value: unreadable, no match
        (f"run_id=in.({RUN},b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)", {"run_id": RUN}, True),
        (f"run_id=lt.{RUN}", {"run_id": "00000000-0000-0000-0000-000000000000"}, True),
        (f"run_id=eq.{RUN}", {"run_id": 5}, False),
    ],
)
def test_matches(text: str, record: dict[str, Any], expected: bool) -> None:
    assert parse(text).matches(record) is expected


def test_column_types_accept_sql_aliases() -> None:
    assert parse_filter("x=eq.1", {"x": "BIGINT"}) == parse_filter("x=eq.1", {"x": "int8"})
    assert pg_type("double precision").name == "float8"
    assert pg_type("timestamp with time zone").name == "timestamptz"
    with pytest.raises(KeyError):
        pg_type("interval")


# --------------------------------------------------------------------------------------- index


def test_index_value_matches_filter_values() -> None:
    f = parse(f"run_id=eq.{RUN.upper()}")
    assert index_value("uuid", RUN) == f.values[0]
    assert index_value("uuid", uuid.UUID(RUN)) == f.values[0]
    assert index_value("int8", None) is None
    assert index_value("interval", "1 day") is None
    assert (
        index_value(pg_type("timestamptz"), "2026-09-01 12:00:00+02")
        == parse("ts=eq.2026-09-01T10:00:00Z").values[0]
    )
    # jsonb values are hashable, key order and 1 vs 1.0 do not matter
    assert index_value("jsonb", {"a": 1, "b": 2.0}) == index_value("jsonb", {"b": 2, "a": 1.0})
    index = {index_value("jsonb", {"a": [1]}): "sub"}
    assert index[parse('attrs=eq.{"a":[1.0]}').values[0]] == "sub"


@given(st.integers(-(2**63), 2**63 - 1))
def test_int8_eq_filter_round_trip(value: int) -> None:
    f = parse(f"id=eq.{value}")
    assert f.values == (index_value("int8", value),)
    assert f.matches({"id": value})
    assert not f.matches({"id": value + 1})


@given(st.uuids())
def test_uuid_eq_filter_round_trip(value: uuid.UUID) -> None:
    for text in (str(value), str(value).upper(), value.hex):
        f = parse(f"run_id=eq.{text}")
        assert f.values == (index_value("uuid", str(value)),)
        assert f.matches({"run_id": str(value)})


@given(st.datetimes(timezones=st.timezones()), st.datetimes(timezones=st.timezones()))
def test_timestamptz_ordering_matches_python(a: dt.datetime, b: dt.datetime) -> None:
    try:
        a.astimezone(UTC), b.astimezone(UTC)
    except OverflowError:
        return  # outside the range Python can represent in UTC (year 1 with a positive offset)
    try:
        f = parse(f"ts=lt.{b.isoformat()}")
    except InvalidFilterError:
        # isoformat() of tz offsets with seconds/microseconds or years < 1000 are outside our grammar
        return
    assert f.matches({"ts": a.isoformat()}) is (a < b)


@given(st.text(max_size=30), st.text(max_size=30))
def test_text_eq_and_ordering(a: str, b: str) -> None:
    if "\x00" in b:
        return
    assert parse(f'level=eq."{b.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"').matches(
        {"level": a}
    ) is (a == b)
    assert parse(f"level=lt.{b}").matches({"level": a}) is (a < b)


# ------------------------------------------------------------------------------------ fuzzing

filter_texts = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda col, op, val: f"{col}={op}.{val}",
        st.sampled_from([*COLUMNS, "x", ""]),
        st.sampled_from([op.value for op in FilterOp] + ["like", "not", "", "EQ"]),
        st.text(max_size=40)
        | st.builds(lambda items: "(" + ",".join(items) + ")", st.lists(st.text(max_size=8), max_size=5)),
    ),
)
record_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(max_size=30),
    st.datetimes(),
    st.dates(),
    st.uuids(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.binary(max_size=5),
)


@given(filter_texts, st.dictionaries(st.sampled_from(list(COLUMNS)), record_values))
def test_fuzz_parse_filter_and_match(text: str, record: dict[str, Any]) -> None:
    try:
        parsed = parse_filter(text, COLUMNS)
    except InvalidFilterError:
        return
    if parsed is None:
        assert not text.strip()
        return
    assert isinstance(parsed.matches(record), bool)
    for value in parsed.index_values or ():
        hash(value)
