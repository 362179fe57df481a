"""ReplicationSource against the real embedded Postgres: order, old records, resets, backpressure, acks."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meshlogs.capture import (
    ChangeEvent,
    ChangeKind,
    ChangeSource,
    ReplicationSource,
    SourceState,
    StreamReset,
    Transaction,
)
from meshlogs.capture.lsn import Lsn
from meshlogs.capture.source import backoff_delay
from meshlogs.db.embedded import start_embedded
from meshlogs.db.migrate import apply_migrations
from meshlogs.errors import ReplicationError
from tests.factories import add_member, append, make_project, make_run, make_user, make_workflow

WAIT = 30.0  # every wait in this module is bounded by this many seconds

Factory = Callable[..., "asyncio.Future[ReplicationSource]"]


def active_slots(db: psycopg.Connection[Any]) -> list[tuple[str, bool, bool]]:
    return [
        (str(r[0]), bool(r[1]), bool(r[2]))
        for r in db.execute(
            "select slot_name, temporary, active from pg_replication_slots"
            " where database = current_database()"
        )
    ]


async def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def sources(db_url: str, db: psycopg.Connection[Any]) -> AsyncIterator[Callable[..., Any]]:
    """Start ReplicationSources on this test's database; closed (and their slots gone) afterwards."""
    started: list[ReplicationSource] = []

    async def start(**options: Any) -> ReplicationSource:
        options.setdefault("slot_prefix", "t_" + uuid.uuid4().hex[:6])
        source = ReplicationSource(db_url, **options)
        started.append(source)
        await asyncio.wait_for(source.start(), WAIT)
        return source

    yield start
    for source in started:
        await asyncio.wait_for(source.close(), WAIT)
    await wait_until(lambda: not active_slots(db), "the temporary slots to go away")


async def next_event(source: ChangeSource) -> ChangeEvent:
    return await asyncio.wait_for(anext(source), WAIT)


async def next_tx(source: ChangeSource, table: str | None = None) -> Transaction:
    """The next transaction (touching ``table``, if given); a StreamReset here fails the test."""
    while True:
        event = await next_event(source)
        assert isinstance(event, Transaction), f"unexpected {event!r}"
        if table is None or any(c.table == table for c in event.changes):
            return event


def new_run(db: psycopg.Connection[Any]) -> tuple[str, str]:
    owner = make_user(db, f"{uuid.uuid4().hex[:8]}@example.com")
    project = make_project(db, owner)
    return project, make_run(db, project, make_workflow(db, project))


