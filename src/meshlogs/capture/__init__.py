"""Change capture: Postgres logical replication (pgoutput) → committed transactions in commit order.

Layers, bottom up (all but ``source`` are pure: bytes in, values out, no I/O)::

    lsn        Lsn, the WAL position value type
    walproto   CopyData of the replication protocol: XLogData, keepalive, standby status
    pgoutput   pgoutput messages: Begin, Relation, Insert, Update, Delete, Truncate, Commit...
    pgtypes    built-in type OID → name
    txbuilder  messages → Transaction(changes=(Change, ...)), typed values, bounded chunks
    source     ChangeSource protocol + ReplicationSource (psycopg 3, asyncio, temporary slot)

The gateway only needs the names re-exported here.
"""

from __future__ import annotations

from meshlogs.capture.lsn import Lsn
from meshlogs.capture.source import (
    DEFAULT_PUBLICATIONS,
    ChangeEvent,
    ChangeSource,
    ReplicationSource,
    SourceState,
    SourceStatus,
    StreamReset,
)
from meshlogs.capture.txbuilder import Change, ChangeKind, Record, Transaction

__all__ = [
    "DEFAULT_PUBLICATIONS",
    "Change",
    "ChangeEvent",
    "ChangeKind",
    "ChangeSource",
    "Lsn",
    "Record",
    "ReplicationSource",
    "SourceState",
    "SourceStatus",
    "StreamReset",
    "Transaction",
]
