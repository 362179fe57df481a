"""``postgres_changes`` frames: encode a change once, splice it into every subscriber's frame.

A change delivered to N channels differs between their frames only in the topic, the join ref and
the binding ``ids``; the ``data`` object, which is nearly all of the bytes, is identical for every
subscriber that may see the same columns. So the data is encoded once (:func:`encode_change`) and
each frame is three byte strings joined (``FANOUT.md`` §5.2)::

    V2: ["<join_ref>",null,"<topic>","postgres_changes",{"ids":  [1,2]  ,"data":<data>}]
    V1: {"topic":"<topic>","event":"postgres_changes","payload":{"ids":  [1,2]  ,"data":<data>},"ref":null}
        └──────────── prefix: per channel, cached ────────────┘  └ids┘  └─ tail: per change ─┘

The ``data`` object is Supabase's (``adapters/changes.ex``): ``schema, table, commit_timestamp, type,
errors, columns`` plus ``record`` (INSERT, UPDATE) and ``old_record`` (UPDATE, DELETE), never
``null`` (``{}`` instead). ``commit_timestamp`` is UTC with millisecond precision and a ``Z``.
Row values are written as Postgres' ``to_jsonb`` writes them: numbers as numbers (``Decimal``
exactly), ``timestamptz`` as ISO 8601 in UTC (``2026-09-01T10:00:00.123456+00:00``), ``timestamp``
without offset, non-finite floats and numerics as the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"``, ``bytea`` as ``"\\\\x..."`` hex text, uuids as text.

Frames are bytes meant for a WebSocket *text* frame (``Opcode.TEXT``); they are valid UTF-8.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson

from meshlogs.protocol.phoenix import V2, Vsn

__all__ = [
    "ChangeType",
    "Column",
    "EncodedChange",
    "encode_change",
    "encode_ids",
    "format_commit_timestamp",
    "frame_prefix",
]

ChangeType = Literal["INSERT", "UPDATE", "DELETE"]

_UTC = dt.UTC
_TAIL_V1 = b'},"ref":null}'
_TAIL_V2 = b"}]"


@dataclass(frozen=True, slots=True)
class Column:
    """One entry of ``data.columns``.

    Attributes:
        name: the column name.
        type: ``pg_type.typname`` (``int8``, ``text``, ``timestamptz``, ``_text`` for arrays ...).
    """

    name: str
    type: str


@dataclass(frozen=True, slots=True, eq=False)
class EncodedChange:
    """A change whose ``data`` JSON is encoded, ready to be spliced into many frames.

    Attributes:
        schema: the table's schema.
        table: the table name.
        type: ``INSERT``, ``UPDATE`` or ``DELETE``.
        data: the ``data`` JSON object, encoded once.
    """

    schema: str
    table: str
    type: ChangeType
    data: bytes
    _tail_v1: bytes
    _tail_v2: bytes

    def frame(self, prefix: bytes, ids: Sequence[int], vsn: Vsn) -> bytes:
        """One subscriber's complete frame.

        Args:
            prefix: the channel's :func:`frame_prefix` (same ``vsn``).
            ids: the binding ids of that channel that match this change (non-empty).
            vsn: the socket's serializer version.

        Returns:
            The frame's bytes, to be sent as a text frame.
        """
        tail = self._tail_v2 if vsn is V2 else self._tail_v1
        ids_json = b"[%d]" % ids[0] if len(ids) == 1 else encode_ids(ids)
        return b"".join((prefix, ids_json, tail))


def frame_prefix(vsn: Vsn, topic: str, join_ref: str | None) -> bytes:
    """The per-channel start of every ``postgres_changes`` frame, up to the ``ids`` list.

    Compute it once per join: it changes only when the join ref does.

    Args:
        vsn: the socket's serializer version.
        topic: the channel topic.
        join_ref: the channel's current join ref (only V2 carries it).

    Returns:
        The prefix bytes.
    """
    topic_json = orjson.dumps(topic)
    if vsn is V2:
        return b"".join((b"[", orjson.dumps(join_ref), b",null,", topic_json, b',"postgres_changes",{"ids":'))
    return b"".join((b'{"topic":', topic_json, b',"event":"postgres_changes","payload":{"ids":'))


def encode_ids(ids: Sequence[int]) -> bytes:
    """The JSON array of binding ids, without going through a JSON encoder.

    Args:
        ids: integers.

    Returns:
        ``b"[1,2]"``.
    """
    if len(ids) == 1:
        return b"[%d]" % ids[0]
    return b"[" + b",".join([b"%d" % ident for ident in ids]) + b"]"


def format_commit_timestamp(value: dt.datetime | str) -> str:
    """``commit_timestamp`` as Supabase writes it: UTC, milliseconds, ``Z``.

    Args:
        value: the commit time (a naive datetime is taken as UTC), or an already formatted string.

    Returns:
        e.g. ``"2026-09-01T10:00:00.123Z"``.
    """
    if isinstance(value, str):
        return value
    if value.tzinfo is _UTC:
        value = value.replace(tzinfo=None)
    elif value.tzinfo is not None:
        value = value.astimezone(_UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def _non_finite(number: float | Decimal) -> str:
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _default(value: Any) -> Any:
    # orjson calls this for types it does not know; keep to_jsonb's spelling.
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value)) if value.is_finite() else _non_finite(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    return str(value)


def _column_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return _non_finite(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None and value.utcoffset():
        return value.astimezone(_UTC)
    return value


def _row(record: Mapping[str, Any] | None) -> dict[str, Any]:
    if not record:
        return {}
    return {name: _column_value(value) for name, value in record.items()}


def encode_change(
    *,
    schema: str,
    table: str,
    type: ChangeType,
    commit_timestamp: dt.datetime | str,
    columns: Sequence[Column],
    record: Mapping[str, Any] | None = None,
    old_record: Mapping[str, Any] | None = None,
    errors: Sequence[str] | None = None,
) -> EncodedChange:
    """Encode a change's ``data`` object once.

    Encode once per distinct set of visible columns: subscribers whose role may not read a column,
    or who asked for ``select``, need their own :class:`EncodedChange` without it.

    Args:
        schema: the table's schema.
        table: the table name.
        type: ``INSERT``, ``UPDATE`` or ``DELETE``.
        commit_timestamp: when the transaction committed.
        columns: the visible columns in attribute order.
        record: the new row (INSERT, UPDATE); ignored for DELETE.
        old_record: the old row or its identity (UPDATE, DELETE); ignored for INSERT.
        errors: ``None`` normally, else messages such as ``"Error 413: Payload Too Large"``.

    Returns:
        The encoded change.
    """
    data: dict[str, Any] = {
        "schema": schema,
        "table": table,
        "commit_timestamp": format_commit_timestamp(commit_timestamp),
        "type": type,
        "errors": list(errors) if errors is not None else None,
        "columns": [{"name": column.name, "type": column.type} for column in columns],
    }
    if type != "DELETE":
        data["record"] = _row(record)
    if type != "INSERT":
        data["old_record"] = _row(old_record)
    encoded = orjson.dumps(data, default=_default)
    middle = b',"data":' + encoded
    return EncodedChange(
        schema=schema,
        table=table,
        type=type,
        data=encoded,
        _tail_v1=middle + _TAIL_V1,
        _tail_v2=middle + _TAIL_V2,
    )
