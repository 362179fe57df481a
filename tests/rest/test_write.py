"""POST/PATCH/DELETE on tables (RLS applies), and their bad input."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.factories import World
from tests.rest.conftest import Api
from tests.support.server import RunningServer

REPR = {"Prefer": "return=representation"}


async def test_insert_update_delete(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    owner = server.user_token(world.owner)
    status, headers, body = await api.post(
        "/rest/v1/workflow_runs?select=project_id,status",
        token=owner,
        json={"project_id": world.project_a, "workflow_id": world.workflow_a, "status": "running"},
        headers=REPR,
    )
    assert (status, body) == (201, [{"project_id": world.project_a, "status": "running"}])
    assert headers["Preference-Applied"] == "return=representation"

    status, headers, body = await api.post(
        "/rest/v1/workflow_runs",
        token=owner,
        json=[
            {"project_id": world.project_a, "workflow_id": world.workflow_a, "status": "paused"},
            {"project_id": world.project_a, "workflow_id": world.workflow_a, "status": "failed"},
        ],
    )
    assert (status, body) == (201, None)
    count = db.execute("select count(*) from workflow_runs where project_id = %s", (world.project_a,))
    assert count.fetchone() == (4,)

    status, _, body = await api.request(
        "PATCH",
        f"/rest/v1/workflow_runs?project_id=eq.{world.project_a}&status=eq.paused",
        token=owner,
        json={"status": "canceled"},
    )
    assert (status, body) == (204, None)
    row = db.execute(
        "select count(*) from workflow_runs where status = 'canceled' and finished_at is not null"
    ).fetchone()
    assert row == (1,)

    status, headers, body = await api.request(
        "DELETE",
        f"/rest/v1/workflow_runs?project_id=eq.{world.project_a}&status=in.(canceled,failed)&select=status",
        token=owner,
        headers={**REPR, "Prefer": "return=representation,count=exact"},
    )
    assert status == 200 and sorted(r["status"] for r in body) == ["canceled", "failed"]
    assert headers["Content-Range"] == "0-1/2"


async def test_single_object_write_and_rollback(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    status, _, body = await api.post(
        "/rest/v1/workflow_runs?select=status",
        token=server.user_token(world.editor),
        json={"project_id": world.project_a, "workflow_id": world.workflow_a, "status": "paused"},
        headers={
            "Prefer": "return=representation,tx=rollback",
            "Accept": "application/vnd.pgrst.object+json",
        },
    )
    assert (status, body) == (201, {"status": "paused"})
    status, _, body = await api.post(
        "/rest/v1/projects",
        token=server.user_token(world.viewer),
        json={"owner": world.viewer, "name": "Viewer's own"},
        headers={"Prefer": "tx=rollback"},
    )
    assert (status, body) == (201, None)
    assert db.execute("select count(*) from projects").fetchone() == (2,)
    assert db.execute("select count(*) from workflow_runs").fetchone() == (2,)


async def test_rls_rejects_foreign_rows(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    status, _, body = await api.post(
        "/rest/v1/workflow_runs",
        token=server.user_token(world.viewer),
        json={"project_id": world.project_a, "workflow_id": world.workflow_a, "status": "running"},
    )
    assert status == 403 and body["code"] == "42501"
    status, _, body = await api.post(
        "/rest/v1/projects", token=server.user_token(world.viewer), json={"owner": world.owner, "name": "x"}
    )
    assert status == 403 and body["code"] == "42501"
    status, _, body = await api.request(
        "DELETE", f"/rest/v1/projects?id=eq.{world.project_b}", token=server.user_token(world.owner)
    )
    assert (status, body) == (204, None)
    assert db.execute("select count(*) from projects").fetchone() == (2,)


async def test_bad_write_input(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    owner = server.user_token(world.owner)
    base = {"project_id": world.project_a, "workflow_id": world.workflow_a, "status": "running"}
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", "/rest/v1/workflow_runs", {"json": {**base, "nope": 1}}, 400, "PGRST204"),
        ("POST", "/rest/v1/workflow_runs", {"json": [base, {"status": "running"}]}, 400, "PGRST102"),
        ("POST", "/rest/v1/workflow_runs", {"json": "just a string"}, 400, "PGRST102"),
        ("POST", "/rest/v1/workflow_runs", {"json": {**base, "status": "exploded"}}, 400, "23514"),
        ("POST", "/rest/v1/workflow_runs", {"json": {**base, "status": None}}, 400, "23502"),
        ("POST", "/rest/v1/workflow_runs", {"json": {**base, "project_id": world.project_b}}, 403, "42501"),
        (
            "POST",
            "/rest/v1/workflow_runs",
            {"data": b"\xc3\x28", "headers": {"Content-Type": "application/json"}},
            400,
            "PGRST102",
        ),
        (
            "POST",
            "/rest/v1/workflow_runs",
            {"data": b"status=running", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            400,
            "PGRST102",
        ),
        ("POST", "/rest/v1/workflow_runs?on_conflict=id", {"json": base}, 400, "PGRST127"),
        (
            "POST",
            "/rest/v1/workflow_runs",
            {"json": base, "headers": {"Prefer": "resolution=merge-duplicates"}},
            400,
            "PGRST127",
        ),
        ("POST", "/rest/v1/workflow_runs", {"json": {**base, "status": "a\u0000"}}, 400, "22P05"),
        ("PATCH", "/rest/v1/workflow_runs?id=eq.x", {"json": [base]}, 400, "PGRST102"),
        ("PATCH", f"/rest/v1/workflow_runs?id=eq.{world.run_a}", {"json": {"id; drop": 1}}, 400, "PGRST204"),
        ("PATCH", "/rest/v1/workflow_runs?nope=eq.1", {"json": {"status": "paused"}}, 400, "42703"),
        ("DELETE", "/rest/v1/workflow_runs?id=gt.abc", {}, 400, "22P02"),
    ]
    for method, path, kwargs, status, code in cases:
        got, _, body = await api.request(method, path, token=owner, **kwargs)
        assert (got, body["code"] if isinstance(body, dict) else body) == (status, code), (method, path, body)
    runs = db.execute("select count(*), min(status), max(status) from workflow_runs").fetchone()
    assert runs == (2, "running", "running")
