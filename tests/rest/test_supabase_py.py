"""The official Python ``supabase`` client (sync ``create_client``) against a real server.

The server runs in the test's event loop, so the blocking client runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError
from supabase import ClientOptions, create_client
from supabase_auth.errors import AuthApiError, AuthSessionMissingError

from meshlogs.store.users import create_user
from tests.factories import World, add_member, append
from tests.support.server import RunningServer

PASSWORD = "correct horse battery"
TIMEOUT = 60


@contextlib.contextmanager
def clients(server: RunningServer, *keys: str) -> Iterator[list[Any]]:
    """Sync clients sharing one httpx client that is closed afterwards (no leaked sockets)."""
    with httpx.Client(timeout=30) as http:
        options = ClientOptions(auto_refresh_token=False, persist_session=False, httpx_client=http)
        yield [create_client(server.url, key, options) for key in keys]


def _auth_flow(server: RunningServer) -> dict[str, Any]:
    with clients(server, server.anon_key) as (client,):
        return _auth_steps(client)


def _auth_steps(client: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    signed = client.auth.sign_up({"email": "py@example.com", "password": PASSWORD})
    out["signup_email"] = signed.user.email if signed.user else None
    out["signup_session"] = signed.session is not None
    try:
        client.auth.sign_in_with_password({"email": "py@example.com", "password": "wrong"})
    except AuthApiError as exc:
        out["bad_login"] = (exc.status, exc.code, exc.message)
    session = client.auth.sign_in_with_password({"email": "py@example.com", "password": PASSWORD})
    assert session.session is not None
    first = session.session
    out["token_type"] = first.token_type
    refreshed = client.auth.refresh_session()
    assert refreshed.session is not None
    out["rotated"] = refreshed.session.refresh_token != first.refresh_token
    user = client.auth.get_user()
    out["get_user"] = user.user.email if user else None
    access = refreshed.session.access_token
    client.auth.sign_out()
    try:
        client.auth.get_user(access)
    except AuthSessionMissingError:
        out["after_sign_out"] = "session missing"
    except AuthApiError as exc:
        out["after_sign_out"] = exc.code
    return out


async def test_auth_with_python_client(server: RunningServer) -> None:
    r = await asyncio.wait_for(asyncio.to_thread(_auth_flow, server), TIMEOUT)
    assert r == {
        "signup_email": "py@example.com",
        "signup_session": True,
        "bad_login": (400, "invalid_credentials", "Invalid login credentials"),
        "token_type": "bearer",
        "rotated": True,
        "get_user": "py@example.com",
        "after_sign_out": "session_not_found",
    }


def _rest_flow(server: RunningServer, run: str, other_run: str) -> dict[str, Any]:
    with clients(server, server.anon_key, server.service_key) as (client, service):
        return _rest_steps(client, service, run, other_run)


def _rest_steps(client: Any, service: Any, run: str, other_run: str) -> dict[str, Any]:
    client.auth.sign_in_with_password({"email": "py-viewer@example.com", "password": PASSWORD})
    out: dict[str, Any] = {}
    page = (
        client.table("run_logs").select("*").eq("run_id", run).gt("seq", 1).order("seq").range(0, 2).execute()
    )
    out["page"] = [row["seq"] for row in page.data]
    counted = (
        client.table("run_logs").select("seq", count="exact").eq("run_id", run).limit(1).execute()  # type: ignore[arg-type]
    )
    out["count"] = counted.count
    found = client.table("run_logs").select("seq").eq("run_id", run).ilike("message", "%needle%").execute()
    out["ilike"] = [row["seq"] for row in found.data]
    found = client.rpc("search_run_logs", {"p_run_id": run, "p_query": "NEEDLE"}).execute()
    out["search"] = [row["seq"] for row in found.data]
    levels = client.table("run_logs").select("seq").eq("run_id", run).in_("level", ["error"]).execute()
    out["in"] = [row["seq"] for row in levels.data]
    out["other"] = client.table("run_logs").select("*").eq("run_id", other_run).execute().data
    try:
        client.table("run_logs").select("*").eq("seq", "not-a-number").execute()
    except APIError as exc:
        out["bad_value"] = exc.code
    try:
        client.table("missing").select("*").execute()
    except APIError as exc:
        out["missing"] = exc.code
    out["rpc"] = (
        service.rpc(
            "append_run_logs", {"p_run_id": run, "p_lines": [{"level": "info", "message": "from python"}]}
        )
        .execute()
        .data
    )
    try:
        client.rpc("append_run_logs", {"p_run_id": run, "p_lines": []}).execute()
    except APIError as exc:
        out["rpc_as_user"] = exc.code
    return out


async def test_rest_with_python_client(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    viewer = create_user(db, "py-viewer@example.com", PASSWORD).id
    add_member(db, world.project_a, viewer, "viewer")
    append(
        db, world.run_a, [{"level": "info", "message": "a needle here"}, {"level": "info", "message": "x"}]
    )
    r = await asyncio.wait_for(asyncio.to_thread(_rest_flow, server, world.run_a, world.run_b), TIMEOUT)
    assert r == {
        "page": [2, 3, 4],
        "count": 4,
        "ilike": [3],
        "search": [3],
        "in": [2],
        "other": [],
        "bad_value": "22P02",
        "missing": "PGRST205",
        "rpc": 5,
        "rpc_as_user": "42501",
    }


@pytest.mark.parametrize("scope", ["local", "others", "global"])
async def test_sign_out_scopes_with_python_client(
    server: RunningServer, db: psycopg.Connection[Any], scope: str
) -> None:
    create_user(db, "scope@example.com", PASSWORD)

    def flow() -> tuple[bool, bool]:
        with clients(server, server.anon_key, server.anon_key) as (a, b):
            return steps(a, b)

    def steps(a: Any, b: Any) -> tuple[bool, bool]:
        a.auth.sign_in_with_password({"email": "scope@example.com", "password": PASSWORD})
        b.auth.sign_in_with_password({"email": "scope@example.com", "password": PASSWORD})
        a.auth.sign_out({"scope": scope})  # type: ignore[typeddict-item]

        def alive(client: Any) -> bool:
            session = client.auth.get_session()
            if session is None:
                return False
            try:
                client.auth.refresh_session(session.refresh_token)
                return True
            except AuthApiError:
                return False

        return alive(a), alive(b)

    a_alive, b_alive = await asyncio.wait_for(asyncio.to_thread(flow), TIMEOUT)
    assert a_alive == (scope == "others")
    assert b_alive == (scope == "local")
