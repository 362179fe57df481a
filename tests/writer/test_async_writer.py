"""AsyncLogWriter against a real Postgres: order, batching, backpressure, faults, errors, hygiene."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meshlogs.db.embedded import start_embedded
from meshlogs.db.migrate import apply_migrations
from meshlogs.errors import DeliveryError, LineRejectedError, WriterClosedError, WriterError, WriterFullError
from meshlogs.writer import AsyncLogWriter, RetryPolicy
from tests.factories import make_project, make_run, make_user, make_workflow
from tests.writer.conftest import FAST_RETRY, assert_dense, count, stored, wait_until
from tests.writer.proxy import PgProxy


async def test_lines_get_seq_in_write_order(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    messages = [f"line {i}" for i in range(5000)]
    async with AsyncLogWriter(db_url, batch_lines=700) as writer:
        for m in messages:
            await writer.write(run, m)
    assert_dense(stored(db, run), messages)
    stats = writer.stats()
    assert stats.lines_delivered == 5000 and stats.batches_delivered >= 8 and stats.pending_lines == 0


async def test_fields_are_stored(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    async with AsyncLogWriter(db_url) as writer:
        await writer.write(run, "hello", level="warn", step="build", attrs={"k": [1, "two"]}, ts=0)
        await writer.write(run, "second")
    rows = stored(db, run)
    assert rows[0]["level"] == "warn" and rows[0]["step"] == "build" and rows[0]["attrs"] == {"k": [1, "two"]}
    assert rows[0]["ts"].timestamp() == 0
    assert rows[1]["level"] == "info" and rows[1]["step"] is None and rows[1]["attrs"] == {}
    assert abs(rows[1]["ts"].timestamp() - time.time()) < 60


async def test_concurrent_writers_on_several_runs(
    db_url: str, db: psycopg.Connection[Any], runs: Callable[[int], list[str]]
) -> None:
    ids = runs(6)
    per_run = 3000

    async def produce(run_id: str, tag: str) -> None:
        for i in range(per_run):
            await writer.write(run_id, f"{tag} {i}")
            if i % 500 == 0:
                await asyncio.sleep(0)

    async with AsyncLogWriter(db_url, batch_lines=400, connections=3) as writer:
        await asyncio.wait_for(asyncio.gather(*(produce(r, f"run{j}") for j, r in enumerate(ids))), 60)
    for j, r in enumerate(ids):
        assert_dense(stored(db, r), [f"run{j} {i}" for i in range(per_run)])


async def test_interleaved_tasks_on_one_run_keep_call_order(
    db_url: str, db: psycopg.Connection[Any], run: str
) -> None:
    order: list[str] = []

    async def produce(tag: str) -> None:
        for i in range(1000):
            msg = f"{tag}{i}"
            order.append(msg)  # recorded right before the call: no await in between
            await writer.write(run, msg)

    async with AsyncLogWriter(db_url, batch_lines=64) as writer:
        await asyncio.wait_for(asyncio.gather(produce("a"), produce("b"), produce("c")), 60)
    assert_dense(stored(db, run), order)


async def test_flush_by_count(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    async with AsyncLogWriter(db_url, batch_lines=10, flush_interval=60) as writer:
        for i in range(25):
            await writer.write(run, f"l{i}")
        await wait_until(lambda: count(db, run) == 20)
        await asyncio.sleep(0.3)
        assert count(db, run) == 20  # the last 5 wait for their (distant) deadline
        await writer.flush()
        assert count(db, run) == 25


async def test_flush_by_bytes(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    async with AsyncLogWriter(db_url, batch_lines=1000, batch_bytes=4000, flush_interval=60) as writer:
        for i in range(10):
            await writer.write(run, f"{i:02d}" + "b" * 998)  # ~1 KB per line
        await wait_until(lambda: count(db, run) >= 3)
        await asyncio.sleep(0.3)
        assert 3 <= count(db, run) < 10
    assert count(db, run) == 10


async def test_flush_by_time(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    async with AsyncLogWriter(db_url, batch_lines=1000, flush_interval=0.3) as writer:
        t0 = time.monotonic()
        await writer.write(run, "a")
        await writer.write(run, "b")
        await asyncio.sleep(0.1)
        assert count(db, run) == 0
        await wait_until(lambda: count(db, run) == 2, timeout=5)
        assert time.monotonic() - t0 >= 0.25


async def test_close_flushes_and_refuses_more(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    writer = AsyncLogWriter(db_url, flush_interval=60)
    for i in range(123):
        await writer.write(run, f"l{i}")
    await writer.aclose()
    assert count(db, run) == 123
    with pytest.raises(WriterClosedError):
        await writer.write(run, "late")
    await writer.aclose()  # idempotent


async def test_run_ids_are_validated_and_normalized(
    db_url: str, db: psycopg.Connection[Any], run: str
) -> None:
    async with AsyncLogWriter(db_url) as writer:
        await writer.write(run.upper(), "upper")
        await writer.write(run, "lower")
        with pytest.raises(ValueError, match="not a UUID"):
            await writer.write("run-1", "x")
    assert [r["message"] for r in stored(db, run)] == ["upper", "lower"]


async def test_backpressure_bounds_the_buffer_while_the_database_is_down(
    db: psycopg.Connection[Any], run: str, proxy: PgProxy
) -> None:
    proxy.refusing = True
    writer = AsyncLogWriter(proxy.url, batch_lines=50, max_buffer_lines=500, retry=FAST_RETRY)
    messages = [f"l{i}" for i in range(3000)]
    peak = 0

    async def produce() -> None:
        for m in messages:
            await writer.write(run, m)

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, writer.pending_lines)
            await asyncio.sleep(0.005)

    producer = asyncio.create_task(produce())
    watcher = asyncio.create_task(watch())
    await asyncio.sleep(1.0)
    assert not producer.done()  # blocked: the database is unreachable and the buffer is full
    assert writer.pending_lines == 500
    with pytest.raises(WriterFullError):
        writer.write_nowait(run, "no room")
    proxy.refusing = False
    await asyncio.wait_for(producer, 30)
    await asyncio.wait_for(writer.aclose(), 30)
    watcher.cancel()
    assert peak <= 500 and writer.stats().peak_pending_lines <= 500
    assert writer.stats().retries > 0
    assert_dense(stored(db, run), messages)


async def test_connection_loss_loses_and_duplicates_nothing(
    db_url: str, db: psycopg.Connection[Any], runs: Callable[[int], list[str]]
) -> None:
    ids = runs(3)
    app = "meshlogs-writer-kill-test"
    kills_done = asyncio.Event()
    written: dict[str, int] = dict.fromkeys(ids, 0)

    async def produce(run_id: str) -> None:
        # Write until the killing is over, so that every kill lands on a writer that is busy.
        while not kills_done.is_set() or written[run_id] < 3000:
            await writer.write(run_id, f"{run_id[:4]} {written[run_id]}")
            written[run_id] += 1
            if written[run_id] % 20 == 0:
                await asyncio.sleep(0.002)

    async def kill() -> int:
        killed = 0
        with psycopg.connect(db_url, autocommit=True) as killer:
            for _ in range(15):
                await asyncio.sleep(0.05)
                row = killer.execute(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                    " where application_name = %s",
                    (app,),
                ).fetchone()
                killed += int(row[0]) if row else 0
        kills_done.set()
        return killed

    writer = AsyncLogWriter(db_url, batch_lines=200, application_name=app, retry=FAST_RETRY)
    async with writer:
        _, killed = await asyncio.wait_for(asyncio.gather(asyncio.gather(*map(produce, ids)), kill()), 60)
    assert killed > 0
    assert writer.stats().retries > 0
    for r in ids:
        assert_dense(stored(db, r), [f"{r[:4]} {i}" for i in range(written[r])])


async def test_ambiguous_commit_is_applied_once(
    db: psycopg.Connection[Any], run: str, proxy: PgProxy
) -> None:
    async with AsyncLogWriter(proxy.url, flush_interval=60, retry=FAST_RETRY) as writer:
        for i in range(10):
            await writer.write(run, f"before {i}")
        await writer.flush()
        proxy.drop_reply_after(b"AMBIGUOUS-MARKER")
        await writer.write(run, "AMBIGUOUS-MARKER")
        for i in range(9):
            await writer.write(run, f"after {i}")
        await asyncio.wait_for(writer.flush(), 30)
    # The batch committed, its reply was lost with the connection, the writer retried it with the
    # same key, and the database answered from its batch table instead of appending again.
    assert proxy.replies_dropped == 1
    assert writer.stats().retries >= 1
    expected = [f"before {i}" for i in range(10)] + ["AMBIGUOUS-MARKER"] + [f"after {i}" for i in range(9)]
    assert_dense(stored(db, run), expected)
    row = db.execute("select count(*) from meshlogs.run_log_batches where run_id = %s", (run,)).fetchone()
    assert row == (2,)


async def test_postgres_restart_mid_stream(pg_dir: Path) -> None:
    server = start_embedded(pg_dir, cleanup="stop")
    url = server.url
    apply_migrations(url)
    with psycopg.connect(url, autocommit=True) as conn:
        owner = make_user(conn, "restart@example.com")
        project = make_project(conn, owner)
        workflow = make_workflow(conn, project)
        ids = [make_run(conn, project, workflow) for _ in range(2)]
    policy = RetryPolicy(initial_delay=0.05, max_delay=0.5, max_elapsed=60.0, attempt_timeout=10.0)
    writer = AsyncLogWriter(url, batch_lines=200, max_buffer_lines=2000, retry=policy)
    restarted = asyncio.Event()
    written: dict[str, int] = dict.fromkeys(ids, 0)
    peak = 0

    async def produce(run_id: str) -> None:
        # Keep writing through the outage, and for a while after it.
        nonlocal peak
        after = 0
        while after < 1000:
            await writer.write(run_id, str(written[run_id]))
            written[run_id] += 1
            peak = max(peak, writer.pending_lines)
            if restarted.is_set():
                after += 1
            if written[run_id] % 50 == 0:
                await asyncio.sleep(0.005)

    async def restart() -> None:
        nonlocal server
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.stop)  # fast shutdown: sessions are terminated
        await asyncio.sleep(1.0)
        server = await asyncio.to_thread(start_embedded, pg_dir, cleanup="delete")
        restarted.set()

    try:
        async with writer:
            await asyncio.wait_for(asyncio.gather(produce(ids[0]), produce(ids[1]), restart()), 120)
        assert writer.stats().retries > 0
        assert peak <= 2000
        with psycopg.connect(server.url) as conn:
            for r in ids:
                rows = conn.execute("select seq, message from run_logs where run_id = %s order by seq", (r,))
                assert [(s, m) for s, m in rows] == [(i + 1, str(i)) for i in range(written[r])]
    finally:
        server.stop()


async def test_rejected_line_is_reported_with_its_index_and_the_rest_is_stored(
    db_url: str, db: psycopg.Connection[Any], run: str
) -> None:
    # The database's limit is lower than the client's: the client lets the attrs through, the
    # database refuses that one line, and nothing of its batch is stored by that attempt.
    dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    db.execute(f"alter database {dbname} set meshlogs.max_line_bytes = 1024")
    async with AsyncLogWriter(db_url, flush_interval=60) as writer:
        for i in range(5):
            await writer.write(run, f"l{i}", attrs={"blob": "z" * 3000} if i == 2 else None)
        with pytest.raises(LineRejectedError) as info:
            await writer.flush()
    assert info.value.index == 2
    assert "line 2 of a batch of 5" in str(info.value) and "attrs must be at most 1024 bytes" in str(
        info.value
    )
    assert_dense(stored(db, run), ["l0", "l1", "l3", "l4"])
    assert writer.stats().lines_rejected == 1


async def test_rejections_go_to_the_error_callback(
    db_url: str, db: psycopg.Connection[Any], run: str
) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    db.execute(f"alter database {dbname} set meshlogs.max_line_bytes = 1024")
    errors: list[WriterError] = []
    async with AsyncLogWriter(db_url, flush_interval=60, on_error=errors.append) as writer:
        for i in range(6):
            await writer.write(run, f"l{i}", attrs={"blob": "z" * 3000} if i in (0, 5) else None)
        await writer.flush()  # the callback took the errors: flush does not raise
    assert [type(e) for e in errors] == [LineRejectedError, LineRejectedError]
    assert [e.index for e in errors if isinstance(e, LineRejectedError)] == [0, 4]
    assert_dense(stored(db, run), ["l1", "l2", "l3", "l4"])


async def test_unknown_run_is_a_delivery_error(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    ghost = "00000000-0000-4000-8000-000000000001"
    writer = AsyncLogWriter(db_url, flush_interval=60)
    await writer.write(ghost, "to nowhere")
    await writer.write(run, "fine")
    with pytest.raises(DeliveryError) as info:
        await writer.aclose()
    assert info.value.run_id == ghost and info.value.lines == 1
    assert "does not exist" in str(info.value)
    assert [r["message"] for r in stored(db, run)] == ["fine"]
    assert writer.stats().lines_given_up == 1


async def test_retries_are_bounded_and_loss_is_reported(run: str, proxy: PgProxy) -> None:
    proxy.refusing = True
    policy = RetryPolicy(initial_delay=0.01, max_delay=0.05, max_elapsed=0.5, attempt_timeout=5.0)
    writer = AsyncLogWriter(proxy.url, flush_interval=0.01, retry=policy)
    for i in range(30):
        await writer.write(run, f"l{i}")
    t0 = time.monotonic()
    with pytest.raises(DeliveryError, match="retries exhausted") as info:
        await asyncio.wait_for(writer.aclose(), 20)
    assert time.monotonic() - t0 < 10
    assert writer.stats().lines_given_up == 30
    assert info.value.lines >= 1


async def test_close_timeout_reports_unconfirmed_lines(run: str, proxy: PgProxy) -> None:
    proxy.refusing = True
    writer = AsyncLogWriter(proxy.url, retry=FAST_RETRY)
    for i in range(10):
        await writer.write(run, f"l{i}")
    with pytest.raises(DeliveryError, match="10 lines not confirmed"):
        await writer.aclose(timeout=0.5)


async def test_several_errors_raise_the_first_with_a_note(db_url: str, run: str) -> None:
    ghosts = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(3)]
    writer = AsyncLogWriter(db_url, flush_interval=60)
    for g in ghosts:
        await writer.write(g, "x")
    with pytest.raises(DeliveryError) as info:
        await writer.flush()
    assert any("2 more log writer errors" in n for n in getattr(info.value, "__notes__", []))
    await writer.flush()  # reported once, not again
    await writer.aclose()


async def test_hygiene_end_to_end(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    async with AsyncLogWriter(db_url) as writer:
        await writer.write(run, "nul\x00inside", step="st\x00ep", attrs={"k\x00": ["v\x00"]})
        await writer.write(run, b"bad \xff\xfe utf8 \xc3\xa9")
        await writer.write(run, "lone \ud800 surrogate")
        await writer.write(run, "é" * 70000)
    rows = stored(db, run)
    assert rows[0]["message"] == "nul\ufffdinside"
    assert rows[0]["step"] == "st\ufffdep" and rows[0]["attrs"] == {"k\ufffd": ["v\ufffd"]}
    assert rows[1]["message"] == "bad \ufffd\ufffd utf8 é"
    assert rows[2]["message"] == "lone \ufffd surrogate"
    big = rows[3]["message"]
    assert len(big.encode()) <= 65536
    assert big.endswith(f" … [truncated {140000 - (65536 - 40)} bytes]")
    with pytest.raises(ValueError):
        await writer.write(run, "after close is refused before anything else", level="nope")


async def test_masking_end_to_end(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    async with AsyncLogWriter(db_url, secrets=["token123", "ab"]) as writer:
        assert writer.add_secret("p@ss.w*rd") is True
        assert writer.add_secret("xyz") is False
        await writer.write(run, "plain token123 and \x1b[32mtok\x1b[0men123\x1b[0m")
        await writer.write(run, "regex p@ss.w*rd; short ab stays", step="deploy token123")
        await writer.write(run, "attrs", attrs={"env": {"TOKEN": "token123", "list": ["a", "p@ss.w*rd!"]}})
    rows = stored(db, run)
    assert rows[0]["message"] == "plain *** and \x1b[32m***\x1b[0m"
    assert rows[1]["message"] == "regex ***; short ab stays" and rows[1]["step"] == "deploy ***"
    assert rows[2]["attrs"] == {"env": {"TOKEN": "***", "list": ["a", "***!"]}}
    dump = db.execute(
        "select string_agg(message || coalesce(step, '') || attrs::text, '') from run_logs"
    ).fetchone()
    assert dump is not None and "token123" not in dump[0] and "p@ss.w*rd" not in dump[0]


async def test_writer_is_bound_to_its_loop(db_url: str, run: str) -> None:
    writer = AsyncLogWriter(db_url)
    await writer.write(run, "x")

    def other_loop() -> None:
        async def use() -> None:
            await writer.write(run, "y")

        asyncio.run(use())

    with pytest.raises(WriterError, match="event loop"):
        await asyncio.to_thread(other_loop)
    await writer.aclose()


def test_configuration_is_validated(db_url: str) -> None:
    with pytest.raises(ValueError):
        AsyncLogWriter("")
    with pytest.raises(ValueError):
        AsyncLogWriter(db_url, batch_lines=20000)
    with pytest.raises(ValueError):
        AsyncLogWriter(db_url, connections=0)
    with pytest.raises(ValueError):
        AsyncLogWriter(db_url, max_line_bytes=100)


SCRIPT = """
import asyncio, sys
from meshlogs.writer import AsyncLogWriter

async def main() -> None:
    writer = AsyncLogWriter(sys.argv[1], flush_interval=60)  # lines stay buffered
    for i in range(7):
        await writer.write(sys.argv[2], f"line {i}")
    # returns without aclose(): asyncio.run() cancels the sender tasks

asyncio.run(main())
"""


def test_a_writer_never_closed_says_how_many_lines_it_lost(
    db_url: str, db: psycopg.Connection[Any], run: str, tmp_path: Path
) -> None:
    """An async writer cannot flush once its loop is gone; it must not lose lines silently."""
    script = tmp_path / "forgot_aclose.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), db_url, run], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "cancelled its sender tasks with 7 lines not sent" in proc.stderr
    assert count(db, run) == 0


def test_a_closed_writer_reports_nothing_lost(
    db_url: str, db: psycopg.Connection[Any], run: str, tmp_path: Path
) -> None:
    script = tmp_path / "closed.py"
    script.write_text(SCRIPT.replace("# returns without aclose()", "await writer.aclose()  #"))
    proc = subprocess.run(
        [sys.executable, str(script), db_url, run], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "lines not sent" not in proc.stderr
    assert count(db, run) == 7
