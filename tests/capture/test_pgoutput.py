"""pgoutput.decode on real bytes from the embedded Postgres, on every truncation of them, and fuzzed."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshlogs.capture import pgoutput
from meshlogs.capture.lsn import Lsn
from meshlogs.capture.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    BinaryValue,
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
from meshlogs.errors import DecodeError
from tests.capture.conftest import Slot, drop_own_slots, open_slot
from tests.conftest import create_test_database, drop_test_database
from tests.factories import append, make_project, make_run, make_user, make_workflow

RUN_LOGS_COLUMNS = [
    ("id", 20, True),
    ("run_id", 2950, False),
    ("seq", 20, False),
    ("ts", 1184, False),
    ("level", 25, False),
    ("step", 25, False),
    ("message", 25, False),
    ("attrs", 3802, False),
]


def make_run_now(db: psycopg.Connection[Any]) -> str:
    owner = make_user(db, f"{uuid.uuid4().hex[:8]}@example.com")
    project = make_project(db, owner)
    return make_run(db, project, make_workflow(db, project))


def kinds(messages: list[pgoutput.PgOutputMessage]) -> list[str]:
    return [type(m).__name__ for m in messages]


def test_append_is_begin_relation_inserts_commit(db: psycopg.Connection[Any], slot: Slot) -> None:
    run = make_run_now(db)
    slot.take()
    before = datetime.now(UTC)
    append(
        db, run, [{"level": "info", "message": "one"}, {"level": "warn", "message": "two", "step": "build"}]
    )
    messages = slot.decoded()

    assert kinds(messages) == ["Begin", "Relation", "Insert", "Insert", "Commit"]
    begin, relation, first, second, commit = messages
    assert isinstance(begin, Begin) and isinstance(commit, Commit)
    assert isinstance(relation, Relation) and isinstance(first, Insert) and isinstance(second, Insert)
    assert begin.final_lsn == commit.commit_lsn < commit.end_lsn
    assert begin.commit_ts == commit.commit_ts
    assert before - timedelta(seconds=1) <= begin.commit_time <= datetime.now(UTC)
    assert commit.flags == 0 and begin.xid > 0

    assert (relation.namespace, relation.name, relation.replica_identity) == ("public", "run_logs", "d")
    assert [(c.name, c.type_oid, c.is_key) for c in relation.columns] == RUN_LOGS_COLUMNS
    assert all(c.type_modifier == -1 for c in relation.columns)
    assert first.relation_id == second.relation_id == relation.relation_id

    assert len(first.new) == 8
    assert first.new[1] == run.encode()
    assert (first.new[2], first.new[4], first.new[5], first.new[6], first.new[7]) == (
        b"1",
        b"info",
        None,
        b"one",
        b"{}",
    )
    assert (second.new[2], second.new[4], second.new[5], second.new[6]) == (b"2", b"warn", b"build", b"two")


def test_update_of_replica_identity_full_table_carries_the_old_tuple(
    db: psycopg.Connection[Any], slot: Slot
) -> None:
    run = make_run_now(db)
    slot.take()
    db.execute("update workflow_runs set status = 'succeeded' where id = %s", (run,))
    messages = slot.decoded()
    assert kinds(messages) == ["Begin", "Relation", "Update", "Commit"]
    relation, update = messages[1], messages[2]
    assert isinstance(relation, Relation) and isinstance(update, Update)
    assert relation.replica_identity == "f"
    names = [c.name for c in relation.columns]
    assert update.key is None and update.old is not None
    old = dict(zip(names, update.old, strict=True))
    new = dict(zip(names, update.new, strict=True))
    assert (old["status"], new["status"]) == (b"running", b"succeeded")
    assert old["finished_at"] is None and new["finished_at"] is not None


def test_delete_with_default_identity_sends_the_key_only(db: psycopg.Connection[Any], slot: Slot) -> None:
    run = make_run_now(db)
    append(db, run, [{"level": "info", "message": "gone soon"}])
    (row_id,) = db.execute("select id from run_logs where run_id = %s", (run,)).fetchone() or (0,)
    slot.take()
    db.execute("delete from run_logs where run_id = %s", (run,))
    messages = slot.decoded()
    assert kinds(messages) == ["Begin", "Relation", "Delete", "Commit"]
    delete = messages[2]
    assert isinstance(delete, Delete) and delete.old is None and delete.key is not None
    assert delete.key == (str(row_id).encode(), None, None, None, None, None, None, None)


def test_delete_of_replica_identity_full_table_sends_the_old_row(
    db: psycopg.Connection[Any], slot: Slot
) -> None:
    owner = make_user(db, "o@example.com")
    project = make_project(db, owner)
    slot.take()
    db.execute("delete from project_members where project_id = %s", (project,))
    messages = slot.decoded()
    assert kinds(messages) == ["Begin", "Relation", "Delete", "Commit"]
    delete = messages[2]
    assert isinstance(delete, Delete) and delete.key is None and delete.old is not None
    assert delete.old[:3] == (project.encode(), owner.encode(), b"owner")


def test_update_that_changes_the_key_sends_the_old_key(db: psycopg.Connection[Any]) -> None:
    db.execute("create table kv (k int primary key, v text)")
    db.execute("create publication kv_pub for table kv")
    db.execute("insert into kv values (1, 'a')")
    slot = open_slot(db, "kv_pub")
    db.execute("update kv set k = 2")
    db.execute("update kv set v = 'b'")
    first, second = (m for m in slot.decoded() if isinstance(m, Update))
    assert (first.key, first.old, first.new) == ((b"1", None), None, (b"2", b"a"))
    assert (second.key, second.old, second.new) == (None, None, (b"2", b"b"))


def test_unchanged_toast_value_is_marked_u(db: psycopg.Connection[Any]) -> None:
    db.execute("create table docs (id int primary key, big text, n int)")
    db.execute("alter table docs alter column big set storage external")
    db.execute("create publication docs_pub for table docs")
    db.execute("insert into docs select 1, repeat('x', 10000), 0")
    slot = open_slot(db, "docs_pub")
    db.execute("update docs set n = 1")
    (update,) = (m for m in slot.decoded() if isinstance(m, Update))
    assert update.new == (b"1", UNCHANGED_TOAST, b"1")
    assert repr(UNCHANGED_TOAST) == "UNCHANGED_TOAST"


def test_truncate_lists_the_relations_and_options(db: psycopg.Connection[Any], slot: Slot) -> None:
    run = make_run_now(db)
    append(db, run, [{"level": "info", "message": "x"}])
    slot.take()
    db.execute("truncate run_logs restart identity")
    messages = slot.decoded()
    assert kinds(messages) == ["Begin", "Relation", "Truncate", "Commit"]
    relation, truncate = messages[1], messages[2]
    assert isinstance(relation, Relation) and isinstance(truncate, Truncate)
    assert truncate.relation_ids == (relation.relation_id,)
    assert truncate.restart_identity and not truncate.cascade and truncate.options == 2


def test_user_defined_type_is_announced_before_the_relation(db: psycopg.Connection[Any]) -> None:
    db.execute("create type mood as enum ('ok', 'sad')")
    db.execute("create table feelings (id int primary key, m mood)")
    db.execute("create publication f_pub for table feelings")
    slot = open_slot(db, "f_pub")
    db.execute("insert into feelings values (1, 'sad')")
    messages = slot.decoded()
    assert kinds(messages) == ["Begin", "Type", "Relation", "Insert", "Commit"]
    type_, relation = messages[1], messages[2]
    assert isinstance(type_, Type) and isinstance(relation, Relation)
    assert (type_.namespace, type_.name) == ("public", "mood")
    assert relation.columns[1].type_oid == type_.type_oid


def test_logical_messages_transactional_and_not(db: psycopg.Connection[Any]) -> None:
    slot = open_slot(db, "supabase_realtime", messages=True)
    db.execute("select pg_logical_emit_message(false, 'meshlogs', 'out of band')")
    with db.transaction():
        db.execute("select pg_logical_emit_message(true, 'meshlogs', convert_to('héllo', 'UTF8'))")
    messages = slot.decoded()
    assert kinds(messages) == ["LogicalMessage", "Begin", "LogicalMessage", "Commit"]
    loose, inside = messages[0], messages[2]
    assert isinstance(loose, LogicalMessage) and isinstance(inside, LogicalMessage)
    assert (loose.transactional, loose.prefix, loose.content) == (False, "meshlogs", b"out of band")
    assert (inside.transactional, inside.content) == (True, "héllo".encode())
    assert inside.lsn > Lsn(0)


def test_origin_message_names_the_replication_origin(db: psycopg.Connection[Any]) -> None:
    name = "origin_" + uuid.uuid4().hex[:8]
    slot = open_slot(db, "supabase_realtime,meshlogs_authz")
    db.execute("select pg_replication_origin_create(%s)", (name,))
    try:
        db.execute("select pg_replication_origin_session_setup(%s)", (name,))
        with db.transaction():
            db.execute("select pg_replication_origin_xact_setup('0/AB', now())")
            make_project(db, make_user(db, "origin@example.com"))
        db.execute("select pg_replication_origin_session_reset()")
    finally:
        db.execute("select pg_replication_origin_drop(%s)", (name,))
    messages = slot.decoded()
    origins = [m for m in messages if isinstance(m, Origin)]
    assert origins == [Origin(Lsn.parse("0/AB"), name)]
    assert kinds(messages)[:2] == ["Begin", "Origin"]


def test_binary_option_gives_binary_values(db: psycopg.Connection[Any]) -> None:
    db.execute("create table nums (id int primary key, t text)")
    db.execute("create publication nums_pub for table nums")
    name = "bin_" + uuid.uuid4().hex[:8]
    db.execute("select pg_create_logical_replication_slot(%s, 'pgoutput', true)", (name,))
    db.execute("insert into nums values (258, null)")
    rows = db.execute(
        "select data from pg_logical_slot_get_binary_changes(%s, null, null,"
        " 'proto_version', '1', 'publication_names', 'nums_pub', 'binary', 'true')",
        (name,),
    ).fetchall()
    (insert,) = (m for m in (pgoutput.decode(bytes(r[0])) for r in rows) if isinstance(m, Insert))
    assert insert.new == (BinaryValue(b"\x00\x00\x01\x02"), None)


# -- malformed input -------------------------------------------------------------------------------


def build_corpus(url: str) -> list[bytes]:
    """Real messages of every kind the decoder knows."""
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("create type mood as enum ('ok', 'sad')")
        db.execute("create table feelings (id int primary key, m mood, big text)")
        db.execute("alter table feelings replica identity full")
        db.execute(
            "create publication corpus_pub for table feelings, run_logs, workflow_runs, project_members"
        )
        slot = open_slot(db, "corpus_pub", messages=True)
        run = make_run_now(db)
        append(db, run, [{"level": "info", "message": "x", "attrs": {"k": [1, 2]}}])
        db.execute("insert into feelings values (1, 'ok', repeat('y', 5000))")
        db.execute("update feelings set m = 'sad'")
        db.execute("update workflow_runs set status = 'failed'")
        db.execute("delete from run_logs")
        db.execute("delete from feelings")
        db.execute("truncate feelings")
        db.execute("select pg_logical_emit_message(true, 'p', 'c')")
        corpus = slot.take()
        drop_own_slots(db)
        return corpus


@pytest.fixture(scope="module")
def corpus(pg_admin_url: str, template_url: str) -> Iterator[list[bytes]]:
    url = create_test_database(pg_admin_url, template_url)
    try:
        yield build_corpus(url)
    finally:
        drop_test_database(pg_admin_url, url)


def test_corpus_covers_every_message_kind(corpus: list[bytes]) -> None:
    tags = {raw[:1] for raw in corpus}
    assert tags >= {b"B", b"C", b"R", b"Y", b"I", b"U", b"D", b"T", b"M"}
    for raw in corpus:
        pgoutput.decode(raw)


def test_every_truncation_and_any_trailing_byte_is_a_decode_error(corpus: list[bytes]) -> None:
    for raw in corpus:
        for cut in range(len(raw)):
            with pytest.raises(DecodeError):
                pgoutput.decode(raw[:cut])
        with pytest.raises(DecodeError, match="trailing"):
            pgoutput.decode(raw + b"\0")


def test_size_limit_is_checked_before_parsing(corpus: list[bytes]) -> None:
    raw = max(corpus, key=len)
    assert pgoutput.decode(raw, max_size=len(raw))
    with pytest.raises(DecodeError, match="exceeds the limit"):
        pgoutput.decode(raw, max_size=len(raw) - 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"Z", "unknown pgoutput message kind 'Z'"),
        (b"\x00", "unknown pgoutput message kind 0x00"),
        (b"S\x00\x00\x00\x01\x01", "protocol version 2"),
        (b"I\x00\x00\x00\x01X\x00\x00", "expected one of 'N'"),
        (b"I\x00\x00\x00\x01N\xff\xff", "negative column count"),
        (b"I\x00\x00\x00\x01N\x00\x01x", "unknown column kind 'x'"),
        (b"I\x00\x00\x00\x01N\x00\x01t\xff\xff\xff\xff", "column length -1"),
        (b"I\x00\x00\x00\x01N\x00\x01t\x00\x00\x00\x09abc", "overruns"),
        (b"R\x00\x00\x00\x01\xff\x00t\x00d\x00\x00", "not UTF-8"),
        (b"R\x00\x00\x00\x01public\x00t\x00z\x00\x00", "replica identity 'z'"),
        (b"R\x00\x00\x00\x01public\x00t", "no terminating NUL"),
        (b"T\x00\x00\x00\x05\x00\x00\x00\x00\x01", "do not fit"),
        (b"D\x00\x00\x00\x01N\x00\x00", "expected one of 'KO'"),
        (b"M\x02" + b"\0" * 8 + b"p\x00\x00\x00\x00\x00", "flags must be 0 or 1"),
    ],
)
def test_malformed_messages_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        pgoutput.decode(data)


def test_decode_accepts_bytearray_and_memoryview(corpus: list[bytes]) -> None:
    for raw in corpus:
        assert pgoutput.decode(bytearray(raw)) == pgoutput.decode(memoryview(raw)) == pgoutput.decode(raw)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_decode_or_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        pgoutput.decode(data)


@FUZZ
@given(
    st.sampled_from(list(b"BCORYIUDTM")),
    st.binary(max_size=120),
)
def test_fuzz_known_tags_with_random_bodies(tag: int, body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        pgoutput.decode(bytes([tag]) + body)


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_real_messages(corpus: list[bytes], data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from(corpus)))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    with contextlib.suppress(DecodeError):
        pgoutput.decode(bytes(raw))
