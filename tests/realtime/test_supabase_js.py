"""The official ``@supabase/supabase-js`` 2.119 realtime client under Node (vsn 2.0.0 and 1.0.0)
against a real server: subscribe, INSERT/UPDATE callbacks with filters, RLS, broadcast (binary frames
on 2.0.0) with ack and self, presence, and automatic rejoin after the server restarts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.factories import World, append, make_world
from tests.support.server import RunningServer, running_server

JS_DIR = Path(__file__).resolve().parents[1] / "js"
TIMEOUT = 40


class NodeClient:
    """A running realtime.mjs scenario; its stdout lines are JSON events."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    async def next(self, predicate: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            for event in self.events:
                if predicate(event):
                    return event
            assert self.proc.stdout is not None
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    stderr = await self.proc.stderr.read() if self.proc.stderr else b""
                    raise AssertionError(f"node exited: {self.events} {stderr.decode()[-2000:]}")
                event = json.loads(line)
                self.events.append(event)
                if event.get("event") == "error":
                    raise AssertionError(event["message"])
                if predicate(event):
                    return event

        return await asyncio.wait_for(read(), timeout)

    async def finish(self) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), TIMEOUT)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()


async def start_node(scenario: str, server: RunningServer, **env: str) -> NodeClient:
    node = shutil.which("node")
    assert node, "node is required for the supabase-js tests"
    assert (JS_DIR / "node_modules" / "@supabase" / "supabase-js").exists(), "run scripts/setup --test"
    proc = await asyncio.create_subprocess_exec(
        node,
        "--experimental-websocket",
        "--no-warnings",
        str(JS_DIR / "realtime.mjs"),
        scenario,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=JS_DIR,
        env={
            **os.environ,
            "MESHLOGS_URL": server.url,
            "MESHLOGS_ANON_KEY": server.anon_key,
            "TIMEOUT_MS": str(TIMEOUT * 1000),
            **env,
        },
    )
    return NodeClient(proc)


@pytest.fixture
def world(db: psycopg.Connection[Any]) -> World:
    return make_world(db)


@pytest.fixture
async def server(db_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_url, tmp_path) as srv:
        yield srv


def is_status(name: str) -> Any:
    return lambda e: e.get("event") == "status" and e.get("status") == name


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])
async def test_insert_and_update_callbacks(
    server: RunningServer, world: World, db: psycopg.Connection[Any], vsn: str
) -> None:
    client = await start_node(
        "changes", server, VSN=vsn, RUN_ID=world.run_a, WANT="5", USER_TOKEN=server.user_token(world.viewer)
    )
    try:
        await client.next(is_status("SUBSCRIBED"))
        append(db, world.run_b, [{"level": "info", "message": "other run"}])
        append(db, world.run_a, [{"level": "info", "message": f"m{i}"} for i in range(5)])
        db.execute("update workflow_runs set status = 'succeeded' where id = %s", (world.run_a,))
        await client.next(lambda e: e.get("event") == "done")
        seqs = [e["seq"] for e in client.events if e.get("event") == "change"]
        assert seqs == [3, 4, 5, 6, 7]
        change = next(e for e in client.events if e.get("event") == "change")
        assert change["type"] == "INSERT" and change["run_id"] == world.run_a and change["message"] == "m0"
        assert change["commit_timestamp"].endswith("Z")
    finally:
        await client.finish()


async def test_update_callback(server: RunningServer, world: World, db: psycopg.Connection[Any]) -> None:
    client = await start_node(
        "changes", server, RUN_ID=world.run_a, USER_TOKEN=server.user_token(world.viewer)
    )
    try:
        await client.next(is_status("SUBSCRIBED"))
        db.execute("update workflow_runs set status = 'failed' where id = %s", (world.run_a,))
        event = await client.next(lambda e: e.get("event") == "run")
        assert (event["old"], event["status"]) == ("running", "failed")
    finally:
        client.proc.kill()
        await client.finish()


async def test_cross_tenant_subscription_gets_nothing(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    thief = await start_node(
        "changes", server, RUN_ID=world.run_a, USER_TOKEN=server.user_token(world.outsider)
    )
    owner = await start_node(
        "changes", server, RUN_ID=world.run_a, WANT="3", USER_TOKEN=server.user_token(world.owner)
    )
    try:
        await thief.next(is_status("SUBSCRIBED"))
        await owner.next(is_status("SUBSCRIBED"))
        append(db, world.run_a, [{"level": "info", "message": "private"}] * 3)
        await owner.next(lambda e: e.get("event") == "done")
        await asyncio.sleep(0.3)
        thief.proc.kill()
        await thief.finish()
        assert not [e for e in thief.events if e.get("event") == "change"]
    finally:
        await owner.finish()
        if thief.proc.returncode is None:
            thief.proc.kill()
            await thief.finish()


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])
async def test_broadcast_ack_and_self(server: RunningServer, vsn: str) -> None:
    client = await start_node("broadcast", server, VSN=vsn)
    sent = await client.next(lambda e: e.get("event") == "sent")
    assert sent["result"] == "ok"  # acknowledged by the server
    got = await client.next(lambda e: e.get("event") == "broadcasts")
    assert got["a"] == [{"n": 1, "text": "héllo"}] and got["b"] == [{"n": 1, "text": "héllo"}]
    assert await client.finish() == 0


async def test_presence_sync(server: RunningServer) -> None:
    client = await start_node("presence", server)
    await client.next(lambda e: e.get("event") == "sync" and e.get("keys") == ["alice", "bob"])
    assert await client.finish() == 0


async def test_rejoins_after_server_restart(
    db_url: str, tmp_path: Path, world: World, db: psycopg.Connection[Any]
) -> None:
    """The server goes away and comes back on the same port: supabase-js reconnects and rejoins by
    itself, and lines written after the rejoin arrive (what was written in between is the app's to
    backfill by seq)."""
    async with running_server(db_url, tmp_path) as first:
        port = int(first.url.rsplit(":", 1)[1])
        client = await start_node(
            "changes", first, RUN_ID=world.run_a, USER_TOKEN=first.user_token(world.viewer)
        )
        await client.next(is_status("SUBSCRIBED"))
        append(db, world.run_a, [{"level": "info", "message": "before"}])
        await client.next(lambda e: e.get("event") == "change" and e["message"] == "before")
    try:
        await client.next(
            lambda e: e.get("event") == "status" and e.get("status") in ("CHANNEL_ERROR", "CLOSED")
        )
        async with running_server(db_url, tmp_path, port=port) as second:
            assert second.url == first.url
            subscribed = len(
                [e for e in client.events if e == {"event": "status", "status": "SUBSCRIBED", "error": None}]
            )
            await client.next(
                lambda e: (
                    is_status("SUBSCRIBED")(e)
                    and len([x for x in client.events if is_status("SUBSCRIBED")(x)]) > subscribed
                ),
                timeout=60,
            )
            append(db, world.run_a, [{"level": "info", "message": "after"}])
            await client.next(lambda e: e.get("event") == "change" and e["message"] == "after")
    finally:
        client.proc.kill()
        await client.finish()
