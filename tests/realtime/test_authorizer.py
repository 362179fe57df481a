"""Batched RLS authorization against the real policies: groups, cache, invalidation, deletes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from meshlogs.realtime.authorizer import Authorizer, Candidate
from meshlogs.realtime.claims import Claims
from tests.factories import World, make_world


def user(sub: str) -> Claims:
    return Claims.from_jwt({"role": "authenticated", "sub": sub, "aud": "authenticated", "exp": 2**31})


ANON = Claims.from_jwt({"role": "anon", "exp": 2**31})
SERVICE = Claims.from_jwt({"role": "service_role", "exp": 2**31})


@pytest.fixture
def world(db: psycopg.Connection[Any]) -> World:
    return make_world(db)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as p:
        yield p


def log_lines(db: psycopg.Connection[Any], run: str) -> list[Candidate]:
    rows = db.execute("select id from run_logs where run_id = %s order by seq", (run,)).fetchall()
    return [Candidate("public", "run_logs", r[0], "int8", "id", run_id=run) for r in rows]


async def test_each_group_sees_only_its_rows(
    db: psycopg.Connection[Any], world: World, pool: AsyncConnectionPool
) -> None:
    cands = log_lines(db, world.run_a) + log_lines(db, world.run_b)  # 2 lines of A, 1 of B
    auth = Authorizer(pool)
    result = await auth.authorize(
        {
            "viewer": (user(world.viewer), cands),
            "outsider": (user(world.outsider), cands),
            "anon": (ANON, cands),
            "service": (SERVICE, cands),
        }
    )
    assert result == {"viewer": {0, 1}, "outsider": {2}, "anon": set(), "service": {0, 1, 2}}
    assert auth.queries == 1  # the three non-service groups share one round trip


async def test_groups_are_chunked_into_round_trips(
    db: psycopg.Connection[Any], world: World, pool: AsyncConnectionPool
) -> None:
    cands = log_lines(db, world.run_a)
    auth = Authorizer(pool, groups_per_query=2, cache_ttl=0)
    groups = {f"v{i}": (user(world.viewer), cands) for i in range(3)}
    groups |= {f"o{i}": (user(world.outsider), cands) for i in range(2)}
    result = await auth.authorize(groups)
    assert result == {"v0": {0, 1}, "v1": {0, 1}, "v2": {0, 1}, "o0": set(), "o1": set()}
    assert auth.queries == 3  # ceil(5 / 2)


async def test_cache_hits_then_revocation_invalidates(
    db: psycopg.Connection[Any], world: World, pool: AsyncConnectionPool
) -> None:
    auth = Authorizer(pool)
    viewer = user(world.viewer)
    cands = log_lines(db, world.run_a)
    assert (await auth.authorize({"v": (viewer, cands)}))["v"] == {0, 1}
    assert (await auth.authorize({"v": (viewer, cands)}))["v"] == {0, 1}
    assert auth.queries == 1 and auth.cache_hits == 2
    db.execute("delete from project_members where user_id = %s", (world.viewer,))
    assert (await auth.authorize({"v": (viewer, cands)}))["v"] == {0, 1}  # stale until told
    auth.invalidate_user(world.viewer)
    assert (await auth.authorize({"v": (viewer, cands)}))["v"] == set()


async def test_ttl_bounds_staleness(
    db: psycopg.Connection[Any], world: World, pool: AsyncConnectionPool
) -> None:
    now = [0.0]
    auth = Authorizer(pool, cache_ttl=5.0, clock=lambda: now[0])
    viewer = user(world.viewer)
    cands = log_lines(db, world.run_a)
    assert (await auth.authorize({"v": (viewer, cands)}))["v"] == {0, 1}
    db.execute("delete from project_members where user_id = %s", (world.viewer,))
    now[0] = 6.0
    assert (await auth.authorize({"v": (viewer, cands)}))["v"] == set()


async def test_workflow_runs_rows_and_deletes(
    db: psycopg.Connection[Any], world: World, pool: AsyncConnectionPool
) -> None:
    auth = Authorizer(pool, cache_ttl=0)
    runs = [
        Candidate("public", "workflow_runs", world.run_a, "uuid", "id", run_id=world.run_a),
        Candidate("public", "workflow_runs", world.run_b, "uuid", "id", run_id=world.run_b),
    ]
    assert (await auth.authorize({"v": (user(world.viewer), runs)}))["v"] == {0}
    gone = [
        Candidate(
            "public",
            "workflow_runs",
            "00000000-0000-0000-0000-000000000001",
            "uuid",
            "id",
            run_id="00000000-0000-0000-0000-000000000001",
            project_id=world.project_a,
            deleted=True,
        )
    ]
    assert (await auth.authorize({"v": (user(world.viewer), gone)}))["v"] == {0}
    assert (await auth.authorize({"o": (user(world.outsider), gone)}))["o"] == set()


async def test_other_tables_deletes_reach_only_service(world: World, pool: AsyncConnectionPool) -> None:
    auth = Authorizer(pool)
    gone = [Candidate("public", "projects", world.project_a, "uuid", "id", deleted=True)]
    assert (await auth.authorize({"o": (user(world.owner), gone)}))["o"] == set()
    assert (await auth.authorize({"s": (SERVICE, gone)}))["s"] == {0}


def test_claims_key_ignores_volatile_claims() -> None:
    a = Claims.from_jwt({"role": "authenticated", "sub": "u", "exp": 1, "iat": 0, "session_id": "x"})
    b = Claims.from_jwt({"role": "authenticated", "sub": "u", "exp": 2, "iat": 1, "session_id": "y"})
    c = Claims.from_jwt({"role": "authenticated", "sub": "v", "exp": 2})
    assert a.key == b.key != c.key


async def test_refresh_ahead_rechecks_in_the_background(
    db: psycopg.Connection[Any], world: World, pool: AsyncConnectionPool
) -> None:
    now = [0.0]
    auth = Authorizer(pool, cache_ttl=10.0, clock=lambda: now[0])
    viewer = user(world.viewer)
    cands = log_lines(db, world.run_a)
    assert (await auth.authorize({"v": (viewer, cands)}))["v"] == {0, 1}
    db.execute("delete from project_members where user_id = %s", (world.viewer,))
    now[0] = 6.0  # past half the TTL: still answered from the cache, re-checked behind it
    assert (await auth.authorize({"v": (viewer, cands)}))["v"] == {0, 1}
    assert auth.queries == 1
    await _settle(auth)
    assert auth.refreshes == 1 and auth.queries == 2
    assert (await auth.authorize({"v": (viewer, cands)}))["v"] == set()  # the refreshed decision
    assert auth.queries == 2
    await auth.close()


async def test_an_invalidation_during_a_refresh_wins(
    db: psycopg.Connection[Any], world: World, pool: AsyncConnectionPool
) -> None:
    auth = Authorizer(pool)
    viewer = user(world.viewer)
    auth.prefetch(viewer, world.run_a)
    await asyncio.sleep(0)  # the check is now in flight (waiting on the database)...
    auth.invalidate_user(world.viewer)  # ...when the stream says the user's membership changed
    await _settle(auth)
    assert auth.queries == 1
    assert auth.cache_entries == 0 and auth.refreshes == 0  # its answer may predate the change
    await auth.close()


async def test_prefetch_warms_the_cache(
    db: psycopg.Connection[Any], world: World, pool: AsyncConnectionPool
) -> None:
    auth = Authorizer(pool)
    auth.prefetch(user(world.viewer), world.run_a)
    auth.prefetch(user(world.outsider), world.run_a)
    auth.prefetch(SERVICE, world.run_a)  # bypasses RLS: nothing to fetch
    await _settle(auth)
    assert auth.queries == 1 and auth.cache_entries == 2
    cands = log_lines(db, world.run_a)
    result = await auth.authorize({"v": (user(world.viewer), cands), "o": (user(world.outsider), cands)})
    assert result == {"v": {0, 1}, "o": set()}
    assert auth.queries == 1 and auth.cache_misses == 0
    await auth.close()


async def _settle(auth: Authorizer) -> None:
    """Wait (bounded) for the background checker to finish."""
    task = auth._refresher  # noqa: SLF001 - white-box wait
    if task is not None:
        await asyncio.wait_for(asyncio.shield(task), timeout=30)
