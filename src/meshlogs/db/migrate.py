"""Apply the numbered SQL migrations shipped in ``meshlogs/db/migrations``.

Files are named ``NNNN_what.sql`` and applied in number order, each in its own transaction, and
recorded in ``meshlogs.schema_migrations`` with a checksum. Released files are never edited (fix
forward with a new file): a checksum that no longer matches is a :class:`MigrationError` instead of a
silent divergence between databases. Concurrent runners (two ``serve`` processes starting at once, test
workers) serialize on an advisory lock, so each file is applied exactly once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from meshlogs.errors import MigrationError

__all__ = ["Migration", "apply_migrations", "load_migrations"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6D6C6F67  # "mlog": advisory lock id shared by every migration runner

_HISTORY_DDL = """
create schema if not exists meshlogs;
create table if not exists meshlogs.schema_migrations (
  version int primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null default now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """The shipped migrations in version order.

    Raises:
        MigrationError: a file is misnamed or two files share a number.
    """
    found: dict[int, Migration] = {}
    folder = resources.files("meshlogs.db").joinpath("migrations")
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations are numbered {version:04d}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def apply_migrations(url: str) -> list[Migration]:
    """Apply every pending migration to the database at ``url``; return the ones applied now.

    Raises:
        MigrationError: a migration failed (its transaction is rolled back and later ones are not
            tried), or an applied migration's file changed since.
    """
    migrations = load_migrations()
    applied_now: list[Migration] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
            try:
                with conn.transaction():
                    conn.execute(_HISTORY_DDL)
                rows = conn.execute(
                    "select version, name, checksum from meshlogs.schema_migrations"
                ).fetchall()
                history = {int(v): (str(n), str(c)) for v, n, c in rows}
                for migration in migrations:
                    if migration.version in history:
                        name, checksum = history[migration.version]
                        if checksum != migration.checksum:
                            raise MigrationError(
                                f"migration {migration.version:04d}_{name} was edited after it was "
                                "applied; migrations are immutable, add a new one instead"
                            )
                        continue
                    try:
                        with conn.transaction():
                            conn.execute(migration.sql.encode())
                            conn.execute(
                                "insert into meshlogs.schema_migrations (version, name, checksum)"
                                " values (%s, %s, %s)",
                                (migration.version, migration.name, migration.checksum),
                            )
                    except psycopg.Error as exc:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                        ) from exc
                    applied_now.append(migration)
            finally:
                conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    except psycopg.OperationalError as exc:
        raise MigrationError(f"cannot connect to the database: {exc}") from exc
    return applied_now
