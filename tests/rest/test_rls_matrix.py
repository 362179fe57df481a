"""Who sees what through /rest/v1: every role × every exposed table, rows checked by id."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.factories import World
from tests.rest.conftest import Api
from tests.support.server import RunningServer

ROLES = ["owner", "editor", "viewer", "outsider", "anon", "service"]


def _expected(world: World, db: psycopg.Connection[Any]) -> dict[str, dict[str, set[str] | int]]:
    """Table -> role -> the set of row keys that role may read (or an HTTP status if refused)."""

    def ids(sql: str, *args: Any) -> set[str]:
        return {str(r[0]) for r in db.execute(sql, args).fetchall()}

    a_members = ids("select user_id from project_members where project_id = %s", world.project_a)
    b_members = ids("select user_id from project_members where project_id = %s", world.project_b)
    a_logs = ids("select id from run_logs where run_id = %s", world.run_a)
    b_logs = ids("select id from run_logs where run_id = %s", world.run_b)
    a_wf, b_wf = {world.workflow_a}, {world.workflow_b}
    per_project = {
        "projects": ({world.project_a}, {world.project_b}),
        "project_members": (a_members, b_members),
        "workflow_definitions": (a_wf, b_wf),
        "workflow_runs": ({world.run_a}, {world.run_b}),
        "run_logs": (a_logs, b_logs),
    }
    table: dict[str, dict[str, set[str] | int]] = {}
    for name, (a, b) in per_project.items():
        table[name] = {
            "owner": a,
            "editor": a,
            "viewer": a,
            "outsider": b,
            "anon": set(),
            "service": a | b,
        }
    table["run_log_seq"] = {
        "owner": 403,
        "editor": 403,
        "viewer": 403,
        "outsider": 403,
        "anon": 401,
        "service": {world.run_a, world.run_b},
    }
    return table


KEY_COLUMN = {
    "projects": "id",
    "project_members": "user_id",
    "workflow_definitions": "id",
    "workflow_runs": "id",
    "run_logs": "id",
    "run_log_seq": "run_id",
}


@pytest.mark.parametrize("role", ROLES)
async def test_read_matrix(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any], role: str
) -> None:
    expected = _expected(world, db)
    token = None if role in ("anon", "service") else server.user_token(getattr(world, role))
    key = "service" if role == "service" else "anon"
    for table, by_role in expected.items():
        want = by_role[role]
        column = KEY_COLUMN[table]
        status, headers, body = await api.get(
            f"/rest/v1/{table}?select={column}", token=token, key=key, headers={"Prefer": "count=exact"}
        )
        if isinstance(want, int):
            assert status == want and body["code"] == "42501", (table, role, body)
            continue
        assert status == 200, (table, role, body)
        got = {str(row[column]) for row in body}
        assert got == want, (table, role)
        assert headers["Content-Range"].endswith(f"/{len(want)}")
        # filtering on another tenant's keys never reveals anything
        if role in ("owner", "outsider"):
            other = expected[table]["outsider" if role == "owner" else "owner"]
            assert isinstance(other, set)
            for value in other:
                _, _, body = await api.get(
                    f"/rest/v1/{table}?select={column}&{column}=eq.{value}", token=token, key=key
                )
                assert body == [], (table, role, value)


#: Who may change a run's status (PATCH workflow_runs): editors and owners of its project (RLS
#: ``my_projects('editor')``), and the service role (BYPASSRLS). For everyone else RLS hides the row.
RUN_WRITERS = {"owner", "editor", "service"}


@pytest.mark.parametrize("role", ROLES)
async def test_write_matrix_run_status(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any], role: str
) -> None:
    """Only editors, owners and the service role may change a run; for others 0 rows are updated."""
    token = None if role in ("anon", "service") else server.user_token(getattr(world, role))
    key = "service" if role == "service" else "anon"
    got, _, body = await api.request(
        "PATCH",
        f"/rest/v1/workflow_runs?id=eq.{world.run_a}&select=status",
        token=token,
        key=key,
        json={"status": "paused"},
        headers={"Prefer": "return=representation"},
    )
    assert got == 200, body
    now = db.execute("select status from workflow_runs where id = %s", (world.run_a,)).fetchone()
    other = db.execute("select status from workflow_runs where id = %s", (world.run_b,)).fetchone()
    if role in RUN_WRITERS:
        assert body == [{"status": "paused"}] and now == ("paused",), (role, body)
    else:
        assert body == [] and now == ("running",), (role, body)
    assert other == ("running",)  # the filter kept the write to run A

    # a PATCH naming both tenants' runs changes exactly those the role may write
    got, _, body = await api.request(
        "PATCH",
        f"/rest/v1/workflow_runs?id=in.({world.run_a},{world.run_b})&select=id",
        token=token,
        key=key,
        json={"status": "canceled"},
        headers={"Prefer": "return=representation"},
    )
    assert got == 200, body
    changed = {row["id"] for row in body}
    want = {
        "owner": {world.run_a},
        "editor": {world.run_a},
        "service": {world.run_a, world.run_b},
        "outsider": {world.run_b},  # the owner of project B
    }.get(role, set())
    assert changed == want, (role, body)
    rows = db.execute("select id::text from workflow_runs where status = 'canceled'").fetchall()
    assert {r[0] for r in rows} == want


@pytest.mark.parametrize("role", ["owner", "viewer", "anon"])
async def test_nobody_but_service_writes_logs(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any], role: str
) -> None:
    token = None if role == "anon" else server.user_token(getattr(world, role))
    row = {"run_id": world.run_a, "seq": 99, "level": "info", "message": "forged"}
    status, _, body = await api.post("/rest/v1/run_logs", token=token, json=row)
    assert status == (401 if role == "anon" else 403) and body["code"] == "42501"
    status, _, body = await api.request("DELETE", f"/rest/v1/run_logs?run_id=eq.{world.run_a}", token=token)
    assert status == (401 if role == "anon" else 403) and body["code"] == "42501"
    assert db.execute("select count(*) from run_logs").fetchone() == (3,)


async def test_viewer_cannot_add_members(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]
) -> None:
    status, _, body = await api.post(
        "/rest/v1/project_members",
        token=server.user_token(world.viewer),
        json={"project_id": world.project_a, "user_id": world.outsider, "role": "viewer"},
    )
    assert status == 403 and body["code"] == "42501"
    assert "row-level security" in body["message"]
    status, _, body = await api.post(
        "/rest/v1/project_members",
        token=server.user_token(world.outsider),
        json={"project_id": world.project_a, "user_id": world.outsider, "role": "owner"},
    )
    assert status == 403 and body["code"] == "42501"
    members = db.execute(
        "select count(*) from project_members where project_id = %s", (world.project_a,)
    ).fetchone()
    assert members == (3,)
