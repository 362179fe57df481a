"""TxBuilder: real pgoutput streams folded into transactions; conversions, old records, TOAST, chunks."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlogs.capture.lsn import Lsn
from meshlogs.capture.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    BinaryValue,
    Column,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Relation,
    Truncate,
    Type,
    Update,
)
from meshlogs.capture.txbuilder import Change, ChangeKind, Transaction, TxBuilder, convert_numeric
from meshlogs.errors import DecodeError
from tests.capture.conftest import Slot, open_slot
from tests.factories import append, make_project, make_run, make_user, make_workflow


def make_project_and_workflow(db: psycopg.Connection[Any]) -> tuple[str, str]:
    owner = make_user(db, f"{uuid.uuid4().hex[:8]}@example.com")
    project = make_project(db, owner)
    return project, make_workflow(db, project)


def only(txs: list[Transaction]) -> Transaction:
    assert len(txs) == 1, txs
    return txs[0]


def test_multi_statement_transaction_is_one_transaction_in_statement_order(
    db: psycopg.Connection[Any], slot: Slot
) -> None:
    project, workflow = make_project_and_workflow(db)
    slot.take()
    before = datetime.now(UTC)
    with db.transaction():
        run = make_run(db, project, workflow)
        append(db, run, [{"level": "info", "message": f"line {i}", "attrs": {"i": i}} for i in range(1, 6)])
        db.execute("update workflow_runs set status = 'succeeded' where id = %s", (run,))
    (xid,) = db.execute("select xmin::text::int8 from workflow_runs where id = %s", (run,)).fetchone() or (0,)
    tx = only(slot.transactions())

    assert tx.final and tx.part == 0 and tx.xid == xid
    assert tx.commit_lsn < tx.end_lsn
    assert before - timedelta(seconds=1) <= tx.commit_time <= datetime.now(UTC)
    assert tx.commit_time.tzinfo is UTC
    assert [(c.table, c.kind) for c in tx.changes] == (
        [("workflow_runs", ChangeKind.INSERT)]
        + [("run_logs", ChangeKind.INSERT)] * 5
        + [("workflow_runs", ChangeKind.UPDATE)]
    )
    lines = [c.record for c in tx.changes[1:6]]
    assert [r["seq"] for r in lines if r] == [1, 2, 3, 4, 5]
    first = tx.changes[1]
    assert first.schema == "public" and first.old_record is None and first.record is not None
    assert first.record["run_id"] == run
    assert first.record["attrs"] == {"i": 1}
    assert first.record["step"] is None
    assert isinstance(first.record["id"], int)
    assert isinstance(first.record["ts"], str) and first.record["ts"].endswith("+00")
    assert first.columns == (
        ("id", "int8"),
        ("run_id", "uuid"),
        ("seq", "int8"),
        ("ts", "timestamptz"),
        ("level", "text"),
        ("step", "text"),
        ("message", "text"),
        ("attrs", "jsonb"),
    )
    assert tx.changes[1].columns is tx.changes[2].columns  # shared per relation
    update = tx.changes[-1]
    assert update.record is not None and update.old_record is not None
    assert (update.old_record["status"], update.record["status"]) == ("running", "succeeded")
    assert update.old_record["finished_at"] is None and update.record["finished_at"] is not None


TYPED_TABLE = """
create type mood as enum ('ok', 'sad');
create domain posint as int4 check (value > 0);
create table typed (
  id int8 primary key, i2 int2, i4 int4, o oid, b bool, bf bool, f4 float4, f8 float8, fnan float8,
  finf float8, n_int numeric, n_dec numeric(10, 2), n_tenth numeric, n_long numeric, n_huge numeric,
  n_nan numeric, n_inf numeric, js json, jb jsonb, jb_arr jsonb, jb_null jsonb, t text, u uuid,
  ts timestamptz, tsn timestamp, d date, arr text[], m mood, dom posint, nul text, by bytea, iv interval
);
create publication typed_pub for table typed;
"""

TYPED_ROW = """
insert into typed values (
  9007199254740993, -32768, 2147483647, 4000000000, true, false, 1.5, 0.1, 'NaN', '-Infinity',
  123456789012345678, 12.30, 0.1, 3.14159265358979323846, 123456789012345678901234567890,
  'NaN', 'Infinity', '{"a": [1, 2.5, null]}', '{"b": {"c": true}}', '[1, "x"]', 'null', 'tab\there ü',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29 12:34:56.789+00', '2024-02-29 12:34:56',
  '2024-02-29', array['a', 'b c'], 'sad', 5, null, '\\xdeadbeef', '1 day 2 hours'
)
"""


def test_values_are_converted_by_type(db: psycopg.Connection[Any]) -> None:
    db.execute(TYPED_TABLE)
    slot = open_slot(db, "typed_pub")
    db.execute("set timezone = 'UTC'")
    db.execute(TYPED_ROW)
    tx = only(slot.transactions())
    (change,) = tx.changes
    assert change.kind is ChangeKind.INSERT and change.record is not None
    r = change.record
    assert r["id"] == 9007199254740993 and isinstance(r["id"], int)
    assert (r["i2"], r["i4"], r["o"]) == (-32768, 2147483647, 4000000000)
    assert (r["b"], r["bf"]) == (True, False)
    assert (r["f4"], r["f8"]) == (1.5, 0.1)
    assert math.isnan(r["fnan"]) and r["finf"] == -math.inf
    assert r["n_int"] == 123456789012345678 and isinstance(r["n_int"], int)
    assert r["n_dec"] == 12.3 and isinstance(r["n_dec"], float)
    assert r["n_tenth"] == 0.1
    assert r["n_long"] == "3.14159265358979323846"
    assert r["n_huge"] == "123456789012345678901234567890"
    assert (r["n_nan"], r["n_inf"]) == ("NaN", "Infinity")
    assert r["js"] == {"a": [1, 2.5, None]}
    assert r["jb"] == {"b": {"c": True}}
    assert (r["jb_arr"], r["jb_null"]) == ([1, "x"], None)
    assert r["t"] == "tab\there ü"
    assert r["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert r["ts"] == "2024-02-29 12:34:56.789+00"
    assert r["tsn"] == "2024-02-29 12:34:56"
    assert r["d"] == "2024-02-29"
    assert r["arr"] == '{a,"b c"}'
    assert r["m"] == "sad"
    assert r["dom"] == 5  # pgoutput reports a domain column with its base type
    assert r["nul"] is None
    assert r["by"] == "\\xdeadbeef"
    assert r["iv"] == "1 day 02:00:00"
    assert dict(change.columns) == {
        "id": "int8",
        "i2": "int2",
        "i4": "int4",
        "o": "oid",
        "b": "bool",
        "bf": "bool",
        "f4": "float4",
        "f8": "float8",
        "fnan": "float8",
        "finf": "float8",
        "n_int": "numeric",
        "n_dec": "numeric",
        "n_tenth": "numeric",
        "n_long": "numeric",
        "n_huge": "numeric",
        "n_nan": "numeric",
        "n_inf": "numeric",
        "js": "json",
        "jb": "jsonb",
        "jb_arr": "jsonb",
        "jb_null": "jsonb",
        "t": "text",
        "u": "uuid",
        "ts": "timestamptz",
        "tsn": "timestamp",
        "d": "date",
        "arr": "_text",
        "m": "mood",
        "dom": "int4",
        "nul": "text",
        "by": "bytea",
        "iv": "interval",
    }


def test_old_records_follow_the_replica_identity(db: psycopg.Connection[Any], slot: Slot) -> None:
    project, workflow = make_project_and_workflow(db)
    run = make_run(db, project, workflow)
    append(db, run, [{"level": "info", "message": "x"}])
    (line_id,) = db.execute("select id from run_logs where run_id = %s", (run,)).fetchone() or (0,)
    members = db.execute(
        "select user_id::text from project_members where project_id = %s", (project,)
    ).fetchall()
    slot.take()
    db.execute("update workflow_runs set status = 'paused' where id = %s", (run,))
    db.execute("delete from run_logs where id = %s", (line_id,))
    db.execute("delete from project_members where project_id = %s", (project,))
    update, delete_line, delete_member = (only([tx]).changes[0] for tx in slot.transactions())

    assert update.kind is ChangeKind.UPDATE and update.old_record is not None and update.record is not None
    assert set(update.old_record) == set(update.record)  # REPLICA IDENTITY FULL: the whole old row
    assert update.old_record["status"] == "running"
    assert (delete_line.kind, delete_line.record, delete_line.old_record) == (
        ChangeKind.DELETE,
        None,
        {"id": line_id},
    )
    assert delete_member.table == "project_members" and delete_member.record is None
    assert delete_member.old_record is not None
    assert delete_member.old_record["project_id"] == project
    assert delete_member.old_record["user_id"] == members[0][0]
    assert delete_member.old_record["role"] == "owner"


def test_update_of_default_identity_table_has_old_key_only_when_the_key_changed(
    db: psycopg.Connection[Any],
) -> None:
    db.execute("create table kv (k int primary key, v text, w int)")
    db.execute("create publication kv_pub for table kv")
    db.execute("insert into kv values (1, 'a', 7)")
    slot = open_slot(db, "kv_pub")
    db.execute("update kv set k = 2")
    db.execute("update kv set v = 'b'")
    moved, edited = (only([tx]).changes[0] for tx in slot.transactions())
    assert (moved.old_record, moved.record) == ({"k": 1}, {"k": 2, "v": "a", "w": 7})
    assert (edited.old_record, edited.record) == (None, {"k": 2, "v": "b", "w": 7})


def test_unchanged_toast_comes_from_the_old_row_or_is_omitted(db: psycopg.Connection[Any]) -> None:
    big = "x" * 10_000
    for table in ("plain", "fullid"):
        db.execute(f"create table {table} (id int primary key, big text, n int)")
        db.execute(f"alter table {table} alter column big set storage external")
        db.execute(f"insert into {table} values (1, %s, 0)", (big,))
    db.execute("alter table fullid replica identity full")
    db.execute("create publication toast_pub for table plain, fullid")
    slot = open_slot(db, "toast_pub")
    db.execute("update plain set n = 1")
    db.execute("update fullid set n = 1")
    plain, full = (only([tx]).changes[0] for tx in slot.transactions())
    assert plain.record == {"id": 1, "n": 1}  # "big" unknown: omitted, never None
    assert plain.old_record is None
    assert full.record == {"id": 1, "big": big, "n": 1}
    assert full.old_record == {"id": 1, "big": big, "n": 0}


def test_truncate_is_one_change_per_table(db: psycopg.Connection[Any], slot: Slot) -> None:
    project, workflow = make_project_and_workflow(db)
    append(db, make_run(db, project, workflow), [{"level": "info", "message": "x"}])
    slot.take()
    db.execute("truncate run_logs")
    (change,) = only(slot.transactions()).changes
    assert (change.table, change.kind, change.record, change.old_record) == (
        "run_logs",
        ChangeKind.TRUNCATE,
        None,
        None,
    )
    assert change.columns[0] == ("id", "int8")


def test_transaction_with_nothing_published_is_empty(db: psycopg.Connection[Any]) -> None:
    slot = open_slot(db, "supabase_realtime", messages=True)
    db.execute("create table private (id int)")
    with db.transaction():
        db.execute("insert into private values (1)")
        db.execute("select pg_logical_emit_message(true, 'meshlogs', 'x')")
    tx = only(slot.transactions())
    assert tx.changes == () and tx.final


# -- bounded chunks ----------------------------------------------------------------------------------


def test_large_transaction_is_split_into_bounded_chunks(db: psycopg.Connection[Any], slot: Slot) -> None:
    project, workflow = make_project_and_workflow(db)
    run = make_run(db, project, workflow)
    slot.take()
    append(db, run, [{"level": "info", "message": f"m{i}"} for i in range(10)])
    raw = slot.take()

    def fold(**options: Any) -> list[Transaction]:
        from meshlogs.capture import pgoutput

        builder = TxBuilder(**options)
        return [tx for m in raw for tx in builder.receive(pgoutput.decode(m), len(m))]

    (whole,) = fold()
    chunks = fold(max_changes=3)
    assert [len(c.changes) for c in chunks] == [3, 3, 3, 1]
    assert [c.part for c in chunks] == [0, 1, 2, 3]
    assert [c.final for c in chunks] == [False, False, False, True]
    assert all(c.xid == whole.xid and c.commit_lsn == whole.commit_lsn for c in chunks)
    assert all(c.commit_time == whole.commit_time for c in chunks)
    assert [c.end_lsn for c in chunks] == [whole.commit_lsn] * 3 + [whole.end_lsn]
    assert tuple(ch for c in chunks for ch in c.changes) == whole.changes

    exact = fold(max_changes=5)
    assert [len(c.changes) for c in exact] == [5, 5]  # the final chunk is never empty

    one_each = fold(max_bytes=1)
    assert [len(c.changes) for c in one_each] == [1] * 10
    assert fold(max_bytes=len(max(raw, key=len)) * 2 + 1)[0].changes == whole.changes[:2]


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TxBuilder(max_changes=0)
    with pytest.raises(ValueError):
        TxBuilder(max_bytes=0)


# -- protocol violations on synthetic messages -----------------------------------------------------

REL = Relation(7, "public", "t", "d", (Column(1, "id", 23, -1), Column(0, "v", 25, -1)))
BEGIN = Begin(Lsn(100), 0, 42)
COMMIT = Commit(0, Lsn(100), Lsn(120), 0)


def test_synthetic_stream_with_origin_message_type_and_binary() -> None:
    builder = TxBuilder()
    assert builder.receive(Type(90000, "public", "thing")) == ()
    rel = Relation(
        8, "", "t", "f", (Column(1, "id", 23, -1), Column(0, "x", 90000, -1), Column(0, "y", 17, -1))
    )
    assert builder.receive(rel) == ()
    assert not builder.in_transaction
    builder.receive(BEGIN)
    assert builder.in_transaction
    builder.receive(Origin(Lsn(5), "elsewhere"))
    builder.receive(LogicalMessage(True, Lsn(101), "p", b"c"))
    builder.receive(Insert(8, (b"1", b"abc", BinaryValue(b"\x01"))))
    (tx,) = builder.receive(COMMIT)
    (change,) = tx.changes
    assert change.schema == "pg_catalog"  # empty namespace means pg_catalog
    assert change.columns == (("id", "int4"), ("x", "thing"), ("y", "bytea"))
    assert change.record == {"id": 1, "x": "abc", "y": b"\x01"}
    assert tx.commit_time == datetime(2000, 1, 1, tzinfo=UTC)


def test_unknown_type_oids_use_the_lookup_then_the_number() -> None:
    asked: list[int] = []

    def lookup(oid: int) -> str | None:
        asked.append(oid)
        return "found" if oid == 70001 else None

    builder = TxBuilder(type_lookup=lookup)
    rel = Relation(9, "public", "t", "d", (Column(0, "a", 70001, -1), Column(0, "b", 70002, -1)))
    builder.receive(rel)
    builder.receive(rel)  # cached: asked again only for the unresolved one
    builder.receive(BEGIN)
    builder.receive(Insert(9, (b"1", b"2")))
    (tx,) = builder.receive(COMMIT)
    assert tx.changes[0].columns == (("a", "found"), ("b", "70002"))
    assert asked == [70001, 70002, 70002]
    assert TxBuilder()._type_name(70003) == "70003"


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([REL, Insert(7, (b"1", b"x"))], "outside a transaction"),
        ([BEGIN, Insert(7, (b"1", b"x"))], "no Relation message"),
        ([REL, BEGIN, BEGIN], "inside transaction"),
        ([COMMIT], "Commit without Begin"),
        ([REL, BEGIN, Commit(0, Lsn(99), Lsn(120), 0)], "does not match"),
        ([REL, BEGIN, Insert(7, (b"1",))], "tuple has 1 columns, the relation 2"),
        ([REL, BEGIN, Insert(7, (b"x1", b"x"))], r"public\.t\.id: value does not parse"),
        ([REL, BEGIN, Insert(7, (b"1", b"\xff"))], r"public\.t\.v: value does not parse"),
        ([REL, BEGIN, Update(7, None, None, (b"1",))], "tuple has 1 columns"),
        ([REL, BEGIN, Delete(7, (b"1",), None)], "tuple has 1 columns"),
        ([REL, BEGIN, Truncate(0, (7, 8))], "relation 8"),
        ([Begin(Lsn(1), 1 << 62, 1)], "timestamp out of range"),
    ],
)
def test_protocol_violations_are_decode_errors(messages: list[Any], error: str) -> None:
    builder = TxBuilder()
    with pytest.raises(DecodeError, match=error):
        for message in messages:
            builder.receive(message)


@pytest.mark.parametrize(
    ("type_oid", "text"),
    [(16, b"x"), (20, b"1.5"), (700, b"abc"), (1700, b"1.2.3"), (1700, b"abc"), (3802, b"{"), (114, b"[1,")],
)
def test_values_that_do_not_parse_as_their_type(type_oid: int, text: bytes) -> None:
    builder = TxBuilder()
    builder.receive(Relation(1, "public", "t", "d", (Column(0, "c", type_oid, -1),)))
    builder.receive(BEGIN)
    with pytest.raises(DecodeError, match=r"public\.t\.c"):
        builder.receive(Insert(1, (text,)))


def test_unchanged_toast_in_an_old_tuple_is_omitted() -> None:
    builder = TxBuilder()
    builder.receive(REL)
    builder.receive(BEGIN)
    builder.receive(Update(7, None, (b"1", UNCHANGED_TOAST), (b"1", UNCHANGED_TOAST)))
    (tx,) = builder.receive(COMMIT)
    assert tx.changes == (
        Change("public", "t", ChangeKind.UPDATE, {"id": 1}, {"id": 1}, (("id", "int4"), ("v", "text"))),
    )


# -- numeric ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"0", 0),
        (b"-17", -17),
        (b"9223372036854775807", 9223372036854775807),
        (b"9223372036854775808", "9223372036854775808"),
        (b"-9223372036854775809", "-9223372036854775809"),
        (b"1.50", 1.5),
        (b"0.1", 0.1),
        (b"-0.000001", -0.000001),
        (b"0.30000000000000004", 0.30000000000000004),
        (b"0.12345678901234567890", "0.12345678901234567890"),
        (b"NaN", "NaN"),
        (b"Infinity", "Infinity"),
        (b"-Infinity", "-Infinity"),
    ],
)
def test_numeric_conversion(text: bytes, value: object) -> None:
    converted = convert_numeric(text)
    assert converted == value and type(converted) is type(value)


@given(
    st.integers(0, 25).flatmap(
        lambda places: st.decimals(allow_nan=False, allow_infinity=False, places=places)
    )
)
def test_numeric_never_loses_a_digit(number: Decimal) -> None:
    text = format(number, "f")
    converted = convert_numeric(text.encode())
    if isinstance(converted, str):
        assert converted == text
    else:
        assert Decimal(repr(converted)) == Decimal(text)


_TUPLE = st.tuples(st.one_of(st.none(), st.binary(max_size=8)), st.one_of(st.none(), st.binary(max_size=8)))
_MESSAGES = st.one_of(
    st.just(REL),
    st.just(BEGIN),
    st.just(COMMIT),
    st.builds(Insert, st.sampled_from([7, 8]), _TUPLE),
    st.builds(Update, st.sampled_from([7, 8]), st.none(), st.one_of(st.none(), _TUPLE), _TUPLE),
    st.builds(Delete, st.sampled_from([7, 8]), st.one_of(st.none(), _TUPLE), st.none()),
    st.builds(Truncate, st.just(0), st.tuples(st.sampled_from([7, 8]))),
    st.builds(Commit, st.just(0), st.builds(Lsn, st.integers(0, 200)), st.just(Lsn(120)), st.just(0)),
)


@given(st.lists(_MESSAGES, max_size=30))
def test_any_message_sequence_yields_transactions_or_a_decode_error(messages: list[Any]) -> None:
    """Fuzzing the builder: whatever order messages come in, it either builds transactions or
    raises the documented DecodeError, and never anything else."""
    builder = TxBuilder()
    try:
        for message in messages:
            for tx in builder.receive(message):
                assert isinstance(tx, Transaction)
    except DecodeError:
        pass
