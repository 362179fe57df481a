"""Pure fold from decoded pgoutput messages to committed transactions of typed row changes.

:class:`TxBuilder` receives the messages of one replication session in stream order
(``Begin, Relation?, Type?, Insert|Update|Delete|Truncate..., Commit``) and returns
:class:`Transaction` values (electric's ``TransactionBuilder.build/2``, as a class with a
``receive()`` method). It keeps the session's relation and type caches; a new session needs a new
builder, because Postgres resends Relation messages per session.

Values, converted from pgoutput's text format by the column's type:

=================================  =====================================================
``int2 int4 int8 oid``             ``int``
``bool``                           ``bool``
``float4 float8``                  ``float`` (``NaN``/``Infinity`` become float nan/inf)
``numeric``                        ``int`` when integral and within int64; ``float`` when
                                   the float prints back as the same number (``1.50`` →
                                   1.5, ``0.1`` → 0.1); otherwise the text as sent
                                   (more digits than a double holds, ``NaN``,
                                   ``Infinity``), so no digit is ever silently lost
``json jsonb``                     parsed (orjson): dict, list, str, int, float, bool, None
everything else                    the text exactly as Postgres sent it (``text``,
                                   ``uuid``, ``timestamptz``, ``date``, ``bytea`` as
                                   ``\\x...``, arrays as ``{a,"b c"}``, enums)
SQL NULL                           ``None``
domains                            as their base type: pgoutput announces a domain's OID
                                   with a Type message naming the base type (``int4``), so
                                   ``columns`` says ``int4`` and the value is an ``int``
binary-format values               raw ``bytes`` (meshlogs never asks for ``binary``)
=================================  =====================================================

Unchanged TOASTed values. An UPDATE that leaves a large (TOASTed) value alone sends it as ``u``, not
its value. The builder takes it from the old tuple when Postgres sent one (REPLICA IDENTITY FULL, as
``workflow_runs``, ``projects`` and ``project_members`` have); otherwise the column is **omitted**
from ``record`` (never set to ``None``, which would be a lie). ``u`` columns of an old tuple are
omitted from ``old_record``.

old_record. UPDATE and DELETE carry the old row when the table has REPLICA IDENTITY FULL (every
column), or its key columns only when Postgres sent a key tuple (DELETE with the default identity, or
an UPDATE that changed the key). An UPDATE of a default-identity table that kept its key has
``old_record=None``.

Bounded (STYLE §8.2 rule 3). A transaction is emitted in chunks of at most ``max_changes`` changes
and about ``max_bytes`` bytes of pgoutput, so memory never grows with the transaction: when a change
would overflow the current chunk, that chunk goes out with ``final=False`` and the next one starts
(``part`` counts 0, 1, 2...). Transactions with pgoutput proto_version 1 are only sent after they
committed, so every chunk is committed data. The last chunk has ``final=True`` and the real
``end_lsn``; a non-final chunk does not know it yet and carries ``end_lsn == commit_lsn``. A chunk is
emitted only once the next change arrives, so the final chunk is never empty unless the transaction
is (a transaction touching only unpublished tables, or only sending Origin/Message).

Protocol violations (a change outside Begin/Commit, an unknown relation, a tuple whose width differs
from its Relation, a Commit that does not match its Begin, a value that does not parse as its type)
raise :class:`~meshlogs.errors.DecodeError`; the builder is then unusable and the session must be
restarted.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from meshlogs.capture._frozen import fast_init
from meshlogs.capture.lsn import Lsn
from meshlogs.capture.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    BinaryValue,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    PgOutputMessage,
    Relation,
    Truncate,
    TupleData,
    Type,
    Update,
)
from meshlogs.capture.pgtypes import BUILTIN_TYPE_NAMES
from meshlogs.capture.walproto import from_pg_time
from meshlogs.errors import DecodeError

__all__ = [
    "DEFAULT_MAX_CHUNK_BYTES",
    "DEFAULT_MAX_CHANGES",
    "Change",
    "ChangeKind",
    "Record",
    "Transaction",
    "TxBuilder",
    "TypeLookup",
    "convert_numeric",
]

#: Default bound on the changes of one emitted chunk.
DEFAULT_MAX_CHANGES: Final = 1000
#: Default bound on the pgoutput bytes behind one emitted chunk.
DEFAULT_MAX_CHUNK_BYTES: Final = 8 * 1024 * 1024

#: A row as column name → Python value (see the module docstring for the conversions).
Record = dict[str, Any]
#: Resolves a type OID the builder does not know to its ``typname`` (or ``None``).
TypeLookup = Callable[[int], "str | None"]


class ChangeKind(enum.StrEnum):
    """What happened to the row(s); the values are Supabase's ``eventType`` strings."""

    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    TRUNCATE = "TRUNCATE"