async def test_append_arrives_as_one_transaction_in_seq_order(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    source = await sources()
    assert isinstance(source, ChangeSource)
    status = source.status
    assert status.ready and status.state is SourceState.STREAMING
    assert status.slot_name is not None and status.slot_name.startswith("t_")
    _, run = new_run(db)
    last = append(db, run, [{"level": "info", "message": f"line {i}", "step": "s"} for i in range(50)])
    assert last == 50

    tx = await next_tx(source, "run_logs")
    assert tx.final and tx.part == 0
    assert [c.kind for c in tx.changes] == [ChangeKind.INSERT] * 50
    records = [c.record for c in tx.changes if c.record]
    assert [r["seq"] for r in records] == list(range(1, 51))
    assert {r["run_id"] for r in records} == {run}
    assert records[0]["message"] == "line 0" and records[0]["attrs"] == {}
    assert source.status.received_lsn is not None and source.status.received_lsn >= tx.end_lsn


async def test_concurrent_transactions_arrive_in_commit_order(
    db_url: str, db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    _, run_a = new_run(db)
    _, run_b = new_run(db)
    source = await sources()
    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        append(first, run_a, [{"level": "info", "message": "started first, committed last"}])
        append(second, run_b, [{"level": "info", "message": "started last, committed first"}])
        second.commit()
        first.commit()
    one, two = await next_tx(source, "run_logs"), await next_tx(source, "run_logs")
    assert [c.record["run_id"] for c in one.changes + two.changes if c.record] == [run_b, run_a]
    assert one.commit_lsn < two.commit_lsn

    # Many writers at once: commit_lsn strictly increases, and every run's seqs arrive 1..N.
    runs = [new_run(db)[1] for _ in range(4)]
    errors: list[BaseException] = []

    def write(run: str) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                for i in range(25):
                    append(
                        conn, run, [{"level": "info", "message": f"{i}"}, {"level": "info", "message": "b"}]
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    received: list[Transaction] = []
    while sum(len(tx.changes) for tx in received) < 200:
        received.append(await next_tx(source, "run_logs"))
    for thread in threads:
        thread.join(WAIT)
    assert not errors
    lsns = [tx.commit_lsn for tx in received]
    assert lsns == sorted(lsns) and len(set(lsns)) == len(lsns) == 100
    for run in runs:
        seqs = [
            c.record["seq"] for tx in received for c in tx.changes if c.record and c.record["run_id"] == run
        ]
        assert seqs == list(range(1, 51))


async def test_update_of_workflow_runs_carries_old_record(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    _, run = new_run(db)
    source = await sources()
    db.execute("update workflow_runs set status = 'failed' where id = %s", (run,))
    (change,) = (await next_tx(source, "workflow_runs")).changes
    assert change.kind is ChangeKind.UPDATE
    assert change.record is not None and change.old_record is not None
    assert (change.old_record["status"], change.record["status"]) == ("running", "failed")
    assert change.old_record["id"] == change.record["id"] == run
    assert ("status", "text") in change.columns


async def test_project_member_delete_arrives_through_the_authz_publication(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    project, _ = new_run(db)
    viewer = make_user(db, "viewer@example.com")
    add_member(db, project, viewer, "viewer")
    source = await sources()
    db.execute("delete from project_members where project_id = %s and user_id = %s", (project, viewer))
    (change,) = (await next_tx(source, "project_members")).changes
    assert (change.schema, change.kind, change.record) == ("public", ChangeKind.DELETE, None)
    assert change.old_record is not None
    assert (change.old_record["project_id"], change.old_record["user_id"], change.old_record["role"]) == (
        project,
        viewer,
        "viewer",
    )


async def test_terminated_walsender_gives_stream_reset_then_new_changes(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    _, run = new_run(db)
    source = await sources(backoff_base=0.05, backoff_cap=0.5)
    append(db, run, [{"level": "info", "message": "before"}])
    before = await next_tx(source, "run_logs")
    old_slot = source.status.slot_name

    db.execute(
        "select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = %s", (old_slot,)
    )
    event = await next_event(source)
    assert isinstance(event, StreamReset), event
    assert "replication stream lost" in event.reason and "terminat" in event.reason
    assert event.last_lsn == before.end_lsn
    assert event.resume_lsn > before.end_lsn and event.attempts >= 1
    status = source.status
    assert status.resets == 1 and status.ready and status.slot_name not in (None, old_slot)
    assert status.last_error is not None

    append(db, run, [{"level": "info", "message": "after"}])
    after = await next_tx(source, "run_logs")
    assert [c.record["message"] for c in after.changes if c.record] == ["after"]
    assert after.commit_lsn > event.resume_lsn


async def test_oversized_message_breaks_the_stream_with_a_reset(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    _, run = new_run(db)
    source = await sources(max_message_size=2000, backoff_base=0.05, backoff_cap=0.5)
    append(db, run, [{"level": "info", "message": "x" * 5000}])
    event = await next_event(source)
    assert isinstance(event, StreamReset) and "exceeds the limit" in event.reason
    append(db, run, [{"level": "info", "message": "small"}])
    tx = await next_tx(source, "run_logs")
    assert tx.changes[0].record is not None and tx.changes[0].record["seq"] == 2


async def test_close_ends_iteration_and_leaves_no_slot(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    source = await sources()
    name = source.status.slot_name
    assert (name, True, True) in active_slots(db)

    async def consume() -> list[ChangeEvent]:
        return [event async for event in source]

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    await asyncio.wait_for(source.close(), WAIT)
    assert await asyncio.wait_for(consumer, WAIT) == []
    assert source.status.state is SourceState.CLOSED and not source.status.ready
    await wait_until(lambda: all(slot[0] != name for slot in active_slots(db)), "the slot to be dropped")
    await source.close()  # idempotent
    with pytest.raises(StopAsyncIteration):
        await anext(source)


async def test_start_fails_clearly_and_only_once(db_url: str, sources: Callable[..., Any]) -> None:
    with pytest.raises(ReplicationError, match="publication.s. nope do not exist"):
        await sources(publications=("supabase_realtime", "nope"))
    missing = db_url.replace("dbname=", "dbname=missing_") if "dbname=" in db_url else db_url + "_missing"
    source = ReplicationSource(missing, connect_timeout=5)
    with pytest.raises(ReplicationError, match="cannot start logical replication"):
        await asyncio.wait_for(source.start(), WAIT)
    assert source.status.state is SourceState.CLOSED and source.status.last_error
    with pytest.raises(StopAsyncIteration):
        await anext(source)
    with pytest.raises(RuntimeError):
        await source.start()


def test_bad_arguments_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="publications"):
        ReplicationSource("", publications=("Bad-Name",))
    with pytest.raises(ValueError, match="publications"):
        ReplicationSource("", publications=())
    with pytest.raises(ValueError, match="slot_prefix"):
        ReplicationSource("", slot_prefix="x; drop")
    with pytest.raises(ValueError, match="queue_size"):
        ReplicationSource("", queue_size=0)
    with pytest.raises(ValueError, match="max_changes"):
        ReplicationSource("", max_changes=0)


async def test_iterating_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        await anext(ReplicationSource("dbname=x"))


async def test_slow_consumer_bounds_the_queue_and_loses_nothing(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    _, run = new_run(db)
    source = await sources(queue_size=2, max_changes=5)
    for i in range(20):
        append(db, run, [{"level": "info", "message": f"{i}-{j}"} for j in range(12)])
    await wait_until(lambda: source.status.queue_depth >= 2, "the queue to fill")
    await asyncio.sleep(0.3)
    status = source.status
    # The reader stopped reading: besides the 2 queued chunks it holds at most the one it was
    # folding when the queue filled up.
    assert status.queue_depth == 3
    assert (status.changes, status.transactions) == (12, 1)  # chunks of 5, 5 and 2

    seqs: list[int] = []
    parts: list[tuple[int, bool]] = []
    while len(seqs) < 240:
        tx = await next_tx(source, "run_logs")
        assert len(tx.changes) <= 5
        parts.append((tx.part, tx.final))
        seqs += [c.record["seq"] for c in tx.changes if c.record]
    assert seqs == list(range(1, 241))
    assert parts[:3] == [(0, False), (1, False), (2, True)]


async def test_large_transaction_arrives_in_chunks(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    _, run = new_run(db)
    source = await sources(max_changes=100)
    append(db, run, [{"level": "debug", "message": f"{i}"} for i in range(1000)])
    chunks = [await next_tx(source, "run_logs") for _ in range(10)]
    assert [c.part for c in chunks] == list(range(10))
    assert [c.final for c in chunks] == [False] * 9 + [True]
    assert len({c.xid for c in chunks}) == 1
    assert [c.record["seq"] for tx in chunks for c in tx.changes if c.record] == list(range(1, 1001))


def confirmed_flush(db: psycopg.Connection[Any], slot: str | None) -> Lsn:
    row = db.execute(
        "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = %s", (slot,)
    ).fetchone()
    assert row is not None
    return Lsn.parse(str(row[0]))


async def test_flush_position_follows_acknowledgements(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    _, run = new_run(db)
    source = await sources(auto_ack=False, status_interval=0.1)
    slot = source.status.slot_name
    append(db, run, [{"level": "info", "message": "ack me"}])
    tx = await next_tx(source, "run_logs")
    await asyncio.sleep(0.5)
    assert confirmed_flush(db, slot) < tx.end_lsn  # handed out, not acknowledged
    assert source.status.flushed_lsn is not None and source.status.flushed_lsn < tx.end_lsn
    source.ack(tx)
    await wait_until(lambda: confirmed_flush(db, slot) >= tx.end_lsn, "the slot to confirm the ack")
    # Idle and everything acknowledged: the position follows the server's WAL end.
    db.execute("create table unpublished (id int)")
    await wait_until(
        lambda: source.status.lag_bytes == 0 and confirmed_flush(db, slot) > tx.end_lsn, "the idle position"
    )


async def test_auto_ack_counts_a_transaction_handled_when_the_next_event_is_asked_for(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    _, run = new_run(db)
    source = await sources(status_interval=0.1)
    slot = source.status.slot_name
    append(db, run, [{"level": "info", "message": "one"}])
    tx = await next_tx(source, "run_logs")
    await asyncio.sleep(0.4)
    assert confirmed_flush(db, slot) < tx.end_lsn
    waiting = asyncio.create_task(anext(source))
    await wait_until(lambda: confirmed_flush(db, slot) >= tx.end_lsn, "auto ack")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_idle_stream_stays_up_thanks_to_pings(
    db: psycopg.Connection[Any], sources: Callable[..., Any]
) -> None:
    source = await sources(status_interval=0.2, receive_timeout=1.0)
    await asyncio.sleep(2.5)
    status = source.status
    assert status.ready and status.resets == 0 and status.last_error is None
    _, run = new_run(db)
    append(db, run, [{"level": "info", "message": "still here"}])
    assert (await next_tx(source, "run_logs")).changes[0].record is not None
    assert source.status.commit_lag is not None and source.status.commit_lag < WAIT


def test_backoff_is_bounded_exponential_with_jitter() -> None:
    lows = [backoff_delay(n, base=0.2, cap=10.0, rand=0.0) for n in range(12)]
    highs = [backoff_delay(n, base=0.2, cap=10.0, rand=0.999999) for n in range(12)]
    assert set(lows) == {0.1}  # never spins
    assert highs[0] == pytest.approx(0.2, rel=1e-3) and highs[3] == pytest.approx(1.6, rel=1e-3)
    assert highs == sorted(highs) and max(highs) <= 10.0 and highs[-1] == pytest.approx(10.0, rel=1e-3)
    assert backoff_delay(10_000, base=0.2, cap=10.0, rand=0.5) <= 10.0


async def test_unexpected_errors_while_reconnecting_are_retried(
    db: psycopg.Connection[Any], sources: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = await sources(backoff_base=0.05, backoff_cap=0.2)
    real_connect = source._connect
    calls: list[int] = []

    async def flaky_connect() -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("a bug")
        return await real_connect()

    monkeypatch.setattr(source, "_connect", flaky_connect)
    db.execute(
        "select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = %s",
        (source.status.slot_name,),
    )
    event = await next_event(source)
    assert isinstance(event, StreamReset) and event.attempts == 2 and len(calls) == 2


async def test_capture_dying_of_a_bug_ends_the_iteration_loudly(
    db: psycopg.Connection[Any], sources: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = await sources()

    async def broken(**_: Any) -> Any:
        raise RuntimeError("bug in reconnect")

    monkeypatch.setattr(source, "_reconnect", broken)
    db.execute(
        "select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = %s",
        (source.status.slot_name,),
    )
    with pytest.raises(StopAsyncIteration):
        await next_event(source)
    status = source.status
    assert status.state is SourceState.CLOSED and "bug in reconnect" in (status.last_error or "")


async def test_postgres_restart_gives_stream_reset_then_new_changes() -> None:
    """A Postgres of its own (the session's is shared): stop it under the source, start it again.

    Its data dir is not pytest's tmp_path: concurrent pytest sessions of the same user prune each
    other's numbered tmp dirs, which pulled the cluster from under this test.
    """
    tmp_path = Path(tempfile.mkdtemp(prefix="meshlogs-capture-restart-"))
    server = start_embedded(tmp_path, cleanup="stop")
    source = ReplicationSource(server.url, backoff_base=0.1, backoff_cap=0.5)
    try:
        apply_migrations(server.url)
        with psycopg.connect(server.url, autocommit=True) as conn:
            _, run = new_run(conn)
        await asyncio.wait_for(source.start(), WAIT)
        # In a thread: a shutting-down walsender waits for the client to confirm what it sent,
        # so the loop must keep answering while pg_ctl stop waits.
        await asyncio.wait_for(asyncio.to_thread(server.stop), WAIT)
        await wait_until(lambda: not source.status.ready, "the source to notice")
        assert source.status.state is SourceState.RECONNECTING
        server = await asyncio.wait_for(asyncio.to_thread(start_embedded, tmp_path, cleanup="delete"), WAIT)
        event = await next_event(source)
        assert isinstance(event, StreamReset) and event.last_lsn is None
        with psycopg.connect(server.url, autocommit=True) as conn:
            append(conn, run, [{"level": "info", "message": "after the restart"}])
        tx = await next_tx(source, "run_logs")
        assert tx.changes[0].record is not None and tx.changes[0].record["message"] == "after the restart"
    finally:
        await asyncio.wait_for(source.close(), WAIT)
        await asyncio.to_thread(server.stop)
        shutil.rmtree(tmp_path, ignore_errors=True)
