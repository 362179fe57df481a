"""Compose the SQL for a parsed request with ``psycopg.sql``: identifiers quoted, values bound.

Inputs are already validated: table and columns come from the :mod:`catalog <meshlogs.rest.catalog>`
(so only names that exist are ever quoted into a statement), casts come from the fixed
:data:`~meshlogs.rest.query.CASTS` table, and every value a client sent is a ``%s`` parameter, typed
``unknown`` by psycopg so that Postgres casts it to the column's type exactly as PostgREST's literals
are (a bad value is then 22P02, a 400). Each builder returns ``(statement, params)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql
from psycopg.types.json import Json, Jsonb

from meshlogs.rest.catalog import SCHEMA, Function, Table
from meshlogs.rest.query import Filter, IsValue, Logic, Op, OrderTerm, SelectItem

__all__ = [
    "Statement",
    "count_sql",
    "delete_sql",
    "explain_count_sql",
    "insert_sql",
    "page_count_sql",
    "read_sql",
    "rpc_sql",
    "update_sql",
]

Statement = tuple[sql.Composed, list[Any]]

_COMPARISONS = {
    Op.EQ: "=",
    Op.NEQ: "<>",
    Op.GT: ">",
    Op.GTE: ">=",
    Op.LT: "<",
    Op.LTE: "<=",
    Op.ISDISTINCT: "is distinct from",
}
_PATTERNS = {Op.LIKE: "like", Op.ILIKE: "ilike", Op.MATCH: "~", Op.IMATCH: "~*"}
_IS = {
    IsValue.NULL: "is null",
    IsValue.NOT_NULL: "is not null",
    IsValue.TRUE: "is true",
    IsValue.FALSE: "is false",
    IsValue.UNKNOWN: "is unknown",
}


def _table_ident(table: Table) -> sql.Identifier:
    return sql.Identifier(SCHEMA, table.name)


def select_list(table: Table, items: Sequence[SelectItem]) -> sql.Composed:
    """The projection: ``*`` expands to the table's columns in order; casts keep the column's name."""
    parts: list[sql.Composable] = []
    for item in items:
        if item.column == "*":
            parts.extend(sql.Identifier(c.name) for c in table.columns)
            continue
        col = table.column(item.column)
        expr: sql.Composable = sql.Identifier(col.name)
        if item.cast:
            expr = sql.SQL("{}::{}").format(expr, sql.SQL(item.cast))
        alias = item.alias or (col.name if item.cast else None)
        if alias:
            expr = sql.SQL("{} as {}").format(expr, sql.Identifier(alias))
        parts.append(expr)
    return sql.SQL(", ").join(parts)


def _condition(table: Table, cond: Filter | Logic, params: list[Any]) -> sql.Composable:
    if isinstance(cond, Logic):
        inner = sql.SQL(f" {cond.conjunction} ").join(
            [sql.SQL("({})").format(_condition(table, c, params)) for c in cond.children]
        )
        expr: sql.Composable = sql.SQL("({})").format(inner)
        return sql.SQL("not {}").format(expr) if cond.negated else expr
    col = table.column(cond.column)
    ident = sql.Identifier(col.name)
    if cond.op is Op.IS:
        assert isinstance(cond.value, IsValue)
        expr = sql.SQL("{} " + _IS[cond.value]).format(ident)
    elif cond.op is Op.IN:
        assert isinstance(cond.value, tuple)
        params.extend(cond.value)
        placeholders = sql.SQL(", ").join(sql.Placeholder() for _ in cond.value)
        expr = sql.SQL("{} in ({})").format(ident, placeholders)
    elif cond.op in _PATTERNS:
        assert isinstance(cond.value, str)
        params.append(cond.value)
        target: sql.Composable = ident if col.is_text else sql.SQL("{}::text").format(ident)
        expr = sql.SQL("{} " + _PATTERNS[cond.op] + " {}").format(target, sql.Placeholder())
    else:
        assert isinstance(cond.value, str)
        params.append(cond.value)
        expr = sql.SQL("{} " + _COMPARISONS[cond.op] + " {}").format(ident, sql.Placeholder())
    return sql.SQL("not ({})").format(expr) if cond.negated else expr


def where_clause(table: Table, conditions: Sequence[Filter | Logic], params: list[Any]) -> sql.Composable:
    if not conditions:
        return sql.SQL("")
    joined = sql.SQL(" and ").join([_condition(table, c, params) for c in conditions])
    return sql.SQL(" where {}").format(joined)


def order_clause(table: Table, order: Sequence[OrderTerm]) -> sql.Composable:
    if not order:
        return sql.SQL("")
    terms = []
    for term in order:
        col = table.column(term.column)
        text = " desc" if term.descending else " asc"
        if term.nulls:
            text += f" nulls {term.nulls}"
        terms.append(sql.SQL("{}" + text).format(sql.Identifier(col.name)))
    return sql.SQL(" order by {}").format(sql.SQL(", ").join(terms))


def read_sql(
    table: Table,
    items: Sequence[SelectItem],
    conditions: Sequence[Filter | Logic],
    order: Sequence[OrderTerm],
    limit: int,
    offset: int,
    *,
    strip_nulls: bool = False,
) -> Statement:
    """One JSON text per row, in order, with the page's row count:
    ``select row_to_json(_r)::text, count(*) over () from (…) _r`` (the window makes Postgres hold
    the page, at most max-rows rows, so the count arrives with the first row)."""
    params: list[Any] = []
    inner = sql.SQL("select {} from {}{}{} limit {} offset {}").format(
        select_list(table, items),
        _table_ident(table),
        where_clause(table, conditions, params),
        order_clause(table, order),
        sql.Placeholder(),
        sql.Placeholder(),
    )
    params.extend([limit, offset])
    row = "json_strip_nulls(row_to_json(_r))" if strip_nulls else "row_to_json(_r)"
    return sql.SQL("select " + row + "::text, count(*) over () from ({}) _r").format(inner), params


def count_sql(table: Table, conditions: Sequence[Filter | Logic]) -> Statement:
    """Rows matching the filters (``Prefer: count=exact``), RLS applied."""
    params: list[Any] = []
    query = sql.SQL("select count(*) from {}{}").format(
        _table_ident(table), where_clause(table, conditions, params)
    )
    return query, params


def explain_count_sql(table: Table, conditions: Sequence[Filter | Logic]) -> Statement:
    """The planner's row estimate (``Prefer: count=planned|estimated``)."""
    params: list[Any] = []
    query = sql.SQL("explain (format json) select 1 from {}{}").format(
        _table_ident(table), where_clause(table, conditions, params)
    )
    return query, params


