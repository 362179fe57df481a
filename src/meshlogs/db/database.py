"""Which Postgres a command talks to: the configured URL, or the embedded one in the data dir."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg

from meshlogs.config import Settings
from meshlogs.db.embedded import start_embedded
from meshlogs.errors import DatabaseError

__all__ = ["MIN_SERVER_VERSION", "check_server", "embedded_url_guess", "open_database"]

MIN_SERVER_VERSION = 150000


@contextlib.contextmanager
def open_database(settings: Settings) -> Iterator[str]:
    """Yield a database URL for the duration of a command.

    With ``MESHLOGS_DATABASE_URL`` set, that URL (after checking the server can do what meshlogs
    needs). Otherwise the embedded Postgres in the data dir is started, or reused if it is already
    running, and released when the block exits: it stops if this command was its last holder.
    """
    if settings.database_url:
        check_server(settings.database_url)
        yield settings.database_url
        return
    server = start_embedded(Path(settings.data_dir))
    try:
        yield server.url
    finally:
        server.stop()


def embedded_url_guess(settings: Settings) -> str:
    """The URL the embedded Postgres has (or will have) without starting it, for ``meshlogs keys``."""
    pgdata = Path(settings.data_dir).expanduser().resolve() / "pgdata"
    return f"postgresql://postgres:@/postgres?host={pgdata}"


def check_server(url: str) -> None:
    """Refuse servers older than 15 or without ``wal_level=logical``, with a message saying why.

    Raises:
        DatabaseError: unreachable, too old, or not configured for logical replication.
    """
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            version = conn.info.server_version
            row = conn.execute("select current_setting('wal_level')").fetchone()
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to {_redact(url)}: {exc}") from exc
    if version < MIN_SERVER_VERSION:
        raise DatabaseError(f"meshlogs needs PostgreSQL >= 15, this server is {version}")
    if row is None or row[0] != "logical":
        raise DatabaseError(
            "meshlogs needs wal_level=logical (set it in postgresql.conf or with "
            "`ALTER SYSTEM SET wal_level = logical` and restart Postgres)"
        )


def _redact(url: str) -> str:
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the database"
    if "password" in info:
        info["password"] = "***"
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in info.items() if v is not None})