@fast_init
@dataclass(frozen=True, slots=True)
class Change:
    """One row change (or one truncated table) inside a transaction.

    Attributes:
        schema: the table's schema (``public``).
        table: the table's name.
        kind: INSERT, UPDATE, DELETE or TRUNCATE.
        record: the new row (INSERT, UPDATE); ``None`` for DELETE and TRUNCATE.
        old_record: the old row or its key (UPDATE, DELETE), see the module docstring; else ``None``.
        columns: ``(name, type name)`` of every column of the table, in table order, shared by all
            changes of the table in a session.
    """

    schema: str
    table: str
    kind: ChangeKind
    record: Record | None
    old_record: Record | None
    columns: tuple[tuple[str, str], ...]


@fast_init
@dataclass(frozen=True, slots=True)
class Transaction:
    """A committed transaction, or one chunk of a large one.

    Attributes:
        xid: the transaction id.
        commit_lsn: WAL position of the commit record; orders transactions (commit order).
        end_lsn: WAL position just after the commit; what a consumer acknowledges. On a non-final
            chunk it equals ``commit_lsn`` (the end is not known yet).
        commit_time: commit timestamp (aware, UTC) as recorded by Postgres.
        changes: the row changes in the order they happened.
        part: 0 for the first (often only) chunk of the transaction, then 1, 2...
        final: this chunk ends the transaction.
    """

    xid: int
    commit_lsn: Lsn
    end_lsn: Lsn
    commit_time: datetime
    changes: tuple[Change, ...]
    part: int = 0
    final: bool = True


Converter = Callable[[bytes], Any]


@dataclass(frozen=True, slots=True)
class _RelationInfo:
    schema: str
    table: str
    names: tuple[str, ...]
    key: tuple[bool, ...]
    converters: tuple[Converter, ...]
    columns: tuple[tuple[str, str], ...]


def _to_bool(text: bytes) -> bool:
    if text == b"t":
        return True
    if text == b"f":
        return False
    raise ValueError("not a boolean")


_INTEGRAL = re.compile(rb"-?[0-9]+")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def convert_numeric(text: bytes) -> int | float | str:
    """Convert a ``numeric`` in text format without ever losing a digit silently.

    Returns:
        ``int`` for an integral value within int64; ``float`` when ``repr(float)`` denotes the
        same number as the text (so ``0.1``, ``1.50``, ``12.345``); otherwise the text (values with
        more significant digits than a double keeps, ``NaN``, ``Infinity``, ``-Infinity``).

    Raises:
        ValueError: the text is not a numeric.
    """
    if _INTEGRAL.fullmatch(text):
        value = int(text)
        return value if _INT64_MIN <= value <= _INT64_MAX else text.decode("ascii")
    as_text = text.decode("ascii")
    if as_text in ("NaN", "Infinity", "-Infinity"):
        return as_text
    try:
        exact = Decimal(as_text)
    except InvalidOperation:
        raise ValueError("not a numeric") from None
    if not exact.is_finite():
        raise ValueError("not a numeric")
    approx = float(exact)
    return approx if Decimal(repr(approx)) == exact else as_text


def _to_text(text: bytes) -> str:
    return text.decode("utf-8")


_CONVERTERS: Final[dict[int, Converter]] = {
    16: _to_bool,  # bool
    20: int,  # int8
    21: int,  # int2
    23: int,  # int4
    26: int,  # oid
    700: float,  # float4
    701: float,  # float8
    1700: convert_numeric,  # numeric
    114: orjson.loads,  # json
    3802: orjson.loads,  # jsonb
}

_CONVERTERS_BY_NAME: Final[dict[str, Converter]] = {
    BUILTIN_TYPE_NAMES[oid]: f for oid, f in _CONVERTERS.items()
}


