"""Pure tests of the PostgREST query-string parser (no server, no database)."""

from __future__ import annotations

import pytest

from meshlogs.rest.errors import RestError
from meshlogs.rest.query import (
    MAX_IN_VALUES,
    Filter,
    IsValue,
    Logic,
    MediaType,
    Op,
    OrderTerm,
    SelectItem,
    Window,
    parse_accept,
    parse_filter,
    parse_logic,
    parse_order,
    parse_prefer,
    parse_read_query,
    parse_select,
    resolve_window,
)


def code_of(fn: object, *args: object) -> tuple[int, str]:
    with pytest.raises(RestError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.status, info.value.code


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("eq.1", Filter("c", Op.EQ, "1")),
        ("neq.a.b", Filter("c", Op.NEQ, "a.b")),
        ("gt.5", Filter("c", Op.GT, "5")),
        ("gte.5", Filter("c", Op.GTE, "5")),
        ("lt.5", Filter("c", Op.LT, "5")),
        ("lte.5", Filter("c", Op.LTE, "5")),
        ("like.*foo*", Filter("c", Op.LIKE, "%foo%")),
        ("ilike.%Foo%", Filter("c", Op.ILIKE, "%Foo%")),
        ("match.^a", Filter("c", Op.MATCH, "^a")),
        ("imatch.^a", Filter("c", Op.IMATCH, "^a")),
        ("is.null", Filter("c", Op.IS, IsValue.NULL)),
        ("is.NOT_NULL", Filter("c", Op.IS, IsValue.NOT_NULL)),
        ("is.true", Filter("c", Op.IS, IsValue.TRUE)),
        ("not.eq.1", Filter("c", Op.EQ, "1", negated=True)),
        ("not.is.null", Filter("c", Op.IS, IsValue.NULL, negated=True)),
        ("in.(1,2,3)", Filter("c", Op.IN, ("1", "2", "3"))),
        ('in.("a,b",c,"d\\"e")', Filter("c", Op.IN, ("a,b", "c", 'd"e'))),
        ("not.in.(x)", Filter("c", Op.IN, ("x",), negated=True)),
        ("eq.", Filter("c", Op.EQ, "")),
        ("isdistinct.3", Filter("c", Op.ISDISTINCT, "3")),
        ("eq.'; drop table run_logs; --", Filter("c", Op.EQ, "'; drop table run_logs; --")),
    ],
)
def test_filters(expr: str, expected: Filter) -> None:
    assert parse_filter("c", expr) == expected


@pytest.mark.parametrize(
    ("expr", "code"),
    [
        ("noop.1", "PGRST100"),
        ("eq", "PGRST100"),
        ("", "PGRST100"),
        ("not.", "PGRST100"),
        ("in.1,2", "PGRST100"),
        ("in.(1,2", "PGRST100"),
        ('in.("a,b)', "PGRST100"),
        ("is.maybe", "PGRST100"),
        ("cs.{1}", "PGRST127"),
        ("fts.word", "PGRST127"),
        ("eq(any).{1,2}", "PGRST127"),
        ("eq.\x00", "PGRST100"),
    ],
)
def test_bad_filters(expr: str, code: str) -> None:
    status, got = code_of(parse_filter, "c", expr)
    assert (status, got) == (400, code)


def test_in_list_is_bounded() -> None:
    values = ",".join(str(i) for i in range(MAX_IN_VALUES + 1))
    assert code_of(parse_filter, "c", f"in.({values})") == (400, "PGRST100")


def test_logic_trees() -> None:
    assert parse_logic("or", "(seq.eq.1,level.in.(warn,error),and(seq.gt.5,step.not.is.null))") == Logic(
        "or",
        (
            Filter("seq", Op.EQ, "1"),
            Filter("level", Op.IN, ("warn", "error")),
            Logic("and", (Filter("seq", Op.GT, "5"), Filter("step", Op.IS, IsValue.NULL, negated=True))),
        ),
    )
    assert parse_logic("not.and", '(message.eq."a,b)",seq.lt.3)') == Logic(
        "and", (Filter("message", Op.EQ, "a,b)"), Filter("seq", Op.LT, "3")), negated=True
    )
    assert parse_logic("or", "(not.or(b.eq.1,c.eq.2))").children[0] == Logic(
        "or", (Filter("b", Op.EQ, "1"), Filter("c", Op.EQ, "2")), negated=True
    )


@pytest.mark.parametrize(
    "value",
    ["()", "(a.eq.1", "a.eq.1", "(a.eq.1))", "(a)", "(a.xx.1)", "(or(a.eq.1)", "(a.eq.1,)", "(not.a.eq.1)"],
)
def test_bad_logic(value: str) -> None:
    assert code_of(parse_logic, "or", value)[1] == "PGRST100"


def test_logic_depth_is_bounded() -> None:
    deep = "(" + "or(" * 20 + "a.eq.1" + ")" * 20 + ")"
    assert code_of(parse_logic, "or", deep) == (400, "PGRST100")


