"""The change pipeline: committed transactions in, authorized ``postgres_changes`` frames out.

One task reads the :class:`~meshlogs.capture.source.ChangeSource` and processes what has
accumulated as one batch (adaptive batching: one transaction at a time when idle, many under load),
in commit order:

1. changes to the authorization tables (``project_members``, ``projects``, a run moving project)
   invalidate cached decisions, before anything later in the stream is authorized;
2. each change finds its subscriptions in the :class:`SubscriptionIndex` (O(1) for ``eq`` filters);
3. subscribers are grouped by claims and the :class:`Authorizer` checks each group in one round trip;
4. each visible change is encoded once and spliced into every subscriber's frame, which goes to that
   connection's bounded outbox in order.

A :class:`~meshlogs.capture.source.StreamReset` means changes may have been missed: every channel
with postgres bindings gets ``phx_error`` and its subscriptions are dropped; the clients rejoin and
backfill by seq (ARCHITECTURE §5), so nobody silently misses a line. An authorization failure (the
database is unreachable) is handled the same way for the channels that batch concerned: rows are
never delivered unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from meshlogs.capture.source import ChangeEvent, ChangeSource, StreamReset
from meshlogs.capture.txbuilder import Change, ChangeKind, Transaction
from meshlogs.protocol.changes import Column, EncodedChange, encode_change
from meshlogs.realtime.authorizer import Authorizer, Candidate
from meshlogs.realtime.catalog import Catalog
from meshlogs.realtime.claims import Claims
from meshlogs.realtime.subscriptions import Subscription, SubscriptionIndex

__all__ = ["Hub", "HubStats", "Subscriber"]

log = logging.getLogger(__name__)

#: Longest stretch of fan-out work between two yields to the event loop, in seconds.
_FANOUT_SLICE = 0.003

_AUTHZ_TABLES = frozenset({("public", "project_members"), ("public", "projects")})


class Subscriber(Protocol):
    """A joined channel with postgres bindings, as the hub needs it (implemented by the session)."""

    claims: Claims

    def deliver_change(self, ids: Sequence[int], change: EncodedChange) -> None: ...

    def resync(self, reason: str) -> None: ...


@dataclass
class HubStats:
    transactions: int = 0
    changes: int = 0
    delivered: int = 0
    batches: int = 0
    resets: int = 0
    authz_failures: int = 0
    last_commit_lag: float | None = None


class Hub:
    """Owns the subscription index and the change pipeline of one gateway process.

    Args:
        source: where committed transactions come from.
        authorizer: batched RLS checks.
        catalog: published tables (to skip changes of tables nobody may subscribe to).
        max_batch_changes: most changes processed as one batch (bounds the work per authorization
            round and the latency it adds).
        queue_size: transactions read ahead from the source while a batch is processed.
    """

    def __init__(
        self,
        source: ChangeSource,
        authorizer: Authorizer,
        catalog: Catalog,
        *,
        max_batch_changes: int = 5000,
        queue_size: int = 256,
        observe_lag: Callable[[float], None] | None = None,
        max_record_bytes: int = 1_048_576,
    ) -> None:
        """``max_record_bytes``: a change whose encoded ``data`` is larger goes out as Supabase
        sends it then: only the values of 64 bytes or less, and ``errors: ["Error 413: Payload
        Too Large"]``, so one huge row never becomes a huge frame per subscriber."""
        self.source = source
        self.authorizer = authorizer
        self.catalog = catalog
        self.index = SubscriptionIndex()
        self.stats = HubStats()
        self._max_batch = max_batch_changes
        self._observe_lag = observe_lag
        self._max_record_bytes = max_record_bytes
        self._queue: asyncio.Queue[ChangeEvent] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.source.start()
        self._tasks = [
            asyncio.create_task(self._read(), name="meshlogs-hub-read"),
            asyncio.create_task(self._process_forever(), name="meshlogs-hub-process"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.authorizer.close()
        await self.source.close()

    # -- subscriptions ------------------------------------------------------------------------------

    def subscribe(self, subs: Sequence[Subscription]) -> None:
        for sub in subs:
            self.index.add(sub)
            run = _filtered_run(sub)
            if run is not None:
                self.authorizer.prefetch(sub.owner.claims, run)

    def unsubscribe(self, subs: Sequence[Subscription]) -> None:
        for sub in subs:
            self.index.remove(sub)

    # -- pipeline -------------------------------------------------------------------------------------

    async def _read(self) -> None:
        async for event in self.source:
            await self._queue.put(event)
        # The source only ends on close() or a bug it could not recover from: either way nothing
        # more will arrive, so nobody may believe they are live.
        status = self.source.status
        log.error("change source ended (%s: %s); subscribers resync", status.state.value, status.last_error)
        self.resync_all("change stream ended; resubscribe and backfill")

    async def _process_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            changes = len(batch[0].changes) if isinstance(batch[0], Transaction) else 0
            while changes < self._max_batch and not self._queue.empty():
                event = self._queue.get_nowait()
                batch.append(event)
                if isinstance(event, Transaction):
                    changes += len(event.changes)
            try:
                await self.process(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one bad batch kill the pipeline; say so loudly
                log.exception("change batch failed; making subscribers resync")
                self.resync_all("internal error while processing changes")

    async def process(self, events: Sequence[ChangeEvent]) -> None:
        """Process events in order; transactions between resets are authorized as one batch."""
        pending: list[Transaction] = []
        for event in events:
            if isinstance(event, StreamReset):
                if pending:
                    await self._process_transactions(pending)
                    pending = []
                self.stats.resets += 1
                log.warning("change stream was interrupted (%s); subscribers resync", event.reason)
                self.resync_all("change stream interrupted; resubscribe and backfill")
            else:
                pending.append(event)
        if pending:
            await self._process_transactions(pending)

    def resync_all(self, reason: str) -> None:
        owners = {sub.owner for table in list(self.index.tables()) for sub in self._subs_of(table)}
        for owner in owners:
            owner.resync(reason)

    def _subs_of(self, table: tuple[str, str]) -> list[Subscription]:
        entry = self.index._tables.get(table)  # noqa: SLF001 - same package
        if entry is None:
            return []
        subs = list(entry.scan)
        for buckets in entry.by_value.values():
            for bucket in buckets.values():
                subs.extend(bucket)
        return subs

    async def _process_transactions(self, transactions: Sequence[Transaction]) -> None:
        self.stats.batches += 1
        work: list[tuple[Transaction, Change, list[Subscription]]] = []
        for tx in transactions:
            self.authorizer.note_streamed(tx.xid)
            self.stats.transactions += 1
            self.stats.changes += len(tx.changes)
            lag = time.time() - tx.commit_time.timestamp()
            self.stats.last_commit_lag = lag
            if self._observe_lag is not None:
                self._observe_lag(lag)
            for change in tx.changes:
                self._invalidate(change)
                if not self.catalog.is_published(change.schema, change.table):
                    continue
                if change.kind is ChangeKind.TRUNCATE:
                    continue
                subs = self.index.match(change)
                if subs:
                    work.append((tx, change, subs))
        if not work:
            return

        # Group candidates by claims: one authorization round trip per distinct claims set.
        groups: dict[str, tuple[Claims, list[Candidate]]] = {}
        slots: dict[str, list[int]] = {}  # claims key -> index into work, per candidate
        for i, (_tx, change, subs) in enumerate(work):
            candidate = self._candidate(change)
            by_key: dict[str, Claims] = {}
            for sub in subs:
                by_key.setdefault(sub.owner.claims.key, sub.owner.claims)
            for key, claims in by_key.items():
                group = groups.setdefault(key, (claims, []))
                group[1].append(candidate)
                slots.setdefault(key, []).append(i)
        try:
            visible = await self.authorizer.authorize(groups)
        except Exception:
            self.stats.authz_failures += 1
            log.exception("authorization query failed; affected channels resync")
            for owner in {sub.owner for _tx, _c, subs in work for sub in subs}:
                owner.resync("authorization unavailable; resubscribe and backfill")
            return
        allowed: set[tuple[int, str]] = set()
        for key, idxs in visible.items():
            for j in idxs:
                allowed.add((slots[key][j], key))

        # Fan-out is synchronous, and the frames it queues are written when this task yields; so a big
        # batch would hold every frame back until its very end (and the event loop with it). Yield
        # every few milliseconds instead: what is ready goes out, and reads and joins are served.
        slice_end = time.perf_counter() + _FANOUT_SLICE
        for i, (tx, change, subs) in enumerate(work):
            if time.perf_counter() > slice_end:
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + _FANOUT_SLICE
            # One pass over the subscriptions (a hot run has one per viewer): binding ids and the
            # column selections of each channel that may see the row.
            per_owner: dict[Any, tuple[list[int], set[tuple[str, ...] | None]]] = {}
            for sub in subs:
                if (i, sub.owner.claims.key) in allowed:
                    entry = per_owner.get(sub.owner)
                    if entry is None:
                        entry = per_owner[sub.owner] = ([], set())
                    entry[0].append(sub.binding_id)
                    entry[1].add(sub.select)
            if not per_owner:
                continue
            encoded: dict[tuple[str, ...] | None, EncodedChange] = {}
            for owner, (ids, selects) in per_owner.items():
                # Several bindings of one channel with different selections get the whole row.
                select = next(iter(selects)) if len(selects) == 1 else None
                enc = encoded.get(select)
                if enc is None:
                    enc = _encode(tx, change, select)
                    if len(enc.data) > self._max_record_bytes:
                        enc = _encode(tx, change, select, too_large=True)
                    encoded[select] = enc
                owner.deliver_change(ids if len(ids) == 1 else sorted(set(ids)), enc)
                self.stats.delivered += 1

    def _invalidate(self, change: Change) -> None:
        key = (change.schema, change.table)
        if key == ("public", "project_members"):
            for row in (change.record, change.old_record):
                if row is not None:
                    self.authorizer.invalidate_user(_str(row.get("user_id")))
            if change.kind is ChangeKind.TRUNCATE:
                self.authorizer.invalidate_all()
        elif key == ("public", "projects"):
            if change.kind is not ChangeKind.INSERT:
                self.authorizer.invalidate_all()
        elif key == ("public", "workflow_runs") and change.kind is not ChangeKind.INSERT:
            old, new = change.old_record or {}, change.record or {}
            if change.kind is ChangeKind.DELETE or old.get("project_id") != new.get("project_id"):
                run = _str(old.get("id") or new.get("id"))
                if run is not None:
                    self.authorizer.invalidate_run(run)

    def _candidate(self, change: Change) -> Candidate:
        info = self.catalog.get(change.schema, change.table)
        row = change.old_record if change.kind is ChangeKind.DELETE else change.record
        row = row or {}
        pk_column = info.primary_key[0] if info and len(info.primary_key) == 1 else "id"
        pk_type = info.columns.get(pk_column, "int8") if info else "int8"
        run_column = _RUN_COLUMN.get((change.schema, change.table))
        run_id = _str(row.get(run_column)) if run_column is not None else None
        return Candidate(
            schema=change.schema,
            table=change.table,
            pk=row.get(pk_column),
            pk_type=pk_type,
            pk_column=pk_column,
            run_id=run_id,
            project_id=_str(row.get("project_id")),
            deleted=change.kind is ChangeKind.DELETE,
        )


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _filtered_run(sub: Subscription) -> str | None:
    """The run a ``run_logs``/``workflow_runs`` subscription is pinned to by an ``eq`` filter, if any."""
    if sub.filter is None or (sub.schema, sub.table) not in _RUN_COLUMN:
        return None
    key = sub.filter.eq_key
    if key is None or key[0] != _RUN_COLUMN[(sub.schema, sub.table)]:
        return None
    return str(key[1])


_RUN_COLUMN = {("public", "run_logs"): "run_id", ("public", "workflow_runs"): "id"}


#: Values longer than this (as JSON) are left out of a change that is too large, as Supabase does.
_SMALL_VALUE_BYTES = 64
_TOO_LARGE = ("Error 413: Payload Too Large",)


def _small(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: v for k, v in row.items() if len(orjson.dumps(v, default=str)) <= _SMALL_VALUE_BYTES}


def _encode(
    tx: Transaction, change: Change, select: tuple[str, ...] | None, *, too_large: bool = False
) -> EncodedChange:
    columns = change.columns
    record, old = change.record, change.old_record
    if select is not None:
        keep = set(select)
        columns = tuple(c for c in columns if c[0] in keep)
        record = {k: v for k, v in record.items() if k in keep} if record is not None else None
        old = {k: v for k, v in old.items() if k in keep} if old is not None else None
    if too_large:
        record, old = _small(record), _small(old)
    return encode_change(
        errors=_TOO_LARGE if too_large else None,
        schema=change.schema,
        table=change.table,
        type=change.kind.value,  # type: ignore[arg-type]
        commit_timestamp=tx.commit_time,
        columns=[Column(name, type_name) for name, type_name in columns],
        record=record,
        old_record=old,
    )