def page_count_sql(
    table: Table,
    conditions: Sequence[Filter | Logic],
    order: Sequence[OrderTerm],
    limit: int,
    offset: int,
) -> Statement:
    """How many rows one page holds (Content-Range of a HEAD request)."""
    params: list[Any] = []
    inner = sql.SQL("select 1 from {}{}{} limit {} offset {}").format(
        _table_ident(table),
        where_clause(table, conditions, params),
        order_clause(table, order),
        sql.Placeholder(),
        sql.Placeholder(),
    )
    params.extend([limit, offset])
    return sql.SQL("select count(*) from ({}) _p").format(inner), params


def _returning(table: Table, items: Sequence[SelectItem] | None) -> sql.Composable:
    if items is None:
        return sql.SQL("")
    return sql.SQL(" returning {}").format(select_list(table, items))


def _wrap_rows(mutation: sql.Composable, returning: bool, strip_nulls: bool) -> sql.Composed:
    """With a representation: one JSON text per affected row. Without: the bare statement (the caller
    reads ``rowcount``), so that ``return=minimal`` never needs SELECT rights on the new rows."""
    if not returning:
        return sql.Composed([mutation])
    row = "json_strip_nulls(row_to_json(_m))" if strip_nulls else "row_to_json(_m)"
    return sql.SQL("with _m as ({}) select " + row + "::text from _m").format(mutation)


def insert_sql(
    table: Table,
    columns: Sequence[str],
    rows_json: str,
    items: Sequence[SelectItem] | None,
    *,
    strip_nulls: bool = False,
) -> Statement:
    """``insert … select from json_populate_recordset(null::t, $1)``."""
    cols = [sql.Identifier(table.column(c).name) for c in columns]
    col_list = sql.SQL(", ").join(cols)
    if cols:
        mutation = sql.SQL(
            "insert into {t} ({c}) select {c} from json_populate_recordset(null::{t}, {p}::json){r}"
        ).format(t=_table_ident(table), c=col_list, p=sql.Placeholder(), r=_returning(table, items))
        params: list[Any] = [rows_json]
    else:
        mutation = sql.SQL("insert into {t} default values{r}").format(
            t=_table_ident(table), r=_returning(table, items)
        )
        params = []
    return _wrap_rows(mutation, items is not None, strip_nulls), params


def update_sql(
    table: Table,
    columns: Sequence[str],
    row_json: str,
    conditions: Sequence[Filter | Logic],
    items: Sequence[SelectItem] | None,
    *,
    strip_nulls: bool = False,
) -> Statement:
    cols = [sql.Identifier(table.column(c).name) for c in columns]
    col_list = sql.SQL(", ").join(cols)
    params: list[Any] = [row_json]
    mutation = sql.SQL(
        "update {t} set ({c}) = (select {c} from json_populate_record(null::{t}, {p}::json)){w}{r}"
    ).format(
        t=_table_ident(table),
        c=col_list,
        p=sql.Placeholder(),
        w=where_clause(table, conditions, params),
        r=_returning(table, items),
    )
    return _wrap_rows(mutation, items is not None, strip_nulls), params


def delete_sql(
    table: Table,
    conditions: Sequence[Filter | Logic],
    items: Sequence[SelectItem] | None,
    *,
    strip_nulls: bool = False,
) -> Statement:
    params: list[Any] = []
    mutation = sql.SQL("delete from {t}{w}{r}").format(
        t=_table_ident(table),
        w=where_clause(table, conditions, params),
        r=_returning(table, items),
    )
    return _wrap_rows(mutation, items is not None, strip_nulls), params


def _arg_value(value: Any, json_kind: str | None) -> Any:
    """A JSON value as a bound parameter for an argument (typed json/jsonb, else ``unknown`` text)."""
    if json_kind == "jsonb":
        return Jsonb(value)
    if json_kind == "json":
        return Json(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        # Postgres array literal for array arguments, as PostgREST accepts them from JSON arrays.
        return (
            "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value) + "}"
        )
    return Json(value)


def rpc_sql(function: Function, args: dict[str, Any]) -> Statement:
    """``select <json of result> from public.fn(a => $1, …) _f`` with named arguments."""
    by_name = {a.name: a for a in function.args}
    parts = []
    params: list[Any] = []
    for name, value in args.items():
        arg = by_name[name]
        parts.append(sql.SQL("{} => {}").format(sql.Identifier(arg.name), sql.Placeholder()))
        params.append(_arg_value(value, arg.json_kind))
    call = sql.SQL("{}({})").format(sql.Identifier(SCHEMA, function.name), sql.SQL(", ").join(parts))
    if function.returns_void:
        return sql.SQL("select {}").format(call), params
    out = "coalesce(json_agg(_f), '[]'::json)::text" if function.returns_set else "to_json(_f)::text"
    return sql.SQL("select " + out + " from {} _f").format(call), params
