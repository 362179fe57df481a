"""Batched RLS authorization of changes, with a decision cache invalidated from the change stream.

Supabase Realtime checks each change once per subscriber and tops out near 3-4k msgs/s with RLS. Here,
for a batch of changes, subscribers are grouped by claims (:attr:`Claims.key`) and each group costs at
most ONE database round trip: a read-only transaction that sets the JWT's role and
``request.jwt.claims`` exactly as PostgREST does, then asks which of the candidate rows it can
``SELECT`` (per table, ``where pk = any($1)``). So every delivered row is one that the recipient's claims
could select under the table's RLS policies at that moment (invariant 3).

Decision cache. For ``run_logs`` and ``workflow_runs`` the decision is remembered per (claims, run):
meshlogs' policies make a log line visible exactly when its run is. The cache is invalidated from the
same ordered replication stream (membership, project and run changes) by the hub before later changes
are authorized, which is what makes a revoked member stop receiving lines immediately; a TTL bounds the
staleness for changes that do not travel on the stream (e.g. editing a policy). Set ``cache_ttl=0`` to
turn the cache off when your ``run_logs`` policy looks at more than ``run_id``.

Rows that no longer exist (DELETE) cannot be re-read: for ``workflow_runs`` and ``run_logs`` the
decision uses the old row's project / run; for other tables deletes reach only the service role.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from meshlogs.realtime.claims import Claims

__all__ = ["Authorizer", "Candidate"]

RUN_SCOPED = frozenset({("public", "run_logs"), ("public", "workflow_runs")})


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
        max_parallel: claims groups checked concurrently (bounded by the pool anyway).
        clock: monotonic time source, injectable for tests.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        cache_size: int = 100_000,
        cache_ttl: float = 10.0,
        max_parallel: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._cache: OrderedDict[tuple[str, str], tuple[bool, float, str | None]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._parallel = asyncio.Semaphore(max_parallel)
        self.queries = 0
        self.cache_hits = 0
        self.cache_misses = 0

    # -- cache invalidation (called by the hub, in stream order) ------------------------------------

    def invalidate_user(self, user_id: str | None) -> None:
        """A membership of ``user_id`` changed: forget every decision made for that user."""
        if user_id is None:
            self.invalidate_all()
            return
        for key in [k for k, (_, _, sub) in self._cache.items() if sub == user_id]:
            del self._cache[key]

    def invalidate_run(self, run_id: str) -> None:
        """A run changed (e.g. moved project, deleted): forget decisions about it."""
        for key in [k for k in self._cache if k[1] == run_id]:
            del self._cache[key]

    def invalidate_all(self) -> None:
        self._cache.clear()

    @property
    def cache_entries(self) -> int:
        return len(self._cache)

    # -- checks ---------------------------------------------------------------------------------------

    async def authorize(
        self, groups: Mapping[str, tuple[Claims, Sequence[Candidate]]]
    ) -> dict[str, set[int]]:
        """For each claims group, the indexes (into its candidate list) of rows it may see.

        Cached decisions are answered without awaiting; the groups that need the database run
        concurrently, each in one round trip. A database error propagates (the hub then makes the
        affected channels resync, never delivering unchecked rows).
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
            names = list(pending)
            seen = await asyncio.gather(*(self._check(*pending[n], now) for n in names))
            for name, found in zip(names, seen, strict=True):
                results[name] |= found
        return results

    async def _check(
        self, claims: Claims, candidates: Sequence[Candidate], unknown: list[int], now: float
    ) -> set[int]:
        self.cache_misses += len(unknown)
        by_table: dict[tuple[str, str, bool], list[int]] = {}
        for i in unknown:
            c = candidates[i]
            by_table.setdefault((c.schema, c.table, c.deleted), []).append(i)
        async with self._parallel:
            seen = await self._query(claims, candidates, by_table)
        self._remember(claims, (candidates[i] for i in unknown), {candidates[i] for i in seen}, now)
        return seen

    def _cached(self, claims: Claims, cand: Candidate, now: float) -> bool | None:
        if self._cache_ttl <= 0 or cand.run_id is None or (cand.schema, cand.table) not in RUN_SCOPED:
            return None
        entry = self._cache.get((claims.key, cand.run_id))
        if entry is None or now - entry[1] > self._cache_ttl:
            return None
        self._cache.move_to_end((claims.key, cand.run_id))
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
        self,
        claims: Claims,
        candidates: Sequence[Candidate],
        by_table: Mapping[tuple[str, str, bool], list[int]],
    ) -> set[int]:
        statements: list[tuple[sql.Composed | sql.SQL, list[Any], list[int], Callable[[Any], list[int]]]] = []
        for (schema, table, deleted), idxs in by_table.items():
            statements.append(self._statement(schema, table, deleted, [candidates[i] for i in idxs], idxs))
        visible: set[int] = set()
        self.queries += 1
        async with self._pool.connection() as conn, conn.transaction(force_rollback=True):
            async with conn.pipeline():
                await conn.execute("set transaction read only")
                await conn.execute(
                    "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                    (claims.role, claims.claims_json()),
                )
                cursors = []
                for query, params, _idxs, _pick in statements:
                    cursors.append(await conn.execute(query, params))
            for cur, (_q, _p, _idxs, pick) in zip(cursors, statements, strict=True):
                rows = await cur.fetchall()
                visible.update(pick(rows))
        return visible

    @staticmethod
    def _statement(
        schema: str, table: str, deleted: bool, cands: list[Candidate], idxs: list[int]
    ) -> tuple[sql.Composed | sql.SQL, list[Any], list[int], Callable[[Any], list[int]]]:
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

        return query, params, idxs, pick


_TYPES = {"int2", "int4", "int8", "uuid", "text", "varchar", "numeric", "bool", "timestamptz", "date"}


def _safe_type(name: str) -> str:
    """Primary key types come from the catalog, but are spliced into SQL: allow a known set only."""
    if name not in _TYPES:
        raise ValueError(f"unsupported primary key type {name!r} for realtime authorization")
    return name
