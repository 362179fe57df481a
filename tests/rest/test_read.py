"""GET /rest/v1 against a real server: filters, order, paging, counts, media types, streaming."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from meshlogs.rest import routes
from tests.factories import World, append
from tests.rest.conftest import Api
from tests.support.server import RunningServer


@pytest.fixture
def lines(world: World, db: psycopg.Connection[Any]) -> World:
    """run_a holds seq 1..20: levels cycle, every 5th has a step, 7 and 14 mention 'Needle'."""
    append(
        db,
        world.run_a,
        [
            {
                "level": ("debug", "info", "warn", "error")[i % 4],
                "message": f"line {i}" + (" has a Needle" if i in (7, 14) else ""),
                "step": "build" if i % 5 == 0 else None,
                "attrs": {"i": i},
            }
            for i in range(3, 21)
        ],
    )
    return world


def seqs(body: Any) -> list[int]:
    return [row["seq"] for row in body]


async def test_filters_order_and_range(api: Api, lines: World, server: RunningServer) -> None:
    token = server.user_token(lines.viewer)
    run = lines.run_a
    status, headers, body = await api.get(
        f"/rest/v1/run_logs?select=seq,level&run_id=eq.{run}&seq=gt.4&seq=lte.12&order=seq.desc"
        "&offset=1&limit=3",
        token=token,
    )
    assert status == 200
    assert body == [{"seq": 11, "level": "error"}, {"seq": 10, "level": "warn"}, {"seq": 9, "level": "info"}]
    assert headers["Content-Range"] == "1-3/*"
    assert headers["Content-Type"] == "application/json; charset=utf-8"

    cases = {
        f"level=in.(warn,error)&run_id=eq.{run}&order=seq": [2, 3, 6, 7, 10, 11, 14, 15, 18, 19],
        f"message=ilike.*needle*&run_id=eq.{run}&order=seq": [7, 14],
        f"message=like.*Needle*&run_id=eq.{run}&order=seq": [7, 14],
        f"message=like.*needle*&run_id=eq.{run}": [],
        f"step=is.null&run_id=eq.{run}&seq=lte.6&order=seq": [1, 2, 3, 4, 6],
        f"step=not.is.null&run_id=eq.{run}&order=seq": [5, 10, 15, 20],
        f"level=neq.info&seq=lt.5&run_id=eq.{run}&order=seq": [2, 3, 4],
        f"seq=gte.19&run_id=eq.{run}&order=seq": [19, 20],
        f"or=(seq.eq.3,and(seq.gt.17,level.eq.error))&run_id=eq.{run}&order=seq": [3, 19],
        f"not.or=(seq.gt.2,level.eq.info)&run_id=eq.{run}": [2],
        f"seq=not.in.(1,2,3)&seq=lt.6&run_id=eq.{run}&order=seq.desc": [5, 4],
        f"message=match.^line 1[0-2]$&run_id=eq.{run}&order=seq": [10, 11, 12],
        f"message=imatch.NEEDLE&run_id=eq.{run}&order=seq": [7, 14],
        f"step=isdistinct.build&seq=lt.6&run_id=eq.{run}&order=seq": [1, 2, 3, 4],
        f"run_id=eq.{run}&order=step.desc.nullslast,seq.desc&limit=2": [20, 15],
        f"run_id=eq.{run}&order=step.asc.nullsfirst,seq&limit=2": [1, 2],
    }
    for query, expected in cases.items():
        status, _, body = await api.get(f"/rest/v1/run_logs?select=seq&{query}", token=token)
        assert status == 200, (query, body)
        assert seqs(body) == expected, query


async def test_select_aliases_and_casts(api: Api, lines: World, server: RunningServer) -> None:
    status, _, body = await api.get(
        f"/rest/v1/run_logs?select=n:seq,seq::text,attrs&run_id=eq.{lines.run_a}&seq=eq.3",
        token=server.user_token(lines.owner),
    )
    assert status == 200
    assert body == [{"n": 3, "seq": "3", "attrs": {"i": 3}}]


async def test_count_exact_range_headers_and_206(api: Api, lines: World, server: RunningServer) -> None:
    token = server.user_token(lines.viewer)
    path = f"/rest/v1/run_logs?select=seq&run_id=eq.{lines.run_a}&order=seq"
    status, headers, body = await api.get(path + "&limit=5", token=token, headers={"Prefer": "count=exact"})
    assert (status, headers["Content-Range"], seqs(body)) == (206, "0-4/20", [1, 2, 3, 4, 5])
    assert headers["Preference-Applied"] == "count=exact"

    status, headers, body = await api.get(
        path, token=token, headers={"Prefer": "count=exact", "Range-Unit": "items", "Range": "15-24"}
    )
    assert (status, headers["Content-Range"], seqs(body)) == (206, "15-19/20", [16, 17, 18, 19, 20])

    status, headers, _ = await api.get(path, token=token, headers={"Prefer": "count=exact"})
    assert (status, headers["Content-Range"]) == (200, "0-19/20")

    status, headers, body = await api.get(path + "&offset=30", token=token, headers={"Prefer": "count=exact"})
    assert status == 416
    assert body["code"] == "PGRST103" and headers["Content-Range"] == "*/20"

    status, headers, body = await api.get(
        path + "&seq=gt.100", token=token, headers={"Prefer": "count=exact"}
    )
    assert (status, headers["Content-Range"], body) == (200, "*/0", [])

    status, headers, _ = await api.get(path + "&limit=3", token=token, headers={"Prefer": "count=planned"})
    assert status in (200, 206) and headers["Content-Range"].startswith("0-2/")

    status, headers, body = await api.request(
        "HEAD", path + "&limit=4", token=token, headers={"Prefer": "count=exact"}
    )
    assert (status, headers["Content-Range"], body) == (206, "0-3/20", None)


async def test_limit_is_capped_at_max_rows(api: Api, lines: World, server: RunningServer) -> None:
    token = server.user_token(lines.viewer)
    max_rows = server.settings.rest_max_rows
    status, headers, body = await api.get(
        f"/rest/v1/run_logs?select=seq&run_id=eq.{lines.run_a}&limit=999999999999999999",
        token=token,
    )
    assert status == 200 and len(body) == 20 and max_rows >= 20
    assert headers["Content-Range"] == "0-19/*"


async def test_single_object(api: Api, lines: World, server: RunningServer) -> None:
    token = server.user_token(lines.viewer)
    obj = {"Accept": "application/vnd.pgrst.object+json"}
    status, headers, body = await api.get(
        f"/rest/v1/run_logs?select=seq,step&run_id=eq.{lines.run_a}&seq=eq.5", token=token, headers=obj
    )
    assert (status, body) == (200, {"seq": 5, "step": "build"})
    assert headers["Content-Type"].startswith("application/vnd.pgrst.object+json")
    status, _, body = await api.get(
        f"/rest/v1/run_logs?select=seq&run_id=eq.{lines.run_a}&seq=lt.3", token=token, headers=obj
    )
    assert status == 406 and body["code"] == "PGRST116" and body["details"] == "The result contains 2 rows"
    status, _, body = await api.get(
        f"/rest/v1/run_logs?select=seq,step&run_id=eq.{lines.run_a}&seq=eq.6",
        token=token,
        headers={"Accept": "application/vnd.pgrst.object+json;nulls=stripped"},
    )
    assert (status, body) == (200, {"seq": 6})


async def test_big_page_is_streamed_and_complete(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    # ~3 MiB of JSON: more than the 1 MiB buffer, so the response is streamed in chunks
    message = "x" * 8000
    for start in range(0, 400, 100):
        append(db, world.run_b, [{"level": "info", "message": f"{start + i} {message}"} for i in range(100)])
    status, headers, body = await api.get(
        f"/rest/v1/run_logs?select=seq,message&run_id=eq.{world.run_b}&order=seq&offset=1",
        token=server.user_token(world.outsider),
        headers={"Prefer": "count=exact"},
    )
    assert status == 206
    assert headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in headers
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Content-Range"] == "1-400/401"
    assert seqs(body) == list(range(2, 402))
    assert body[0]["message"].startswith("0 xxx")


async def test_other_tables(api: Api, world: World, server: RunningServer) -> None:
    token = server.user_token(world.viewer)
    status, _, body = await api.get("/rest/v1/workflow_runs?select=id,status", token=token)
    assert (status, body) == (200, [{"id": world.run_a, "status": "running"}])
    status, _, body = await api.get("/rest/v1/projects?select=name", token=token)
    assert (status, body) == (200, [{"name": "Project A"}])
    status, _, body = await api.get(
        "/rest/v1/project_members?select=role&order=role", token=server.user_token(world.outsider)
    )
    assert (status, body) == (200, [{"role": "owner"}])


async def test_new_table_is_found_without_restart(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    status, _, _ = await api.get("/rest/v1/run_logs?limit=1", key="service")
    assert status == 200  # the catalog is loaded now
    server.app[routes.CATALOG].min_reload_interval = 0.0  # (default: at most one reload a second)
    db.execute("create table public.late_table (id int primary key, name text)")
    db.execute("insert into public.late_table values (1, 'late')")
    db.execute("grant select on public.late_table to service_role")
    status, _, body = await api.get("/rest/v1/late_table?select=name", key="service")
    assert (status, body) == (200, [{"name": "late"}])


async def test_client_leaving_mid_stream_leaves_server_healthy(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    message = "y" * 8000
    for start in range(0, 400, 100):
        append(db, world.run_b, [{"level": "info", "message": f"{start + i} {message}"} for i in range(100)])
    token = server.user_token(world.outsider)
    url = f"{server.url}/rest/v1/run_logs?select=seq,message&run_id=eq.{world.run_b}&order=seq"
    for _ in range(3):
        async with api.http.get(url, headers=api.headers(token, server.anon_key, None)) as r:
            assert r.status == 200
            await r.content.readexactly(1000)
            r.close()  # drop the connection with most of the page unread
    # every pooled connection still works, and nothing is left half-open in a transaction
    for _ in range(12):
        status, _, body = await api.get(
            f"/rest/v1/run_logs?select=seq&run_id=eq.{world.run_b}&order=seq.desc&limit=1", token=token
        )
        assert (status, body) == (200, [{"seq": 401}])
    stuck = db.execute(
        "select count(*) from pg_stat_activity where datname = current_database()"
        " and state in ('idle in transaction', 'active') and pid <> pg_backend_pid()"
        " and backend_type = 'client backend' and query not like 'START_REPLICATION%%'"
    ).fetchone()
    assert stuck == (0,)
