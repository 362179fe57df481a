"""POST /rest/v1/rpc/<function>: append_run_logs for the service role, and everything that goes wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from tests.factories import World
from tests.rest.conftest import Api
from tests.support.server import RunningServer, running_server

LINES = [
    {"level": "info", "message": "one"},
    {"level": "warn", "message": "two", "step": "s", "attrs": {"k": 1}},
]


def logs(db: psycopg.Connection[Any], run: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "select seq, level, step, message, attrs from run_logs where run_id = %s order by seq", (run,)
    ).fetchall()


async def test_append_as_service_role(api: Api, world: World, db: psycopg.Connection[Any]) -> None:
    status, headers, body = await api.post(
        "/rest/v1/rpc/append_run_logs", key="service", json={"p_run_id": world.run_a, "p_lines": LINES}
    )
    assert (status, body) == (200, 4)
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert logs(db, world.run_a)[2:] == [(3, "info", None, "one", {}), (4, "warn", "s", "two", {"k": 1})]
    # idempotent retry with a batch key
    for _ in range(2):
        status, _, body = await api.post(
            "/rest/v1/rpc/append_run_logs",
            key="service",
            json={"p_run_id": world.run_a, "p_lines": LINES, "p_batch_key": "batch-1"},
        )
        assert (status, body) == (200, 6)
    assert len(logs(db, world.run_a)) == 6


async def test_tx_rollback_preference(api: Api, world: World, db: psycopg.Connection[Any]) -> None:
    status, headers, body = await api.post(
        "/rest/v1/rpc/append_run_logs",
        key="service",
        json={"p_run_id": world.run_a, "p_lines": LINES},
        headers={"Prefer": "tx=rollback"},
    )
    assert (status, body, headers["Preference-Applied"]) == (200, 4, "tx=rollback")
    assert len(logs(db, world.run_a)) == 2


@pytest.mark.parametrize(("who", "status"), [("owner", 403), ("anon", 401)])
async def test_users_may_not_append(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any], who: str, status: int
) -> None:
    token = server.user_token(world.owner) if who == "owner" else None
    got, _, body = await api.post(
        "/rest/v1/rpc/append_run_logs", token=token, json={"p_run_id": world.run_a, "p_lines": LINES}
    )
    assert got == status and body["code"] == "42501"
    assert body["message"] == "permission denied for function append_run_logs"
    assert len(logs(db, world.run_a)) == 2


@pytest.mark.parametrize(
    ("body", "status", "code", "message_part"),
    [
        ({"p_run_id": "RUN", "p_lines": [{"level": "loud", "message": "x"}]}, 400, "22023", "line 0"),
        ({"p_run_id": "RUN", "p_lines": {"not": "an array"}}, 400, "22023", "JSON array"),
        (
            {"p_run_id": "RUN", "p_lines": [{"level": "info", "message": "x", "ts": "soon"}]},
            400,
            "22007",
            "ts",
        ),
        (
            {"p_run_id": "00000000-0000-0000-0000-000000000000", "p_lines": LINES},
            409,
            "23503",
            "does not exist",
        ),
        ({"p_run_id": "not-a-uuid", "p_lines": LINES}, 400, "22P02", "uuid"),
        ({"p_run_id": "RUN"}, 404, "PGRST202", "append_run_logs(p_run_id)"),
        ({"p_run_id": "RUN", "p_lines": [], "evil": "1"}, 404, "PGRST202", "evil"),
        ({"p_run_id": "RUN", "p_lines": [{"level": "info", "message": "a\u0000b"}]}, 400, "22P05", "Unicode"),
    ],
)
async def test_bad_calls(
    api: Api,
    world: World,
    db: psycopg.Connection[Any],
    body: dict[str, Any],
    status: int,
    code: str,
    message_part: str,
) -> None:
    if body.get("p_run_id") == "RUN":
        body = {**body, "p_run_id": world.run_a}
    got, _, reply = await api.post("/rest/v1/rpc/append_run_logs", key="service", json=body)
    assert got == status, reply
    assert reply["code"] == code
    assert message_part in reply["message"] + (reply["details"] or "")
    assert len(logs(db, world.run_a)) == 2


async def test_bad_bodies_and_methods(api: Api, world: World, db: psycopg.Connection[Any]) -> None:
    url = "/rest/v1/rpc/append_run_logs"
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"data": b"\xff\xfe{not utf-8", "headers": {"Content-Type": "application/json"}}, 400, "PGRST102"),
        ({"data": b'{"p_run_id": ', "headers": {"Content-Type": "application/json"}}, 400, "PGRST102"),
        (
            {"data": b"p_run_id=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            400,
            "PGRST102",
        ),
        ({"data": b"{}", "headers": {"Content-Type": "text/plain"}}, 400, "PGRST102"),
        ({"json": [{"p_run_id": world.run_a}]}, 400, "PGRST127"),
        (
            {"json": {"p_run_id": world.run_a, "p_lines": []}, "headers": {"Content-Profile": "meshlogs"}},
            406,
            "PGRST106",
        ),
    ]
    for kwargs, status, code in cases:
        got, _, body = await api.post(url, key="service", **kwargs)
        assert (got, body["code"]) == (status, code), (kwargs, body)
    got, _, body = await api.get(url, key="service")
    assert (got, body["code"]) == (400, "PGRST127")
    got, _, body = await api.request("PUT", url, key="service", json={})
    assert (got, body["code"]) == (405, "PGRST101")
    got, _, body = await api.post("/rest/v1/rpc/no_such_function", key="service", json={})
    assert (got, body["code"]) == (404, "PGRST202")
    got, _, body = await api.post("/rest/v1/rpc/pg_sleep", key="service", json={"seconds": 5})
    assert (got, body["code"]) == (404, "PGRST202")  # only schema public is exposed
    got, _, body = await api.post(f"{url}?p_run_id=eq.x", key="service", json={})
    assert (got, body["code"]) == (400, "PGRST127")
    assert len(logs(db, world.run_a)) == 2


async def test_other_function_shapes(api: Api, world: World, db: psycopg.Connection[Any]) -> None:
    db.execute(
        """
        create function public.t_scalar(a int, b int default 10) returns int language sql as 'select a + b';
        create function public.t_set(n int) returns setof int language sql as 'select generate_series(1, n)';
        create function public.t_table(n int) returns table (i int, sq int) language sql
          as 'select g, g * g from generate_series(1, n) g';
        create function public.t_void() returns void language sql as '';
        create function public.t_json(doc jsonb) returns jsonb language sql as $$ select doc -> 'x' $$;
        create function public.t_over(a int) returns int language sql as 'select a';
        create function public.t_over(a text) returns text language sql as 'select a';
        """
    )
    db.execute("grant execute on all functions in schema public to service_role")
    calls = [
        ("t_scalar", {"a": 5}, 200, 15),
        ("t_scalar", {"a": 5, "b": 1}, 200, 6),
        ("t_set", {"n": 3}, 200, [1, 2, 3]),
        ("t_table", {"n": 2}, 200, [{"i": 1, "sq": 1}, {"i": 2, "sq": 4}]),
        ("t_void", {}, 204, None),
        ("t_json", {"doc": {"x": [1, "two"]}}, 200, [1, "two"]),
    ]
    for fn, args, status, expected in calls:
        got, _, body = await api.post(f"/rest/v1/rpc/{fn}", key="service", json=args)
        assert (got, body) == (status, expected), fn
    got, _, body = await api.post("/rest/v1/rpc/t_over", key="service", json={"a": 1})
    assert (got, body["code"]) == (300, "PGRST203")


async def test_append_truncates_to_the_servers_max_line_bytes(
    world: World, db: psycopg.Connection[Any], db_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """MESHLOGS_MAX_LINE_BYTES reaches append_run_logs() through REST, not only the writer SDK."""
    async with running_server(db_url, tmp_path, max_line_bytes=2048) as srv:
        api = Api(http, srv)
        status, _, body = await api.post(
            "/rest/v1/rpc/append_run_logs",
            key="service",
            json={"p_run_id": world.run_a, "p_lines": [{"level": "info", "message": "x" * 5000}]},
        )
        assert (status, body) == (200, 3)
    message = logs(db, world.run_a)[2][3]
    assert message.startswith("x" * 1000) and message.endswith(" … [truncated 2992 bytes]")
    assert len(message.encode()) <= 2048  # the marker fits inside the limit
