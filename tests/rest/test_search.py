"""Whole-log search: REST ``ilike`` on run_logs.message, and ``search_run_logs()`` served by the chunk
trigram index that ``meshlogs.index_run_logs()`` fills behind the writers (migration 0012)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meshlogs.server.search_index import BATCH_LINES, DUTY_PAUSE, MAX_PAUSE, SEARCH_INDEXER, pause_factor
from tests.factories import World
from tests.rest.conftest import Api
from tests.support.server import RunningServer, running_server

WORDS = [
    "build",
    "deploy",
    "fetch",
    "compile",
    "link",
    "test",
    "upload",
    "cache",
    "resolve",
    "module",
    "worker",
    "retry",
]


def fill(db: psycopg.Connection[Any], run: str, n: int, salt: int) -> None:
    for start in range(0, n, 5000):
        lines = [
            {
                "level": "info",
                "message": f"{WORDS[i % 12]} {WORDS[(i * 7 + salt) % 12]} item-{i:06d} took {i % 997}ms",
            }
            for i in range(start, min(n, start + 5000))
        ]
        db.execute("select append_run_logs(%s, %s::jsonb)", (run, json.dumps(lines)))


def plan(db: psycopg.Connection[Any], run: str, pattern: str) -> str:
    rows = db.execute(
        "explain select id, seq, message from run_logs where run_id = %s and message ilike %s"
        " order by seq limit 200",
        (run, pattern),
    ).fetchall()
    return "\n".join(r[0] for r in rows)


def index_all(db: psycopg.Connection[Any]) -> int:
    total = 0
    while (done := db.execute("select meshlogs.index_run_logs(20000)").fetchone()[0]) > 0:  # type: ignore[index]
        total += done
    return total


async def test_rest_ilike_is_run_scoped_and_the_append_path_has_no_trigram_index(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    fill(db, world.run_a, 3000, 1)
    fill(db, world.run_b, 3000, 5)
    indexes = [r[0] for r in db.execute("select indexdef from pg_indexes where tablename = 'run_logs'")]
    assert not [i for i in indexes if "gin" in i.lower()], indexes  # appends pay no trigram work

    # Same results through REST as in SQL, including ilike's case-insensitivity and PostgREST's '*'.
    token = server.user_token(world.viewer)
    status, _, body = await api.get(
        f"/rest/v1/run_logs?select=seq,message&run_id=eq.{world.run_a}&message=ilike.*ITEM-00123*&order=seq",
        token=token,
    )
    assert status == 200
    expected = db.execute(
        "select seq, message from run_logs where run_id = %s and message ilike '%%item-00123%%' order by seq",
        (world.run_a,),
    ).fetchall()
    assert [(r["seq"], r["message"]) for r in body] == expected and len(expected) == 10

    # The other tenant's run has the same words: the viewer never sees them.
    status, _, body = await api.get(
        f"/rest/v1/run_logs?select=seq&run_id=eq.{world.run_b}&message=ilike.*item-00123*", token=token
    )
    assert (status, body) == (200, [])


def test_indexer_makes_complete_chunks_once(world: World, db: psycopg.Connection[Any]) -> None:
    fill(db, world.run_a, 2500, 1)  # the world already holds 2 lines of run_a and 1 of run_b
    fill(db, world.run_b, 998, 1)
    assert index_all(db) == 2400 + 800  # complete 200-line chunks only
    chunks = db.execute(
        "select run_id::text, first_seq, last_seq, body from meshlogs.run_log_chunks"
        " order by run_id = %s desc, first_seq",
        (world.run_a,),
    ).fetchall()
    assert [(c[0], c[1], c[2]) for c in chunks[:12]] == [
        (world.run_a, k * 200 + 1, k * 200 + 200) for k in range(12)
    ]
    assert [(c[0], c[1], c[2]) for c in chunks[12:]] == [
        (world.run_b, k * 200 + 1, k * 200 + 200) for k in range(4)
    ]
    lines = [
        r[0]
        for r in db.execute(
            "select message from run_logs where run_id = %s and seq <= 200 order by seq", (world.run_a,)
        )
    ]
    assert chunks[0][3] == "\n".join(lines)
    assert index_all(db) == 0  # idempotent: nothing twice
    fill(db, world.run_b, 1, 1)
    assert index_all(db) == 200
    state = dict(db.execute("select run_id::text, indexed_seq from meshlogs.run_log_search_state").fetchall())
    assert state == {world.run_a: 2400, world.run_b: 1000}


def test_only_one_indexer_at_a_time(world: World, db: psycopg.Connection[Any], db_url: str) -> None:
    fill(db, world.run_a, 2000, 1)
    with psycopg.connect(db_url) as other:
        assert other.execute("select meshlogs.index_run_logs(20000)").fetchone() == (2000,)
        # `other` still holds its transaction's advisory lock: a second indexer backs off.
        assert db.execute("select meshlogs.index_run_logs(20000)").fetchone() == (0,)
        other.rollback()
    assert index_all(db) == 2000


async def test_like_metacharacters_are_patterns_not_sql(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    db.execute(
        "select append_run_logs(%s, %s::jsonb)",
        (
            world.run_a,
            json.dumps(
                [
                    {"level": "info", "message": "100% done"},
                    {"level": "info", "message": "under_score"},
                    {"level": "info", "message": "quote ' and \" here"},
                ]
            ),
        ),
    )
    token = server.user_token(world.owner)
    cases = {
        "message=ilike.*100%25*": [3],
        "message=like.under_score": [4],
        "message=like.under\\_score": [4],
        "message=ilike.*'*": [5],
        'message=ilike.*"*': [5],
    }
    for query, expected in cases.items():
        status, _, body = await api.get(
            f"/rest/v1/run_logs?select=seq&run_id=eq.{world.run_a}&{query}&order=seq", token=token
        )
        assert status == 200 and [r["seq"] for r in body] == expected, (query, body)


@pytest.mark.parametrize("indexed", [False, True], ids=["unindexed", "indexed"])
async def test_search_function(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any], indexed: bool
) -> None:
    fill(db, world.run_a, 3000, 1)
    fill(db, world.run_b, 3000, 1)  # the same text in the other tenant's run
    if indexed:
        assert index_all(db) == 6000
    url = "/rest/v1/rpc/search_run_logs"
    viewer = server.user_token(world.viewer)

    async def search(token: str | None, key: str = "anon", **args: Any) -> tuple[int, Any]:
        status, _, body = await api.post(url, token=token, key=key, json={"p_run_id": world.run_a, **args})
        return status, body

    status, body = await search(viewer, p_query="ITEM-0012", p_limit=5)
    assert status == 200
    assert [r["message"].split()[2] for r in body] == [f"item-{i:06d}" for i in range(1200, 1205)]
    assert set(body[0]) == {"id", "run_id", "seq", "ts", "level", "step", "message", "attrs"}
    last = body[-1]["seq"]
    status, body = await search(viewer, p_query="item-0012", p_after_seq=last, p_limit=1000)
    assert status == 200 and len(body) == 95 and body[0]["seq"] == last + 1
    status, body = await search(viewer, p_query="item-000(1|2)99 took", p_regex=True)
    assert status == 200 and [r["message"].split()[2] for r in body] == ["item-000199", "item-000299"]
    # Anchors mean the line, not the chunk the line was indexed in; \A forces the line scan.
    for regex in (
        "^build [a-z]+ item-0000[0-9]0 ",
        "item-00101[12] took [0-9]+ms$",
        "\\Abuild [a-z]+ item-0000[0-9]0 ",
    ):
        status, body = await search(viewer, p_query=regex, p_regex=True)
        want = [
            r[0]
            for r in db.execute(
                "select seq from run_logs where run_id = %s and message ~* %s order by seq limit 100",
                (world.run_a, regex),
            )
        ]
        assert status == 200 and [r["seq"] for r in body] == want and want, (regex, body)
    # Chunks join lines with newlines: a match across two lines is not a match.
    status, body = await search(viewer, p_query="ms\nbuild")
    assert (status, body) == (200, [])
    status, body = await search(viewer, p_query="ms.build", p_regex=True)
    assert (status, body) == (200, [])
    # LIKE metacharacters in a plain query are literal
    for query in ("%", "_", "item-0012%", "\\"):
        status, body = await search(viewer, p_query=query)
        assert (status, body) == (200, []), query

    # nobody sees another tenant's lines through the search, whatever run they name
    for token, key in ((server.user_token(world.outsider), "anon"), (None, "anon")):
        status, body = await search(token, key, p_query="item-0012")
        assert (status, body) == (200, [])
    status, body = await search(None, "service", p_query="item-0012", p_limit=3)
    assert status == 200 and len(body) == 3

    for bad in ({"p_query": ""}, {"p_query": "x" * 1001}):
        status, body = await search(viewer, **bad)
        assert status == 400 and body["code"] == "22023"
    status, body = await search(viewer, p_query="[unclosed", p_regex=True)
    assert status == 400 and body["code"] == "2201B"


async def test_search_function_uses_the_chunk_index(world: World, db: psycopg.Connection[Any]) -> None:
    fill(db, world.run_a, 200_000, 1)
    fill(db, world.run_b, 30_000, 5)
    fill(db, world.run_a, 500, 2)  # a partial chunk at the end: scanned, not indexed
    index_all(db)
    db.execute("analyze meshlogs.run_log_chunks")
    db.execute("vacuum analyze run_logs")
    with db.transaction(force_rollback=True):
        db.execute("load 'auto_explain'")
        db.execute("set local auto_explain.log_min_duration = 0")
        db.execute("set local auto_explain.log_nested_statements = on")
        db.execute("set local client_min_messages = log")
        db.execute("set local auto_explain.log_level = notice")
        notices: list[str] = []
        db.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        db.execute("set local role authenticated")
        db.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": world.viewer, "role": "authenticated"}),),
        )
        rows = db.execute(
            "select seq from public.search_run_logs(%s, 'item-012345')", (world.run_a,)
        ).fetchall()
        tail = db.execute(
            "select seq from public.search_run_logs(%s, 'item-000444', 200000)", (world.run_a,)
        ).fetchall()
    assert rows == [(12348,)]  # 2 lines of the world, then item-000000 at seq 3
    assert tail == [(200447,)]  # found in the unindexed tail
    inner = [n for n in notices if "run_log_chunks" in n]
    assert inner and "run_log_chunks_body_trgm" in inner[0], notices


async def test_the_server_indexes_in_the_background(
    world: World, db_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    fill(db, world.run_a, 2998, 1)  # 3000 lines with the world's two
    async with running_server(db_url, tmp_path, search_index_interval=0.05) as srv:
        deadline = time.monotonic() + 60
        while (state := db.execute("select indexed_seq from meshlogs.run_log_search_state").fetchall()) != [
            (3000,)
        ]:
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.05)
        indexer = srv.app[SEARCH_INDEXER]
        assert indexer.lines_indexed == 3000 and indexer.failures == 0


async def test_no_background_indexer_when_turned_off(
    world: World, db_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    fill(db, world.run_a, 2998, 1)
    async with running_server(db_url, tmp_path, search_index_interval=0) as srv:
        assert SEARCH_INDEXER not in srv.app
        await asyncio.sleep(0.3)
    assert db.execute("select count(*) from meshlogs.run_log_search_state").fetchone() == (0,)


@pytest.mark.parametrize(
    ("rows_per_s", "factor"),
    [
        (0, DUTY_PAUSE),
        (-5, DUTY_PAUSE),
        (2_000, 2 * DUTY_PAUSE),
        (10_000, 6 * DUTY_PAUSE),
        (10**7, MAX_PAUSE),
    ],
)
def test_the_indexer_leaves_more_room_the_busier_live_writes_are(rows_per_s: float, factor: float) -> None:
    assert pause_factor(rows_per_s) == pytest.approx(factor)
    assert pause_factor(rows_per_s + 1) >= pause_factor(rows_per_s)


async def test_a_backlog_with_no_live_writes_is_indexed_a_third_of_the_time(
    world: World, db_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    fill(db, world.run_a, 3 * BATCH_LINES, 1)  # written before the server's stream starts: a backlog
    async with running_server(db_url, tmp_path, search_index_interval=0.05) as srv:
        indexer = srv.app[SEARCH_INDEXER]
        deadline = time.monotonic() + 60
        while indexer.lines_indexed < 3 * BATCH_LINES:
            assert time.monotonic() < deadline, indexer.lines_indexed
            await asyncio.sleep(0.05)
        assert indexer.duty == pytest.approx(1 / (1 + DUTY_PAUSE))
        assert indexer.failures == 0


async def test_live_writes_slow_the_indexer_down_and_it_still_catches_up(
    world: World, db_url: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    async with running_server(db_url, tmp_path, search_index_interval=0.05) as srv:
        indexer = srv.app[SEARCH_INDEXER]
        stop = asyncio.Event()

        async def write_live() -> int:
            written = 0
            async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
                while not stop.is_set() and written < 200_000:
                    # Batches big enough to outrun the indexer, so that it has a backlog to pace.
                    batch = [{"level": "info", "message": f"live-{written + i}"} for i in range(5000)]
                    sql = "select append_run_logs(%s, %s::jsonb)"
                    await conn.execute(sql, (world.run_a, json.dumps(batch)))
                    written += 5000
            return written

        writer = asyncio.create_task(write_live())
        try:
            deadline = time.monotonic() + 60
            while indexer.lines_indexed < 3 * BATCH_LINES:  # at least two paced calls under load
                assert time.monotonic() < deadline and not writer.done(), indexer.lines_indexed
                await asyncio.sleep(0.05)
            assert indexer.duty < 1 / (1 + DUTY_PAUSE)
        finally:
            stop.set()
            written = await asyncio.wait_for(writer, 30)
        deadline = time.monotonic() + 120  # once writes stop, the backlog is indexed to the last chunk
        complete = (written + 2) // 200 * 200  # the world holds 2 lines of run_a already
        while (indexer.lines_indexed, indexer.failures) != (complete, 0):
            assert time.monotonic() < deadline, (indexer.lines_indexed, written)
            await asyncio.sleep(0.05)


def test_deleting_a_run_deletes_its_search_chunks(world: World, db: psycopg.Connection[Any]) -> None:
    """The chunks hold a copy of the log text: they go with the run (migration 0013)."""
    fill(db, world.run_a, 998, 1)  # 1000 lines with the world's two
    fill(db, world.run_b, 999, 1)
    assert index_all(db) == 1000 + 1000
    db.execute("delete from workflow_runs where id = %s", (world.run_a,))
    per_run = "select run_id::text, count(*) from {} group by run_id"
    assert dict(db.execute(per_run.format("meshlogs.run_log_chunks")).fetchall()) == {world.run_b: 5}
    assert dict(db.execute(per_run.format("meshlogs.run_log_search_state")).fetchall()) == {world.run_b: 1}