class TxBuilder:
    """Folds one session's pgoutput messages into :class:`Transaction` chunks.

    Args:
        max_changes: most changes per emitted chunk (>= 1).
        max_bytes: most pgoutput bytes (as passed to :meth:`receive`) per chunk; a single change
            larger than this still goes out, alone.
        type_lookup: resolves type OIDs that are neither built in nor announced by a Type message
            (the I/O layer may back it with ``pg_type``); unresolved types are named by their OID
            in decimal.
    """

    def __init__(
        self,
        *,
        max_changes: int = DEFAULT_MAX_CHANGES,
        max_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        type_lookup: TypeLookup | None = None,
    ) -> None:
        if max_changes < 1 or max_bytes < 1:
            raise ValueError("max_changes and max_bytes must be at least 1")
        self._max_changes = max_changes
        self._max_bytes = max_bytes
        self._type_lookup = type_lookup
        self._types: dict[int, str] = {}
        self._type_converters: dict[int, Converter] = {}
        self._relations: dict[int, _RelationInfo] = {}
        self._begin: Begin | None = None
        self._commit_time: datetime | None = None
        self._changes: list[Change] = []
        self._bytes = 0
        self._part = 0

    @property
    def in_transaction(self) -> bool:
        """A Begin was received and its Commit was not yet."""
        return self._begin is not None

    def receive(self, message: PgOutputMessage, nbytes: int = 0) -> tuple[Transaction, ...]:
        """Fold one message into the state.

        Args:
            message: the next decoded message of the session.
            nbytes: its size on the wire, counted against ``max_bytes``.

        Returns:
            The transactions (chunks) completed by this message, usually none or one.

        Raises:
            DecodeError: the message breaks the protocol or a value does not parse as its type.
        """
        cls = message.__class__
        if cls is Insert:
            assert isinstance(message, Insert)
            info = self._relation_for(message.relation_id, "Insert")
            change = Change(
                info.schema,
                info.table,
                ChangeKind.INSERT,
                self._record(info, message.new, None),
                None,
                info.columns,
            )
            return self._add(change, nbytes)
        if cls is Update:
            assert isinstance(message, Update)
            return self._update(message, nbytes)
        if cls is Delete:
            assert isinstance(message, Delete)
            info = self._relation_for(message.relation_id, "Delete")
            old = self._old_record(info, message.key, message.old)
            return self._add(
                Change(info.schema, info.table, ChangeKind.DELETE, None, old, info.columns), nbytes
            )
        if cls is Begin:
            assert isinstance(message, Begin)
            return self._start(message)
        if cls is Commit:
            assert isinstance(message, Commit)
            return self._finish(message)
        if cls is Relation:
            assert isinstance(message, Relation)
            self._relations[message.relation_id] = self._relation_info(message)
            return ()
        if cls is Type:
            assert isinstance(message, Type)
            self._learn_type(message)
            return ()
        if cls is Truncate:
            assert isinstance(message, Truncate)
            return self._truncate(message, nbytes)
        if cls is Origin or cls is LogicalMessage:
            return ()  # replication origins and pg_logical_emit_message(): nothing to deliver
        raise DecodeError(f"unexpected message {cls.__name__}")  # pragma: no cover - exhaustive above

    # -- transaction boundaries ----------------------------------------------------------------

    def _start(self, begin: Begin) -> tuple[Transaction, ...]:
        if self._begin is not None:
            raise DecodeError(f"Begin of xid {begin.xid} inside transaction {self._begin.xid}")
        self._commit_time = from_pg_time(begin.commit_ts)
        self._begin = begin
        self._part = 0
        self._bytes = 0
        return ()

    def _finish(self, commit: Commit) -> tuple[Transaction, ...]:
        begin = self._begin
        if begin is None or self._commit_time is None:
            raise DecodeError("Commit without Begin")
        if commit.commit_lsn != begin.final_lsn:
            raise DecodeError(
                f"Commit at {commit.commit_lsn} does not match Begin's final LSN {begin.final_lsn}"
            )
        tx = Transaction(
            begin.xid,
            begin.final_lsn,
            commit.end_lsn,
            self._commit_time,
            tuple(self._changes),
            self._part,
            True,
        )
        self._begin = None
        self._commit_time = None
        self._changes = []
        self._bytes = 0
        self._part = 0
        return (tx,)

    def _add(self, change: Change, nbytes: int) -> tuple[Transaction, ...]:
        begin = self._begin
        if begin is None or self._commit_time is None:
            raise DecodeError(f"{change.kind} on {change.schema}.{change.table} outside a transaction")
        out: tuple[Transaction, ...] = ()
        if self._changes and (
            len(self._changes) >= self._max_changes or self._bytes + nbytes > self._max_bytes
        ):
            out = (
                Transaction(
                    begin.xid,
                    begin.final_lsn,
                    begin.final_lsn,
                    self._commit_time,
                    tuple(self._changes),
                    self._part,
                    False,
                ),
            )
            self._part += 1
            self._changes = []
            self._bytes = 0
        self._changes.append(change)
        self._bytes += nbytes
        return out

    # -- changes ---------------------------------------------------------------------------------

    def _update(self, message: Update, nbytes: int) -> tuple[Transaction, ...]:
        info = self._relation_for(message.relation_id, "Update")
        old = self._old_record(info, message.key, message.old)
        record = self._record(info, message.new, old)
        return self._add(
            Change(info.schema, info.table, ChangeKind.UPDATE, record, old, info.columns), nbytes
        )

    def _truncate(self, message: Truncate, nbytes: int) -> tuple[Transaction, ...]:
        out: tuple[Transaction, ...] = ()
        share = nbytes // max(1, len(message.relation_ids))
        for relation_id in message.relation_ids:
            info = self._relation_for(relation_id, "Truncate")
            out += self._add(
                Change(info.schema, info.table, ChangeKind.TRUNCATE, None, None, info.columns), share
            )
        return out

    def _relation_for(self, relation_id: int, what: str) -> _RelationInfo:
        info = self._relations.get(relation_id)
        if info is None:
            raise DecodeError(f"{what} for relation {relation_id}, which no Relation message announced")
        return info

    def _record(self, info: _RelationInfo, values: TupleData, old: Record | None) -> Record:
        names = info.names
        if len(values) != len(names):
            raise DecodeError(
                f"{info.schema}.{info.table}: tuple has {len(values)} columns, the relation {len(names)}"
            )
        record: Record = {}
        name = ""
        try:
            for name, convert, value in zip(names, info.converters, values, strict=True):
                if value.__class__ is bytes:
                    record[name] = convert(value)
                elif value is None:
                    record[name] = None
                elif value is UNCHANGED_TOAST:
                    if old is not None and name in old:
                        record[name] = old[name]
                else:
                    assert isinstance(value, BinaryValue)
                    record[name] = value.data
        except (ValueError, UnicodeDecodeError):  # orjson.JSONDecodeError is a ValueError
            raise DecodeError(
                f"{info.schema}.{info.table}.{name}: value does not parse as its type"
            ) from None
        return record

    def _old_record(self, info: _RelationInfo, key: TupleData | None, old: TupleData | None) -> Record | None:
        if old is not None:
            return self._record(info, old, None)
        if key is not None:
            record = self._record(info, key, None)
            return {
                name: record[name]
                for name, is_key in zip(info.names, info.key, strict=True)
                if is_key and name in record
            }
        return None

    # -- catalog ---------------------------------------------------------------------------------

    def _relation_info(self, relation: Relation) -> _RelationInfo:
        names = tuple(column.name for column in relation.columns)
        type_names = tuple(self._type_name(column.type_oid) for column in relation.columns)
        return _RelationInfo(
            schema=relation.namespace or "pg_catalog",
            table=relation.name,
            names=names,
            key=tuple(column.is_key for column in relation.columns),
            converters=tuple(self._converter(column.type_oid) for column in relation.columns),
            columns=tuple(zip(names, type_names, strict=True)),
        )

    def _learn_type(self, message: Type) -> None:
        self._types[message.type_oid] = message.name
        # A domain is announced under its own OID with its base type's name; a built-in base
        # type lives in pg_catalog, which pgoutput writes as the empty namespace.
        if not message.namespace and message.name in _CONVERTERS_BY_NAME:
            self._type_converters[message.type_oid] = _CONVERTERS_BY_NAME[message.name]

    def _converter(self, oid: int) -> Converter:
        return _CONVERTERS.get(oid) or self._type_converters.get(oid) or _to_text

    def _type_name(self, oid: int) -> str:
        name = self._types.get(oid) or BUILTIN_TYPE_NAMES.get(oid)
        if name is None and self._type_lookup is not None:
            name = self._type_lookup(oid)
            if name is not None:
                self._types[oid] = name
        return name if name is not None else str(oid)