def test_order() -> None:
    assert parse_order("seq.desc.nullslast,ts,level.asc") == (
        OrderTerm("seq", True, "last"),
        OrderTerm("ts"),
        OrderTerm("level", False),
    )
    assert parse_order("seq.nullsfirst") == (OrderTerm("seq", False, "first"),)
    assert parse_order('"odd name".desc') == (OrderTerm("odd name", True),)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("seq.up", "PGRST100"),
        ("seq.desc.sideways", "PGRST100"),
        ("seq;drop table x", "PGRST100"),
        ("", "PGRST100"),
        ("runs(started_at).desc", "PGRST127"),
        ("attrs->>k", "PGRST127"),
    ],
)
def test_bad_order(value: str, code: str) -> None:
    assert code_of(parse_order, value)[1] == code


def test_select() -> None:
    assert parse_select("*") == (SelectItem("*"),)
    assert parse_select("") == (SelectItem("*"),)
    assert parse_select("seq,msg:message,ts::text,n:seq::bigint") == (
        SelectItem("seq"),
        SelectItem("message", "msg"),
        SelectItem("ts", None, "text"),
        SelectItem("seq", "n", "bigint"),
    )


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("seq,", "PGRST100"),
        ("seq;select 1", "PGRST100"),
        ("pg_sleep(10)", "PGRST127"),
        ("workflow_runs(*)", "PGRST127"),
        ("...runs(status)", "PGRST127"),
        ("count()", "PGRST127"),
        ("seq::regclass", "PGRST127"),
        ("seq::text;drop", "PGRST127"),
        ("attrs->foo", "PGRST127"),
        ('x:"a', "PGRST100"),
    ],
)
def test_bad_select(value: str, code: str) -> None:
    assert code_of(parse_select, value)[1] == code


def test_read_query() -> None:
    q = parse_read_query(
        [
            ("select", "seq"),
            ("run_id", "eq.r"),
            ("seq", "gt.5"),
            ("order", "seq.asc"),
            ("limit", "10"),
            ("offset", "20"),
            ("or", "(level.eq.warn,level.eq.error)"),
        ]
    )
    assert q.select == (SelectItem("seq"),)
    assert q.conditions[0] == Filter("run_id", Op.EQ, "r")
    assert q.conditions[1] == Filter("seq", Op.GT, "5")
    assert isinstance(q.conditions[2], Logic)
    assert (q.limit, q.offset) == (10, 20)


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ([("limit", "abc")], 400, "PGRST100"),
        ([("limit", "-1")], 416, "PGRST103"),
        ([("offset", "-5")], 400, "PGRST100"),
        ([("limit", "1" * 40)], 400, "PGRST100"),
        ([("runs.limit", "5")], 400, "PGRST127"),
        ([("runs.status", "eq.x")], 400, "PGRST127"),
        ([("a", "eq.1")] * 101, 400, "PGRST100"),
        ([("bad\x00key", "eq.1")], 400, "PGRST100"),
    ],
)
def test_bad_read_query(params: list[tuple[str, str]], status: int, code: str) -> None:
    assert code_of(parse_read_query, params) == (status, code)


def test_window() -> None:
    assert resolve_window(None, 0, None, 1000) == Window(0, 1000)
    assert resolve_window(10, 5, None, 1000) == Window(5, 10)
    assert resolve_window(10**15, 0, None, 1000) == Window(0, 1000)
    assert resolve_window(None, 0, "10-19", 1000) == Window(10, 10)
    assert resolve_window(5, 0, "2-100", 1000) == Window(2, 3)
    assert resolve_window(None, 0, "5-", 1000) == Window(5, 1000)
    assert resolve_window(None, 0, "garbage; drop", 1000) == Window(0, 1000)
    assert resolve_window(0, 0, None, 1000) == Window(0, 0)
    assert code_of(resolve_window, None, 0, "9-3", 1000) == (416, "PGRST103")


def test_prefer() -> None:
    p = parse_prefer(["count=exact, return=representation", "tx=rollback,bogus=1"])
    assert (p.count, p.return_, p.tx_rollback) == ("exact", "representation", True)
    assert p.applied == ("count=exact", "return=representation", "tx=rollback")
    assert parse_prefer(["count=exact; drop table x"]).count is None


def test_accept() -> None:
    assert parse_accept(None) == (MediaType.ARRAY, False)
    assert parse_accept("application/json") == (MediaType.ARRAY, False)
    assert parse_accept("*/*") == (MediaType.ARRAY, False)
    assert parse_accept("application/vnd.pgrst.object+json") == (MediaType.OBJECT, False)
    assert parse_accept("application/vnd.pgrst.object+json;nulls=stripped") == (MediaType.OBJECT, True)
    assert parse_accept("application/vnd.pgrst.array+json;nulls=stripped") == (MediaType.ARRAY, True)
    assert parse_accept("text/html, application/json;q=0.9") == (MediaType.ARRAY, False)
    assert code_of(parse_accept, "text/csv") == (406, "PGRST107")
