"""LogWriter (threads) and MeshlogsHandler (logging) against a real Postgres, and the atexit flush."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meshlogs.errors import LineRejectedError, WriterClosedError, WriterFullError
from meshlogs.writer import LogWriter, MeshlogsHandler, level_name
from tests.writer.conftest import FAST_RETRY, ThreadedProxy, assert_dense, count, stored, wait_until_sync

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"meshlogs.test.{os.urandom(4).hex()}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()


def test_sync_writer_order_and_close(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    messages = [f"s{i}" for i in range(3000)]
    with LogWriter(db_url, batch_lines=500) as writer:
        for m in messages:
            writer.write(run, m)
        writer.flush(timeout=30)
        assert count(db, run) == 3000
        writer.write(run, "last")
    assert_dense(stored(db, run), [*messages, "last"])
    assert writer.closed and not writer.thread.is_alive()
    with pytest.raises(WriterClosedError):
        writer.write(run, "late")
    writer.close()  # idempotent


def test_sync_writer_from_many_threads(
    db_url: str, db: psycopg.Connection[Any], runs: Callable[[int], list[str]]
) -> None:
    ids = runs(4)
    with LogWriter(db_url, batch_lines=200, max_buffer_lines=1000) as writer:

        def produce(run_id: str) -> None:
            for i in range(2500):
                writer.write(run_id, f"{i}")

        threads = [threading.Thread(target=produce, args=(r,)) for r in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive()
        assert writer.stats().peak_pending_lines <= 1000
    for r in ids:
        assert_dense(stored(db, r), [str(i) for i in range(2500)])


def test_sync_writer_blocks_then_times_out_when_full(run: str, sync_proxy: ThreadedProxy) -> None:
    sync_proxy.set_refusing(True)
    writer = LogWriter(sync_proxy.url, batch_lines=10, max_buffer_lines=20, retry=FAST_RETRY)
    try:
        for i in range(20):
            writer.write(run, f"{i}")
        with pytest.raises(WriterFullError):
            writer.write_nowait(run, "x")
        with pytest.raises(WriterFullError, match="still full after 0.2 s"):
            writer.write(run, "x", timeout=0.2)
        assert writer.pending_lines == 20
    finally:
        sync_proxy.set_refusing(False)
        writer.close(timeout=30)
    assert writer.stats().lines_delivered == 20


def test_sync_writer_raises_background_errors_on_flush(
    db_url: str, db: psycopg.Connection[Any], run: str
) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    db.execute(f"alter database {dbname} set meshlogs.max_line_bytes = 1024")
    with LogWriter(db_url, flush_interval=60) as writer:
        writer.write(run, "ok")
        writer.write(run, "bad", attrs={"blob": "q" * 2000})
        with pytest.raises(LineRejectedError) as info:
            writer.flush(timeout=30)
        assert info.value.index == 1
    assert [r["message"] for r in stored(db, run)] == ["ok"]


def test_level_mapping() -> None:
    assert level_name(logging.DEBUG) == "debug"
    assert level_name(5) == "debug"
    assert level_name(logging.INFO) == "info"
    assert level_name(logging.WARNING) == "warn"
    assert level_name(logging.ERROR) == "error"
    assert level_name(logging.CRITICAL) == "error"


def test_handler_levels_exceptions_and_extra(
    db_url: str, db: psycopg.Connection[Any], runs: Callable[[int], list[str]], logger: logging.Logger
) -> None:
    default_run, other_run = runs(2)
    handler = MeshlogsHandler(dsn=db_url, run_id=default_run, step="main", secrets=["sekrit-value"])
    logger.addHandler(handler)

    class Opaque:
        def __repr__(self) -> str:
            return "Opaque()"

    logger.debug("dbg %d", 1)
    logger.info("info")
    logger.warning("warned", extra={"step": "deploy", "attempt": 3, "obj": Opaque(), "tags": ("a", "b")})
    try:
        raise RuntimeError("boom sekrit-value")
    except RuntimeError:
        logger.exception("it failed")
    logger.critical("crit", extra={"run_id": other_run})
    handler.close()
    logger.removeHandler(handler)

    rows = stored(db, default_run)
    assert [(r["level"], r["step"]) for r in rows] == [
        ("debug", "main"),
        ("info", "main"),
        ("warn", "deploy"),
        ("error", "main"),
    ]
    assert rows[0]["message"] == "dbg 1"
    assert rows[2]["attrs"] == {"attempt": 3, "obj": "Opaque()", "tags": ["a", "b"]}
    tb = rows[3]["message"]
    assert tb.startswith("it failed\nTraceback (most recent call last):")
    assert "RuntimeError: boom ***" in tb and "sekrit-value" not in tb
    (crit,) = stored(db, other_run)
    assert crit["level"] == "error" and crit["message"] == "crit" and crit["attrs"] == {}


def test_handler_without_run_skips_records(
    db_url: str, db: psycopg.Connection[Any], run: str, logger: logging.Logger
) -> None:
    with LogWriter(db_url) as writer:
        handler = MeshlogsHandler(writer)
        logger.addHandler(handler)
        logger.info("no run here")
        logger.info("this one", extra={"run_id": run})
        handler.flush()
        assert handler.skipped == 1
        logger.removeHandler(handler)
        handler.close()  # a shared writer stays open
        assert not writer.closed
    assert [r["message"] for r in stored(db, run)] == ["this one"]


def test_handler_drops_oversized_extras_with_a_note(
    db_url: str, db: psycopg.Connection[Any], run: str, logger: logging.Logger
) -> None:
    handler = MeshlogsHandler(dsn=db_url, run_id=run, max_line_bytes=1024)
    logger.addHandler(handler)
    logger.info("big extra", extra={"blob": "x" * 5000})
    handler.close()
    (row,) = stored(db, run)
    assert row["message"] == "big extra"
    assert "extra fields dropped" in row["attrs"]["meshlogs"]


def test_handler_arguments_are_checked(db_url: str) -> None:
    with pytest.raises(ValueError):
        MeshlogsHandler()
    with LogWriter(db_url) as writer:
        with pytest.raises(ValueError):
            MeshlogsHandler(writer, dsn=db_url)
        with pytest.raises(ValueError):
            MeshlogsHandler(writer, batch_lines=5)


def run_script(code: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unclosed_writer_is_flushed_at_exit(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    result = run_script(
        f"""
        import sys
        from meshlogs.writer import LogWriter
        writer = LogWriter(sys.argv[1], flush_interval=60)
        for i in range(500):
            writer.write("{run}", f"exit {{i}}")
        # no close(): the atexit hook must deliver these
        """,
        db_url,
    )
    assert result.returncode == 0, result.stderr
    assert_dense(stored(db, run), [f"exit {i}" for i in range(500)])


def test_handler_is_flushed_at_exit(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    result = run_script(
        f"""
        import logging, sys
        from meshlogs.writer import MeshlogsHandler
        log = logging.getLogger("worker")
        log.setLevel(logging.INFO)
        log.addHandler(MeshlogsHandler(dsn=sys.argv[1], run_id="{run}", flush_interval=60))
        for i in range(200):
            log.info("via logging %d", i)
        """,
        db_url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert_dense(stored(db, run), [f"via logging {i}" for i in range(200)])


def test_flush_at_exit_waits_for_a_slow_database(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    # Appends to this run are blocked (its counter row is locked) while the script exits.
    db.execute("insert into run_log_seq (run_id, last_seq) values (%s, 0) on conflict do nothing", (run,))
    with psycopg.connect(db_url) as locker:
        locker.execute("select 1 from run_log_seq where run_id = %s for update", (run,))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import sys\nfrom meshlogs.writer import LogWriter\nw = LogWriter(sys.argv[1])\n"
                f"[w.write('{run}', str(i)) for i in range(50)]\n",
                db_url,
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until_sync(
            lambda: (
                db.execute(
                    "select count(*) from pg_stat_activity where application_name = 'meshlogs-writer'"
                    " and wait_event_type = 'Lock'"
                ).fetchone()
                == (1,)
            ),
            timeout=30,
        )
        assert proc.poll() is None  # still exiting: blocked in the atexit flush
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert_dense(stored(db, run), [str(i) for i in range(50)])
