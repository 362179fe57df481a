"""The official supabase-js (2.119.0, Node) against a real server: Auth and REST as a console uses them.

The scenarios live in ``tests/js/client.mjs``; each prints one JSON object that is checked here. Node
20 has no global WebSocket, which supabase-js' ``createClient`` insists on, so it runs with
``--experimental-websocket`` there (PROTOCOL.md §9, TOOLCHAIN.md G1). The Node packages come from
``npm ci --prefix tests/js`` (``scripts/setup --test``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meshlogs.store.users import create_user
from tests.factories import World, append
from tests.support.server import RunningServer, running_server

JS_DIR = Path(__file__).resolve().parents[1] / "js"
TIMEOUT = 60
PASSWORD = "correct horse battery"


def _node_args() -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node >= 20 is required for the supabase-js tests)")
    if not (JS_DIR / "node_modules" / "@supabase" / "supabase-js").is_dir():
        pytest.fail("supabase-js is not installed: run `npm ci --prefix tests/js` (scripts/setup --test)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True, timeout=10)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    return [node, "--experimental-websocket"] if major < 22 else [node]


async def run_scenario(server: RunningServer, scenario: str, **env: str) -> dict[str, Any]:
    full_env = {
        **os.environ,
        "MESHLOGS_URL": server.url,
        "MESHLOGS_ANON_KEY": server.anon_key,
        "MESHLOGS_SERVICE_KEY": server.service_key,
        "NODE_NO_WARNINGS": "1",
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        *_node_args(),
        str(JS_DIR / "client.mjs"),
        scenario,
        cwd=JS_DIR,
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"node failed ({proc.returncode}):\n{err.decode()}"
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@pytest.fixture
async def server_no_reuse(db_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_url, tmp_path, allow_signup=True, refresh_token_reuse_interval=0) as srv:
        yield srv


async def test_auth_flow(server_no_reuse: RunningServer) -> None:
    r = await run_scenario(server_no_reuse, "auth", SIGNUP_EMAIL="New.User@Example.com", PASSWORD=PASSWORD)
    assert r["signUp"] == {
        "error": None,
        "email": "new.user@example.com",
        "hasSession": True,
        "metadata": {"name": "From JS"},
    }
    assert r["signUpAgain"]["error"]["code"] == "user_already_exists"
    assert r["signUpAgain"]["error"]["status"] == 422
    weak = r["signUpWeak"]
    assert weak["error"]["name"] == "AuthWeakPasswordError" and weak["reasons"] == ["length"]
    assert r["badLogin"]["error"] == {
        "name": "AuthApiError",
        "message": "Invalid login credentials",
        "status": 400,
        "code": "invalid_credentials",
        "details": None,
        "hint": None,
    }
    assert r["login"]["error"] is None and r["login"]["tokenType"] == "bearer"
    assert r["login"]["expiresIn"] == 3600 and r["login"]["expiresAt"] > 0
    assert r["refresh"] == {"error": None, "rotated": True, "userId": r["login"]["userId"]}
    assert r["getUser"]["email"] == "new.user@example.com" and r["getUser"]["error"] is None
    assert r["reuse"]["error"]["code"] == "refresh_token_already_used"
    assert r["reuse"]["error"]["status"] == 400
    # the reuse revoked the whole session: the legitimate holder's current token is dead too
    assert r["afterReuse"]["error"]["code"] == "refresh_token_already_used"
    assert r["relogin"]["error"] is None
    assert r["signOut"]["error"] is None
    assert r["getUserAfterSignOut"]["user"] is None
    assert r["getUserAfterSignOut"]["error"]["name"] == "AuthSessionMissingError"
    assert r["refreshAfterSignOut"]["error"]["code"] == "refresh_token_not_found"


async def test_signup_disabled(db_url: str, tmp_path: Path) -> None:
    async with running_server(db_url, tmp_path, allow_signup=False) as srv:
        r = await run_scenario(srv, "signupDisabled")
    assert r["signUp"]["error"]["code"] == "signup_disabled"
    assert r["signUp"]["error"]["status"] == 422
    assert r["signUp"]["error"]["message"] == "Signups not allowed for this instance"


async def test_rest_flow(server: RunningServer, world: World, db: psycopg.Connection[Any]) -> None:
    create_user(db, "js-viewer@example.com", PASSWORD)
    viewer = db.execute("select id from auth.users where email = 'js-viewer@example.com'").fetchone()
    assert viewer is not None
    db.execute(
        "insert into project_members (project_id, user_id, role) values (%s, %s, 'viewer')",
        (world.project_a, viewer[0]),
    )
    # run_a has seq 1..2 from the factory; add 3..10, with a needle and some warnings
    append(
        db,
        world.run_a,
        [
            {
                "level": "warn" if i % 4 == 0 else "info",
                "message": f"line {i}" + (" NEEDLE" if i in (5, 9) else ""),
            }
            for i in range(3, 11)
        ],
    )
    r = await run_scenario(
        server,
        "rest",
        EMAIL="js-viewer@example.com",
        PASSWORD=PASSWORD,
        RUN_ID=world.run_a,
        OTHER_RUN_ID=world.run_b,
    )
    assert r["login"]["error"] is None
    assert r["page"]["error"] is None and r["page"]["seqs"] == [3, 4, 5, 6, 7]
    assert r["page"]["keys"] == ["id", "run_id", "seq", "ts", "level", "step", "message", "attrs"]
    assert r["counted"] == {"error": None, "status": 206, "count": 10, "seqs": [10, 9, 8]}
    assert r["head"]["error"] is None and r["head"]["count"] == 10
    assert r["ilike"] == {"error": None, "seqs": [5, 9]}
    assert r["search"] == {"error": None, "seqs": [5, 9]}
    assert r["searchOther"] == {"error": None, "rows": []}
    assert r["inFilter"]["error"] is None
    assert r["inFilter"]["rows"] == [
        {"seq": 2, "level": "error"},
        {"seq": 4, "level": "warn"},
        {"seq": 8, "level": "warn"},
    ]
    assert r["orFilter"] == {"error": None, "seqs": [1, 3]}
    assert r["single"] == {"error": None, "data": {"seq": 1}}
    assert r["maybeSingle"] == {"error": None, "data": None}
    assert r["otherTenant"] == {"error": None, "rows": []}
    assert r["unknownTable"]["status"] == 404 and r["unknownTable"]["error"]["code"] == "PGRST205"
    assert r["unknownColumn"]["status"] == 400 and r["unknownColumn"]["error"]["code"] == "42703"
    assert r["rpcAsUser"]["status"] == 403 and r["rpcAsUser"]["error"]["code"] == "42501"
    assert r["rpc"] == {"error": None, "status": 200, "data": 12}
    assert r["rpcBadLine"]["status"] == 400 and r["rpcBadLine"]["error"]["code"] == "22023"
    assert "line 0" in r["rpcBadLine"]["error"]["message"]
    assert r["rpcUnknown"]["status"] == 404 and r["rpcUnknown"]["error"]["code"] == "PGRST202"
    # a viewer may not update runs: RLS filters the row out, nothing changes
    assert r["update"] == {"error": None, "status": 200, "rows": []}
    rows = db.execute(
        "select seq, level, step, message from run_logs where run_id = %s and seq > 10 order by seq",
        (world.run_a,),
    ).fetchall()
    assert rows == [(11, "info", None, "from supabase-js 1"), (12, "warn", "js", "from supabase-js 2")]
    status = db.execute("select status from workflow_runs where id = %s", (world.run_a,)).fetchone()
    assert status == ("running",)
