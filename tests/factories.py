"""Rows for tests: users, projects, memberships, workflows and runs, inserted as the superuser."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg

from meshlogs.store.users import create_user


@dataclass(frozen=True)
class World:
    """Two tenants: project A (owner, editor, viewer) and project B (outsider owns it)."""

    owner: str
    editor: str
    viewer: str
    outsider: str
    project_a: str
    project_b: str
    workflow_a: str
    workflow_b: str
    run_a: str
    run_b: str


def make_user(conn: psycopg.Connection[Any], email: str, password: str | None = None) -> str:
    """A user; with a password only when the test logs in (argon2 hashing costs ~50 ms each)."""
    if password is not None:
        return create_user(conn, email, password).id
    row = conn.execute(
        "insert into auth.users (id, email, email_confirmed_at) values (gen_random_uuid(), %s, now())"
        " returning id::text",
        (email,),
    ).fetchone()
    assert row is not None
    return str(row[0])


def make_project(conn: psycopg.Connection[Any], owner: str, name: str = "project") -> str:
    row = conn.execute(
        "insert into projects (owner, name) values (%s, %s) returning id::text", (owner, name)
    ).fetchone()
    assert row is not None
    return str(row[0])


def add_member(conn: psycopg.Connection[Any], project: str, user: str, role: str) -> None:
    conn.execute(
        "insert into project_members (project_id, user_id, role) values (%s, %s, %s)"
        " on conflict (project_id, user_id) do update set role = excluded.role",
        (project, user, role),
    )


def make_workflow(conn: psycopg.Connection[Any], project: str, slug: str = "deploy") -> str:
    row = conn.execute(
        "insert into workflow_definitions (project_id, slug, name, definition)"
        " values (%s, %s, %s, '{}') returning id::text",
        (project, slug, slug.title()),
    ).fetchone()
    assert row is not None
    return str(row[0])


def make_run(conn: psycopg.Connection[Any], project: str, workflow: str, status: str = "running") -> str:
    row = conn.execute(
        "insert into workflow_runs (project_id, workflow_id, status) values (%s, %s, %s) returning id::text",
        (project, workflow, status),
    ).fetchone()
    assert row is not None
    return str(row[0])


def append(
    conn: psycopg.Connection[Any], run: str, lines: list[dict[str, Any]], key: str | None = None
) -> int:
    row = conn.execute("select append_run_logs(%s, %s::jsonb, %s)", (run, json.dumps(lines), key)).fetchone()
    assert row is not None
    return int(row[0])


def make_world(conn: psycopg.Connection[Any]) -> World:
    owner = make_user(conn, "owner@example.com")
    editor = make_user(conn, "editor@example.com")
    viewer = make_user(conn, "viewer@example.com")
    outsider = make_user(conn, "outsider@example.com")
    project_a = make_project(conn, owner, "Project A")
    add_member(conn, project_a, editor, "editor")
    add_member(conn, project_a, viewer, "viewer")
    project_b = make_project(conn, outsider, "Project B")
    workflow_a = make_workflow(conn, project_a, "build")
    workflow_b = make_workflow(conn, project_b, "ship")
    run_a = make_run(conn, project_a, workflow_a)
    run_b = make_run(conn, project_b, workflow_b)
    append(conn, run_a, [{"level": "info", "message": "a1"}, {"level": "error", "message": "a2"}])
    append(conn, run_b, [{"level": "info", "message": "b1"}])
    return World(owner, editor, viewer, outsider, project_a, project_b, workflow_a, workflow_b, run_a, run_b)
