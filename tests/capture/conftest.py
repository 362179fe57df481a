"""Real pgoutput bytes from the embedded Postgres, for the pure decoder tests.

:func:`slot` opens a temporary logical slot on a connection; :meth:`Slot.take` returns the raw pgoutput
messages (``pg_logical_slot_get_binary_changes`` with ``proto_version '1'``) of everything committed
since the last call. Changes can be written on the same connection (it is autocommit) or any other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from meshlogs.capture import pgoutput
from meshlogs.capture.pgoutput import PgOutputMessage
from meshlogs.capture.txbuilder import Transaction, TxBuilder


@dataclass
class Slot:
    conn: psycopg.Connection[Any]
    name: str
    publications: str
    messages: bool = False

    def take(self) -> list[bytes]:
        """Raw pgoutput messages committed since the previous call, in stream order."""
        options = ["proto_version", "1", "publication_names", self.publications]
        if self.messages:
            options += ["messages", "true"]
        rows = self.conn.execute(
            "select data from pg_logical_slot_get_binary_changes(%s, null, null, variadic %s::text[])",
            (self.name, options),
        ).fetchall()
        return [bytes(row[0]) for row in rows]

    def decoded(self) -> list[PgOutputMessage]:
        return [pgoutput.decode(raw) for raw in self.take()]

    def transactions(self, **builder_options: Any) -> list[Transaction]:
        builder = TxBuilder(**builder_options)
        out: list[Transaction] = []
        for raw in self.take():
            out.extend(builder.receive(pgoutput.decode(raw), len(raw)))
        return out


def open_slot(
    conn: psycopg.Connection[Any],
    publications: str = "supabase_realtime,meshlogs_authz",
    *,
    messages: bool = False,
) -> Slot:
    name = "cap_" + uuid.uuid4().hex[:12]
    conn.execute("select pg_create_logical_replication_slot(%s, 'pgoutput', true)", (name,))
    return Slot(conn, name, publications, messages)


def drop_own_slots(conn: psycopg.Connection[Any]) -> None:
    """Drop the temporary slots this connection holds, so the database can be dropped at once."""
    conn.execute(
        "select pg_drop_replication_slot(slot_name) from pg_replication_slots"
        " where active_pid = pg_backend_pid()"
    )


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """As the root fixture, but it drops its temporary slots first: a closing backend releases them
    asynchronously, and DROP DATABASE refuses a database with an active slot."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn
        drop_own_slots(conn)


@pytest.fixture
def slot(db: psycopg.Connection[Any]) -> Iterator[Slot]:
    """A temporary pgoutput slot on this test's database, streaming both meshlogs publications."""
    yield open_slot(db)
