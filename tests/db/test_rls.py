"""The RLS matrix: six kinds of caller × every table × select/insert/update/delete, on real Postgres.

Each attempt runs the way the REST layer and the realtime authorizer run user queries: inside a
transaction, ``SET LOCAL ROLE`` to the JWT's role and ``request.jwt.claims`` set to its claims, then
rolled back. The outcome is either the number of rows seen/affected or "denied" (an error).
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.factories import World, make_world

Outcome = str  # "rows:N" or "denied"


def attempt(
    conn: psycopg.Connection[Any], world: World, who: str, sql: str, params: dict[str, Any]
) -> Outcome:
    role, sub = {
        "owner": ("authenticated", world.owner),
        "editor": ("authenticated", world.editor),
        "viewer": ("authenticated", world.viewer),
        "outsider": ("authenticated", world.outsider),
        "anon": ("anon", None),
        "service": ("service_role", None),
    }[who]
    claims = {"role": role, **({"sub": sub} if sub else {})}
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(psycopg.sql.SQL("set local role {}").format(psycopg.sql.Identifier(role)))
            conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
            cur = conn.execute(sql, params)
            return f"rows:{cur.rowcount}"
    except psycopg.errors.InsufficientPrivilege:
        return "denied"


@pytest.fixture
def world(db: psycopg.Connection[Any]) -> World:
    return make_world(db)


CALLERS = ["owner", "editor", "viewer", "outsider", "anon", "service"]

# What each caller sees of project A's rows (project B belongs to the outsider and is checked below).
SELECT_A = {
    "projects": "select * from projects where id = %(project_a)s",
    "project_members": "select * from project_members where project_id = %(project_a)s",
    "workflow_definitions": "select * from workflow_definitions where project_id = %(project_a)s",
    "workflow_runs": "select * from workflow_runs where project_id = %(project_a)s",
    "run_logs": "select * from run_logs where run_id = %(run_a)s",
    "run_log_seq": "select * from run_log_seq where run_id = %(run_a)s",
}
MEMBER_COUNTS = {
    "projects": 1,
    "project_members": 3,
    "workflow_definitions": 1,
    "workflow_runs": 1,
    "run_logs": 2,
}

EXPECTED_SELECT: dict[str, dict[str, Outcome]] = {
    table: {
        **{who: f"rows:{MEMBER_COUNTS[table]}" for who in ("owner", "editor", "viewer")},
        "outsider": "rows:0",
        "anon": "rows:0",
        "service": f"rows:{MEMBER_COUNTS[table]}",
    }
    for table in MEMBER_COUNTS
}
EXPECTED_SELECT["run_log_seq"] = {**{w: "denied" for w in CALLERS}, "service": "rows:1"}


@pytest.mark.parametrize("table", sorted(SELECT_A))
def test_select(db: psycopg.Connection[Any], world: World, table: str) -> None:
    params = {"project_a": world.project_a, "run_a": world.run_a}
    got = {who: attempt(db, world, who, SELECT_A[table], params) for who in CALLERS}
    assert got == EXPECTED_SELECT[table]


def test_nobody_but_members_sees_project_b(db: psycopg.Connection[Any], world: World) -> None:
    for who in ("owner", "editor", "viewer", "anon"):
        assert (
            attempt(db, world, who, "select * from run_logs where run_id = %(r)s", {"r": world.run_b})
            == "rows:0"
        )
        assert (
            attempt(db, world, who, "select * from projects where id = %(p)s", {"p": world.project_b})
            == "rows:0"
        )
    assert (
        attempt(db, world, "outsider", "select * from run_logs where run_id = %(r)s", {"r": world.run_b})
        == "rows:1"
    )


def test_unfiltered_select_returns_only_own_tenant(db: psycopg.Connection[Any], world: World) -> None:
    assert attempt(db, world, "viewer", "select * from run_logs", {}) == "rows:2"
    assert attempt(db, world, "outsider", "select * from run_logs", {}) == "rows:1"
    assert attempt(db, world, "service", "select * from run_logs", {}) == "rows:3"


WRITES: dict[str, dict[str, str]] = {
    "insert": {
        "projects": "insert into projects (owner, name) values (%(me)s, 'x')",
        "project_members": "insert into project_members (project_id, user_id, role)"
        " values (%(project_a)s, gen_random_uuid(), 'viewer')",
        "workflow_definitions": "insert into workflow_definitions (project_id, slug, definition)"
        " values (%(project_a)s, 'new', '{}')",
        "workflow_runs": "insert into workflow_runs (project_id, workflow_id, status)"
        " values (%(project_a)s, %(workflow_a)s, 'running')",
        "run_logs": "insert into run_logs (run_id, seq, level, message) values (%(run_a)s, 99, 'info', 'x')",
        "run_log_seq": "insert into run_log_seq (run_id) values (%(workflow_a)s)",
    },
    "update": {
        "projects": "update projects set name = 'renamed' where id = %(project_a)s",
        "project_members": "update project_members set role = 'editor' where user_id = %(viewer)s",
        "workflow_definitions": "update workflow_definitions set slug = 'x' where project_id = %(project_a)s",
        "workflow_runs": "update workflow_runs set status = 'failed' where id = %(run_a)s",
        "run_logs": "update run_logs set message = 'forged' where run_id = %(run_a)s",
        "run_log_seq": "update run_log_seq set last_seq = 0 where run_id = %(run_a)s",
    },
    "delete": {
        "projects": "delete from projects where id = %(project_a)s",
        "project_members": "delete from project_members where user_id = %(viewer)s",
        "workflow_definitions": "delete from workflow_definitions where project_id = %(project_a)s",
        "workflow_runs": "delete from workflow_runs where id = %(run_a)s",
        "run_logs": "delete from run_logs where run_id = %(run_a)s",
        "run_log_seq": "delete from run_log_seq where run_id = %(run_a)s",
    },
}

# Users: RLS either lets the write through (rows:N) or filters it to rows:0 / rejects it (denied).
OK_FOR = {
    ("insert", "projects"): {"owner", "editor", "viewer", "outsider", "service"},
    ("insert", "project_members"): {"owner", "service"},
    ("insert", "workflow_definitions"): {"owner", "editor", "service"},
    ("insert", "workflow_runs"): {"owner", "editor", "service"},
    ("insert", "run_logs"): set(),
    ("insert", "run_log_seq"): set(),
    ("update", "projects"): {"owner", "service"},
    ("update", "project_members"): {"owner", "service"},
    ("update", "workflow_definitions"): {"owner", "editor", "service"},
    ("update", "workflow_runs"): {"owner", "editor", "service"},
    ("update", "run_logs"): set(),
    ("update", "run_log_seq"): set(),
    ("delete", "projects"): {"owner", "service"},
    ("delete", "project_members"): {"owner", "service"},
    ("delete", "workflow_definitions"): {"owner", "editor", "service"},
    ("delete", "workflow_runs"): {"owner", "service"},
    ("delete", "run_logs"): {"service"},
    ("delete", "run_log_seq"): set(),
}


@pytest.mark.parametrize(("op", "table"), sorted(OK_FOR))
def test_writes(db: psycopg.Connection[Any], world: World, op: str, table: str) -> None:
    allowed = OK_FOR[(op, table)]
    for who in CALLERS:
        me = {
            "owner": world.owner,
            "editor": world.editor,
            "viewer": world.viewer,
            "outsider": world.outsider,
        }.get(who, world.owner)
        params = {
            "project_a": world.project_a,
            "workflow_a": world.workflow_a,
            "run_a": world.run_a,
            "viewer": world.viewer,
            "me": me,
        }
        try:
            outcome = attempt(db, world, who, WRITES[op][table], params)
        except psycopg.errors.CheckViolation:
            outcome = "denied"  # RLS WITH CHECK failures surface as this class on some versions
        except psycopg.Error as exc:
            if "row-level security" in str(exc):
                outcome = "denied"
            else:
                raise
        succeeded = outcome.startswith("rows:") and outcome != "rows:0"
        assert succeeded == (who in allowed), f"{who} {op} {table}: {outcome}"


def test_append_run_logs_is_service_role_only(db: psycopg.Connection[Any], world: World) -> None:
    sql = 'select append_run_logs(%(run_a)s, \'[{"level":"info","message":"m"}]\'::jsonb)'
    params = {"run_a": world.run_a}
    for who in ("owner", "editor", "viewer", "outsider", "anon"):
        assert attempt(db, world, who, sql, params) == "denied"
    assert attempt(db, world, "service", sql, params) == "rows:1"


def test_forged_claims_without_role_change_see_nothing_extra(
    db: psycopg.Connection[Any], world: World
) -> None:
    """Claims naming another user only matter through auth.uid(); the role stays authenticated."""
    assert (
        attempt(db, world, "outsider", "select * from run_logs where run_id = %(r)s", {"r": world.run_a})
        == "rows:0"
    )


def test_owner_is_always_a_member(db: psycopg.Connection[Any], world: World) -> None:
    row = db.execute(
        "select role from project_members where project_id = %s and user_id = %s",
        (world.project_a, world.owner),
    ).fetchone()
    assert row == ("owner",)
