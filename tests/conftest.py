"""Shared fixtures: a real Postgres for the whole session, one fresh database per test that wants one.

The database is the embedded Postgres (started in a temporary data dir and deleted afterwards), or the
server at ``MESHLOGS_TEST_DSN`` when that is set (it must have wal_level=logical). Migrations are applied
once to a template database; each ``db_url`` is a ``CREATE DATABASE ... TEMPLATE`` copy (about 50 ms),
so tests never see each other's rows, slots or publications.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from meshlogs.db.embedded import start_embedded
from meshlogs.db.migrate import apply_migrations

TEMPLATE = "meshlogs_test_template"


def url_for_database(url: str, database: str) -> str:
    """The same server as ``url``, another database."""
    info = conninfo_to_dict(url)
    info["dbname"] = database
    return make_conninfo("", **{k: v for k, v in info.items() if v is not None})


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """Superuser URL of the session's Postgres server (``postgres`` database)."""
    dsn = os.environ.get("MESHLOGS_TEST_DSN")
    if dsn:
        yield dsn
        return
    # Not under pytest's basetemp: pytest prunes old basetemps, which would pull the cluster out from
    # under a concurrent session.
    data_dir = Path(tempfile.mkdtemp(prefix="meshlogs-test-pg-"))
    server = start_embedded(data_dir, cleanup="delete")
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def template_url(pg_admin_url: str) -> str:
    """A database with every migration applied, used as the template for per-test databases."""
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"drop database if exists {TEMPLATE} with (force)")
        conn.execute(f"create database {TEMPLATE}")
    url = url_for_database(pg_admin_url, TEMPLATE)
    apply_migrations(url)
    return url


def create_test_database(pg_admin_url: str, template_url: str) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"create database {name} template {TEMPLATE} strategy file_copy")
    return url_for_database(pg_admin_url, name)


def drop_test_database(pg_admin_url: str, url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        # A server under test may have just closed its replication connection; its walsender (and
        # temporary slot) can outlive it by a moment. Terminate them, then drop what is left.
        deadline = time.monotonic() + 30
        while True:
            conn.execute(
                "select pg_terminate_backend(active_pid) from pg_replication_slots"
                " where database = %s and active",
                (name,),
            )
            conn.execute(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots"
                " where database = %s and not active",
                (name,),
            )
            try:
                conn.execute(f"drop database if exists {name} with (force)")
                return
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture
def db_url(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """Superuser URL of a fresh, fully migrated database for this test."""
    url = create_test_database(pg_admin_url, template_url)
    try:
        yield url
    finally:
        drop_test_database(pg_admin_url, url)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit superuser connection to this test's database."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the browser tests and run them last.

    pytest-playwright's sync API keeps a session-wide Playwright whose event loop stays marked as
    running in the main thread until the session ends; any asyncio test collected after it would then
    fail with "cannot be called from a running event loop". A stable sort keeps every other order.
    """
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        if e2e in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
