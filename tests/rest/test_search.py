"""Whole-log search: ``ilike`` on run_logs.message is served by the (run_id, message) trigram index."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from tests.factories import World
from tests.rest.conftest import Api
from tests.support.server import RunningServer

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


async def test_index_serves_run_scoped_search(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    fill(db, world.run_a, 30_000, 1)
    fill(db, world.run_b, 30_000, 5)
    db.execute("vacuum analyze run_logs")
    index = db.execute("select indexdef from pg_indexes where indexname = 'run_logs_message_trgm'").fetchone()
    assert index is not None and "gin (run_id, message" in index[0]

    # A rare term: the planner picks the composite index with both conditions in its Index Cond.
    explained = plan(db, world.run_a, "%item-012345%")
    assert "run_logs_message_trgm" in explained, explained
    assert "run_id = " in explained and "~~*" in explained.split("Index Cond", 1)[1], explained

    # Same results through REST as in SQL, including ilike's case-insensitivity and PostgREST's '*'.
    token = server.user_token(world.viewer)
    status, _, body = await api.get(
        f"/rest/v1/run_logs?select=seq,message&run_id=eq.{world.run_a}&message=ilike.*ITEM-01234*&order=seq",
        token=token,
    )
    assert status == 200
    expected = db.execute(
        "select seq, message from run_logs where run_id = %s and message ilike '%%item-01234%%' order by seq",
        (world.run_a,),
    ).fetchall()
    assert [(r["seq"], r["message"]) for r in body] == expected and len(expected) == 10

    # The other tenant's run has the same words: the viewer never sees them.
    status, _, body = await api.get(
        f"/rest/v1/run_logs?select=seq&run_id=eq.{world.run_b}&message=ilike.*item-01234*", token=token
    )
    assert (status, body) == (200, [])


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


async def test_search_function(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    fill(db, world.run_a, 3000, 1)
    fill(db, world.run_b, 3000, 1)  # the same text in the other tenant's run
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


async def test_search_function_uses_the_index(world: World, db: psycopg.Connection[Any]) -> None:
    fill(db, world.run_a, 30_000, 1)
    fill(db, world.run_b, 30_000, 5)
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
    assert len(rows) == 1
    inner = [n for n in notices if "l.message ilike" in n]
    assert inner and "run_logs_message_trgm" in inner[0], notices
