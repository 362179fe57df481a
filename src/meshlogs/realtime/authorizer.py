"""Batched RLS authorization of changes, with a decision cache invalidated from the change stream.

Supabase Realtime checks each change once per subscriber and tops out near 3-4k msgs/s with RLS. Here,
for a batch of changes, subscribers are grouped by claims (:attr:`Claims.key`); each group's check sets
the JWT's role and ``request.jwt.claims`` exactly as PostgREST does, then asks which of the candidate
rows it can ``SELECT`` (per table, ``where pk = any($1)``). Up to ``groups_per_query`` groups share ONE
read-only transaction sent as one pipeline (one round trip): ``set_config`` is transaction-local and the
session user is a superuser, so each group's settings simply replace the previous group's. So every
delivered row is one that the recipient's claims could select under the table's RLS policies at that
moment (invariant 3), and a thousand distinct viewers cost tens of round trips, not a thousand.

Decision cache. For ``run_logs`` and ``workflow_runs`` the decision is remembered per (claims, run):
meshlogs' policies make a log line visible exactly when its run is. The cache is invalidated from the
same ordered replication stream (membership, project and run changes) by the hub before later changes
are authorized, which is what makes a revoked member stop receiving lines immediately; a TTL bounds the
staleness for changes that do not travel on the stream (e.g. editing a policy). Set ``cache_ttl=0`` to
turn the cache off when your ``run_logs`` policy looks at more than ``run_id``.

Refresh ahead, never stall. A decision older than half the TTL is still used, and is re-checked in the
background; so decisions of busy (claims, run) pairs never expire in the middle of the change pipeline,
which would otherwise stop every delivery while hundreds of claims groups are re-checked at once.
Joins prefetch the decision for the run they filter on, for the same reason. A background answer is
only stored if no invalidation happened while it was computed (a generation counter), so a revocation
seen on the stream can never be overwritten by an answer read before it.

Never too early. A change can arrive before its transaction is visible to new snapshots (see
:mod:`meshlogs.realtime.visibility`); a check made then would call the row invisible and drop it.
The hub tells the authorizer every streamed xid, and each check's answer counts only if its own
snapshot shows all of them; otherwise it is asked again, for at most ``visibility_timeout``
seconds, after which the check fails and the hub makes the channels resync (nothing is dropped).

Rows that no longer exist (DELETE) cannot be re-read: for ``workflow_runs`` and ``run_logs`` the
decision uses the old row's project / run; for other tables deletes reach only the service role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from meshlogs.realtime.claims import Claims
from meshlogs.realtime.visibility import Snapshot, StreamedXids

__all__ = ["Authorizer", "Candidate", "NotVisibleYet"]

log = logging.getLogger(__name__)

#: A query, its parameters, and how to map its rows back to candidate indexes.
_Statement = tuple["sql.Composed | sql.SQL", list[Any], Callable[[Any], list[int]]]

RUN_SCOPED = frozenset({("public", "run_logs"), ("public", "workflow_runs")})

#: Backoff between two attempts of a check whose snapshot did not show every streamed transaction.
_VISIBILITY_BACKOFF = (0.001, 0.05)


class NotVisibleYet(RuntimeError):
    """Streamed transactions stayed invisible to new snapshots past the timeout."""


@dataclass(frozen=True)
class Candidate:
    """A changed row that some subscribers with the same claims want.

    Attributes:
        schema, table: where the row lives.
        pk: the primary key value (``id`` of run_logs / workflow_runs, or a single-column key).
        pk_type: the key's Postgres type name, to type the ``any($1)`` array.
        run_id: the run the row belongs to (run_logs.run_id, workflow_runs.id), if any.
        project_id: the row's project, used when the row is gone (DELETE).
        deleted: True for DELETE changes: the row cannot be read any more.
    """

    schema: str
    table: str
    pk: Any
    pk_type: str = "int8"
    pk_column: str = "id"
    run_id: str | None = None
    project_id: str | None = None
    deleted: bool = False


class Authorizer:
    """Answers "which of these rows may these claims see?" for many claims at once.

    Args:
        pool: superuser connections; each check runs in a rolled-back read-only transaction.
        cache_size: bound on remembered (claims, run) decisions (LRU).
        cache_ttl: seconds a decision is trusted without a stream invalidation; 0 disables the cache.
        max_parallel: transactions run concurrently (bounded by the pool anyway).
        groups_per_query: claims groups checked in one transaction (one round trip).
        max_refresh: bound on (claims, run) decisions waiting for a background re-check; past it,
            entries simply expire and are checked in line, as without refresh-ahead.
        refresh_pause: seconds between two background round trips (``groups_per_query`` decisions
            each), so background checks never crowd out fan-out on the event loop.
        visibility_timeout: longest wait for streamed transactions to become visible to new
            snapshots before a check fails (normally microseconds; a stuck synchronous standby
            holds commits there).
        clock: monotonic time source for the cache, injectable for tests.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        cache_size: int = 100_000,
        cache_ttl: float = 10.0,
        max_parallel: int = 4,
        groups_per_query: int = 64,
        max_refresh: int = 20_000,
        refresh_pause: float = 0.01,
        visibility_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._cache: OrderedDict[tuple[str, str], tuple[bool, float, str | None]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._parallel = asyncio.Semaphore(max_parallel)
        self._per_query = max(1, groups_per_query)
        self._max_refresh = max_refresh
        self._refresh_pause = refresh_pause
        #: (claims key, run) -> claims, waiting for a background check (refresh-ahead or prefetch).
        self._refresh: dict[tuple[str, str], Claims] = {}
        self._refresher: asyncio.Task[None] | None = None
        #: Bumped by every invalidation: background answers computed across one are thrown away.
        self._generation = 0
        self._streamed = StreamedXids()
        self._visibility_timeout = visibility_timeout
        self.visibility_waits = 0
        self.queries = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.refreshes = 0

    # -- the stream (called by the hub, in stream order) ---------------------------------------------

    def note_streamed(self, xid: int) -> None:
        """A transaction arrived on the stream: checks from now on must see it committed."""
        self._streamed.add(xid)

    def invalidate_user(self, user_id: str | None) -> None:
        """A membership of ``user_id`` changed: forget every decision made for that user."""
        if user_id is None:
            self.invalidate_all()
            return
        self._generation += 1
        for key in [k for k, (_, _, sub) in self._cache.items() if sub == user_id]:
            del self._cache[key]

    def invalidate_run(self, run_id: str) -> None:
        """A run changed (e.g. moved project, deleted): forget decisions about it."""
        self._generation += 1
        for key in [k for k in self._cache if k[1] == run_id]:
            del self._cache[key]

    def invalidate_all(self) -> None:
        self._generation += 1
        self._cache.clear()

    @property
    def cache_entries(self) -> int:
        return len(self._cache)

    # -- background checks --------------------------------------------------------------------------

    def prefetch(self, claims: Claims, run_id: str) -> None:
        """Decide (claims, run) in the background, e.g. when a channel joins with ``run_id=eq.X``,
        so the first change of that run finds the decision cached instead of stalling the pipeline."""
        if self._cache_ttl <= 0 or claims.bypasses_rls:
            return
        key = (claims.key, run_id)
        entry = self._cache.get(key)
        if entry is not None and self._clock() - entry[1] <= self._cache_ttl / 2:
            return
        self._schedule(key, claims)

    def _schedule(self, key: tuple[str, str], claims: Claims) -> None:
        if key in self._refresh or len(self._refresh) >= self._max_refresh:
            return
        self._refresh[key] = claims
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_forever(), name="meshlogs-authz-refresh"
            )

    async def _refresh_forever(self) -> None:
        while self._refresh:
            keys = list(self._refresh)[: self._per_query]
            generation = self._generation
            started = self._clock()
            groups: dict[str, tuple[Claims, list[Candidate]]] = {}
            for claims_key, run in keys:
                claims = self._refresh[(claims_key, run)]
                group = groups.setdefault(claims_key, (claims, []))
                group[1].append(Candidate("public", "workflow_runs", run, "uuid", "id", run_id=run))
            try:
                seen = await self._check_groups(
                    {k: (c, cands, list(range(len(cands)))) for k, (c, cands) in groups.items()}
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # the in-line path will check (and report) when the entry expires
                log.warning("background authorization check failed", exc_info=True)
                for key in keys:
                    self._refresh.pop(key, None)
                return
            for key in keys:
                self._refresh.pop(key, None)
            if generation != self._generation:
                continue  # an invalidation happened meanwhile: the answer may predate it
            self.refreshes += len(keys)
            for claims_key, (claims, cands) in groups.items():
                self._remember(claims, cands, {cands[i] for i in seen[claims_key]}, started)
            # Paced: the refresh of thousands of decisions (they were made together, so they come due
            # together) must not crowd the event loop that is fanning out; there is half a TTL for it.
            await asyncio.sleep(self._refresh_pause)

    async def close(self) -> None:
        """Stop the background checker (pending checks are dropped: they were only an optimization)."""
        self._refresh.clear()
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- checks ---------------------------------------------------------------------------------------

    async def authorize(
        self, groups: Mapping[str, tuple[Claims, Sequence[Candidate]]]
    ) -> dict[str, set[int]]:
        """For each claims group, the indexes (into its candidate list) of rows it may see.

        Cached decisions are answered without awaiting; the groups that need the database are
        checked ``groups_per_query`` to a round trip, several round trips concurrently. A database
        error propagates (the hub then makes the affected channels resync, never delivering
        unchecked rows).
        """
        results: dict[str, set[int]] = {}
        pending: dict[str, tuple[Claims, Sequence[Candidate], list[int]]] = {}
        now = self._clock()
        for name, (claims, candidates) in groups.items():
            if claims.bypasses_rls:
                results[name] = set(range(len(candidates)))
                continue
            visible: set[int] = set()
            unknown: list[int] = []
            for i, cand in enumerate(candidates):
                decided = self._cached(claims, cand, now)
                if decided is None:
                    unknown.append(i)
                elif decided:
                    visible.add(i)
            results[name] = visible
            if unknown:
                pending[name] = (claims, candidates, unknown)
        if pending:
            self.cache_misses += sum(len(unknown) for _c, _cands, unknown in pending.values())
            seen = await self._check_groups(pending)
            for name, (claims, candidates, unknown) in pending.items():
                found = seen[name]
                self._remember(claims, (candidates[i] for i in unknown), {candidates[i] for i in found}, now)
                results[name] |= found
        return results

    async def _check_groups(
        self, pending: Mapping[str, tuple[Claims, Sequence[Candidate], list[int]]]
    ) -> dict[str, set[int]]:
        names = list(pending)
        chunks = [names[i : i + self._per_query] for i in range(0, len(names), self._per_query)]
        answers = await asyncio.gather(*(self._check_chunk([(n, *pending[n]) for n in c]) for c in chunks))
        seen: dict[str, set[int]] = {}
        for answer in answers:
            seen.update(answer)
        return seen

    async def _check_chunk(
        self, chunk: Sequence[tuple[str, Claims, Sequence[Candidate], list[int]]]
    ) -> dict[str, set[int]]:
        """One round trip, repeated while its snapshot predates a streamed commit's visibility."""
        deadline = time.monotonic() + self._visibility_timeout
        delay, most = _VISIBILITY_BACKOFF
        while True:
            mark = self._streamed.mark()
            async with self._parallel:
                visible, snapshot = await self._query(chunk)
            if self._streamed.covered(mark, snapshot):
                self._streamed.confirm(mark)
                return visible
            self.visibility_waits += 1
            if time.monotonic() + delay > deadline:
                raise NotVisibleYet(
                    f"streamed transactions not visible to new snapshots after {self._visibility_timeout:g}s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, most)

    def _cached(self, claims: Claims, cand: Candidate, now: float) -> bool | None:
        if self._cache_ttl <= 0 or cand.run_id is None or (cand.schema, cand.table) not in RUN_SCOPED:
            return None
        key = (claims.key, cand.run_id)
        entry = self._cache.get(key)
        if entry is None:
            return None
        age = now - entry[1]
        if age > self._cache_ttl:
            return None
        if age > self._cache_ttl / 2:
            self._schedule(key, claims)
        self._cache.move_to_end(key)
        self.cache_hits += 1
        return entry[0]

    def _remember(
        self, claims: Claims, checked: Iterable[Candidate], visible: set[Candidate], now: float
    ) -> None:
        if self._cache_ttl <= 0:
            return
        decisions: dict[str, bool] = {}
        for cand in checked:
            if cand.run_id is None or (cand.schema, cand.table) not in RUN_SCOPED:
                continue
            decisions[cand.run_id] = decisions.get(cand.run_id, False) or cand in visible
        for run_id, ok in decisions.items():
            self._cache[(claims.key, run_id)] = (ok, now, claims.sub)
            self._cache.move_to_end((claims.key, run_id))
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _query(
        self, chunk: Sequence[tuple[str, Claims, Sequence[Candidate], list[int]]]
    ) -> tuple[dict[str, set[int]], Snapshot]:
        """One read-only transaction, one pipeline: the snapshot, then per group its role and
        claims and the question. Every later statement's snapshot shows at least what the first
        one's does, in any isolation level."""
        plan: list[tuple[str, list[_Statement]]] = []
        for name, _claims, candidates, unknown in chunk:
            by_table: dict[tuple[str, str, bool], list[int]] = {}
            for i in unknown:
                c = candidates[i]
                by_table.setdefault((c.schema, c.table, c.deleted), []).append(i)
            statements = [
                self._statement(schema, table, deleted, [candidates[i] for i in idxs], idxs)
                for (schema, table, deleted), idxs in by_table.items()
            ]
            plan.append((name, statements))
        visible: dict[str, set[int]] = {name: set() for name, _s in plan}
        self.queries += 1
        async with self._pool.connection() as conn, conn.transaction(force_rollback=True):
            cursors: list[tuple[str, Any, Callable[[Any], list[int]]]] = []
            async with conn.pipeline():
                await conn.execute("set transaction read only")
                snap_cur = await conn.execute("select pg_current_snapshot()::text")
                for (name, statements), (_n, claims, _c, _u) in zip(plan, chunk, strict=True):
                    await conn.execute(
                        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                        (claims.role, claims.claims_json()),
                    )
                    for query, params, pick in statements:
                        cursors.append((name, await conn.execute(query, params), pick))
            row = await snap_cur.fetchone()
            for name, cur, pick in cursors:
                visible[name].update(pick(await cur.fetchall()))
        if row is None:
            raise RuntimeError("pg_current_snapshot() returned no row")
        return visible, Snapshot.parse(str(row[0]))

    @staticmethod
    def _statement(
        schema: str, table: str, deleted: bool, cands: list[Candidate], idxs: list[int]
    ) -> _Statement:
        query: sql.Composed | sql.SQL
        if deleted:
            # The row is gone; decide by what it belonged to.
            if (schema, table) in RUN_SCOPED:
                runs = [c.run_id for c in cands]
                projects = [c.project_id for c in cands]
                query = sql.SQL(
                    "select i from unnest(%s::uuid[], %s::uuid[]) with ordinality as t(run, project, i)"
                    " where run in (select id from public.workflow_runs)"
                    " or project in (select meshlogs.my_projects())"
                )
                params: list[Any] = [runs, projects]
            else:
                query = sql.SQL("select i from generate_series(1, 0) i")  # nobody but service_role
                params = []
        else:
            pk_type = cands[0].pk_type
            query = sql.SQL(
                "select i from unnest(%s::{pktype}[]) with ordinality as t(k, i)"
                " where k in (select {pk} from {schema}.{table} where {pk} = any(%s::{pktype}[]))"
            ).format(
                pktype=sql.SQL(_safe_type(pk_type)),
                pk=sql.Identifier(cands[0].pk_column),
                schema=sql.Identifier(schema),
                table=sql.Identifier(table),
            )
            keys = [c.pk for c in cands]
            params = [keys, keys]

        def pick(rows: Any) -> list[int]:
            return [idxs[int(r[0]) - 1] for r in rows]

        return query, params, pick


_TYPES = {"int2", "int4", "int8", "uuid", "text", "varchar", "numeric", "bool", "timestamptz", "date"}


def _safe_type(name: str) -> str:
    """Primary key types come from the catalog, but are spliced into SQL: allow a known set only."""
    if name not in _TYPES:
        raise ValueError(f"unsupported primary key type {name!r} for realtime authorization")
    return name
