"""Migrations: fresh database, re-run as a no-op, edits detected, a Supabase-shaped database left
intact, and Debian's PostgreSQL 15."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from meshlogs.db.database import check_server
from meshlogs.db.embedded import start_embedded
from meshlogs.db.migrate import apply_migrations, load_migrations
from meshlogs.errors import DatabaseError, MigrationError
from tests.conftest import url_for_database
from tests.factories import append, make_world


def test_files_are_numbered_and_ordered() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert migrations[0].version == 1


@pytest.fixture
def empty_url(pg_admin_url: str) -> Iterator[str]:
    name = "e_" + os.urandom(6).hex()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    url = url_for_database(pg_admin_url, name)
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"drop database {name} with (force)")


def test_fresh_then_rerun_is_a_noop(empty_url: str) -> None:
    applied = apply_migrations(empty_url)
    assert [m.version for m in applied] == [m.version for m in load_migrations()]
    assert apply_migrations(empty_url) == []
    with psycopg.connect(empty_url) as conn:
        count = conn.execute("select count(*) from meshlogs.schema_migrations").fetchone()
        assert count == (len(applied),)
        tables = {
            r[0]
            for r in conn.execute(
                "select tablename from pg_publication_tables where pubname = 'supabase_realtime'"
            )
        }
        assert tables == {"run_logs", "workflow_runs"}
        assert conn.execute(
            "select count(*) from pg_publication_tables where tablename = 'run_log_seq'"
        ).fetchone() == (0,)


def test_edited_migration_is_detected(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update meshlogs.schema_migrations set checksum = 'x' where version = 3")
    with pytest.raises(MigrationError, match="was edited after it was applied"):
        apply_migrations(db_url)


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(MigrationError, match="cannot connect"):
        apply_migrations("postgresql://nobody@/nowhere?host=/nonexistent-dir")


# What a hosted Supabase project already has before our migrations run (abridged but faithful in the
# parts we touch: role attributes, auth.uid() reading the old single-claim setting first, a wider
# auth.users, an empty supabase_realtime publication).
SUPABASE_PRELUDE = """
create role anon nologin noinherit;
create role authenticated nologin noinherit;
create role service_role nologin noinherit bypassrls;
create role authenticator noinherit login;
grant anon, authenticated, service_role to authenticator;
create schema auth;
create table auth.users (
  instance_id uuid, id uuid primary key, aud varchar(255), role varchar(255), email varchar(255) unique,
  encrypted_password varchar(255), email_confirmed_at timestamptz, invited_at timestamptz,
  confirmation_token varchar(255), recovery_token varchar(255), last_sign_in_at timestamptz,
  raw_app_meta_data jsonb, raw_user_meta_data jsonb, is_super_admin bool,
  created_at timestamptz, updated_at timestamptz, phone text unique, is_sso_user bool not null default false
);
create function auth.uid() returns uuid language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $$;
comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
create function auth.role() returns text language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text $$;
create function auth.jwt() returns jsonb language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb $$;
create publication supabase_realtime;
"""


def test_supabase_shaped_database_is_left_alone(tmp_path: Path) -> None:
    # Roles are cluster-wide, so this needs a cluster of its own where none of them exist yet.
    server = start_embedded(tmp_path, cleanup="delete")
    try:
        url = server.url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SUPABASE_PRELUDE)
        apply_migrations(url)
        with psycopg.connect(url, autocommit=True) as conn:
            comment = conn.execute("select obj_description('auth.uid()'::regprocedure)").fetchone()
            assert comment == ("Deprecated. Use auth.jwt() -> 'sub' instead.",)
            columns = {
                r[0]
                for r in conn.execute(
                    "select column_name from information_schema.columns"
                    " where table_schema = 'auth' and table_name = 'users'"
                )
            }
            assert {"instance_id", "is_sso_user", "phone"} <= columns
            assert conn.execute(
                "select rolbypassrls from pg_roles where rolname = 'service_role'"
            ).fetchone() == (True,)
            world = make_world(conn)
            assert append(conn, world.run_a, [{"level": "info", "message": "on supabase"}]) == 3
            tables = {
                r[0]
                for r in conn.execute(
                    "select tablename from pg_publication_tables where pubname = 'supabase_realtime'"
                )
            }
            assert tables == {"run_logs", "workflow_runs"}
            with conn.transaction(force_rollback=True):
                conn.execute("set local role authenticated")
                conn.execute(
                    "select set_config('request.jwt.claims', %s, true)",
                    (f'{{"sub":"{world.outsider}","role":"authenticated"}}',),
                )
                assert conn.execute("select count(*) from run_logs").fetchone() == (1,)
    finally:
        server.stop()


DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def debian_pg15() -> Iterator[str]:
    """A private PostgreSQL 15 cluster from Debian's binaries (the ones pg_ctlcluster drives), run as
    the ``postgres`` OS user in a temporary directory with wal_level=logical."""
    if not (DEBIAN_BIN / "initdb").exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's postgresql-15 is not installed; .ci/run installs it")
        pytest.skip("Debian's postgresql-15 is not installed")
    base = Path(tempfile.mkdtemp(prefix="pg15-"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    as_pg: list[str] = []
    if os.geteuid() == 0:  # Postgres refuses to run as root: use Debian's postgres user
        shutil.chown(data, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *as_pg,
            str(DEBIAN_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    opts = f"-c wal_level=logical -c listen_addresses='' -c unix_socket_directories={data}"
    subprocess.run(
        [
            *as_pg,
            str(DEBIAN_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-t",
            "60",
            "-l",
            str(data / "log"),
            "-o",
            opts,
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"postgresql://postgres@/postgres?host={data}"
    finally:
        subprocess.run(
            [*as_pg, str(DEBIAN_BIN / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.debian_pg
def test_debian_postgresql_15(debian_pg15: str) -> None:
    check_server(debian_pg15)
    with psycopg.connect(debian_pg15) as conn:
        assert conn.info.server_version // 10000 == 15
    applied = apply_migrations(debian_pg15)
    assert len(applied) == len(load_migrations())
    assert apply_migrations(debian_pg15) == []
    with psycopg.connect(debian_pg15, autocommit=True) as conn:
        world = make_world(conn)
        assert append(conn, world.run_a, [{"level": "info", "message": "pg15"}], key="k") == 3
        assert append(conn, world.run_a, [{"level": "info", "message": "pg15"}], key="k") == 3
        with conn.transaction(force_rollback=True):
            conn.execute("set local role authenticated")
            conn.execute(
                "select set_config('request.jwt.claims', %s, true)", (f'{{"sub":"{world.viewer}"}}',)
            )
            assert len(conn.execute("select * from run_logs").fetchall()) == 3


def test_server_without_logical_wal_is_refused(pg_admin_url: str) -> None:
    with psycopg.connect(pg_admin_url) as conn:
        assert conn.execute("show wal_level").fetchone() == ("logical",)
    check_server(pg_admin_url)  # passes on ours
    with pytest.raises(DatabaseError, match="cannot connect"):
        check_server("postgresql://nobody@/nowhere?host=/nonexistent-dir")
