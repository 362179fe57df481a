"""The official ``@supabase/supabase-js`` 2.119 realtime client under Node (vsn 2.0.0 and 1.0.0)
against a real server: subscribe, INSERT/UPDATE callbacks with filters, RLS (filtered and not),
token refresh with ``realtime.setAuth``, refused tokens and api keys, revocation, slow consumers,
broadcast (binary frames and binary payloads on 2.0.0) with ack and self, presence, and automatic
rejoin after the server restarts.

``realtime.mjs`` runs one scenario; ``clients.mjs`` runs several clients (one socket each) described
by a JSON spec and takes commands (``setAuth``, ``exit``) on stdin."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from meshlogs.realtime.gateway import GATEWAY
from tests.factories import World, add_member, append, make_world
from tests.realtime.helpers import wait_for
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

    async def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()

    async def exit(self) -> None:
        """Ask clients.mjs to exit and keep every event it printed until then."""
        await self.send({"cmd": "exit"})
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), TIMEOUT)
        self.events.extend(json.loads(line) for line in rest.splitlines() if line.strip())
        assert await self.finish() == 0

    def of(self, who: str, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("who") == who and e.get("event") == event]

    def messages(self, who: str) -> list[str]:
        return [e["message"] for e in self.of(who, "change")]

    async def finish(self) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), TIMEOUT)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()


async def start_node(
    scenario: str | None, server: RunningServer, script: str = "realtime.mjs", **env: str
) -> NodeClient:
    node = shutil.which("node")
    assert node, "node is required for the supabase-js tests"
    assert (JS_DIR / "node_modules" / "@supabase" / "supabase-js").exists(), "run scripts/setup --test"
    proc = await asyncio.create_subprocess_exec(
        node,
        "--experimental-websocket",
        "--no-warnings",
        str(JS_DIR / script),
        *([scenario] if scenario else []),
        stdin=asyncio.subprocess.PIPE,
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


def is_status(name: str, who: str | None = None) -> Any:
    return lambda e: (
        e.get("event") == "status" and e.get("status") == name and (who is None or e.get("who") == who)
    )


def is_change(who: str, message: str) -> Any:
    return lambda e: e.get("event") == "change" and e.get("who") == who and e.get("message") == message


async def start_clients(server: RunningServer, vsn: str, *clients: dict[str, Any]) -> NodeClient:
    """clients.mjs with these clients (see its header), each subscribed on its own socket."""
    return await start_node(None, server, "clients.mjs", VSN=vsn, SPEC=json.dumps(list(clients)))


def lines(n: int, prefix: str) -> list[dict[str, Any]]:
    return [{"level": "info", "message": f"{prefix}{i}"} for i in range(n)]


VSNS = pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])


@VSNS
async def test_insert_and_update_callbacks(
    server: RunningServer, world: World, db: psycopg.Connection[Any], vsn: str
) -> None:
    client = await start_node(
        "changes",
        server,
        VSN=vsn,
        RUN_ID=world.run_a,
        WANT="5",
        WANT_RUNS="1",
        USER_TOKEN=server.user_token(world.viewer),
    )
    try:
        await client.next(is_status("SUBSCRIBED"))
        append(db, world.run_b, [{"level": "info", "message": "other run"}])
        append(db, world.run_a, [{"level": "info", "message": f"m{i}"} for i in range(5)])
        db.execute("update workflow_runs set status = 'succeeded' where id = %s", (world.run_b,))
        db.execute("update workflow_runs set status = 'succeeded' where id = %s", (world.run_a,))
        await client.next(lambda e: e.get("event") == "done")
        seqs = [e["seq"] for e in client.events if e.get("event") == "change"]
        assert seqs == [3, 4, 5, 6, 7]
        change = next(e for e in client.events if e.get("event") == "change")
        assert change["type"] == "INSERT" and change["run_id"] == world.run_a and change["message"] == "m0"
        assert change["commit_timestamp"].endswith("Z")
        runs = [e for e in client.events if e.get("event") == "run"]
        assert runs == [
            {"event": "run", "type": "UPDATE", "status": "succeeded", "old": "running", "id": world.run_a}
        ]
    finally:
        await client.finish()


@VSNS
async def test_update_callback(
    server: RunningServer, world: World, db: psycopg.Connection[Any], vsn: str
) -> None:
    client = await start_node(
        "changes", server, VSN=vsn, RUN_ID=world.run_a, USER_TOKEN=server.user_token(world.viewer)
    )
    try:
        await client.next(is_status("SUBSCRIBED"))
        db.execute("update workflow_runs set status = 'failed' where id = %s", (world.run_a,))
        event = await client.next(lambda e: e.get("event") == "run")
        assert (event["type"], event["old"], event["status"]) == ("UPDATE", "running", "failed")
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


@VSNS
async def test_broadcast_ack_and_self(server: RunningServer, vsn: str) -> None:
    client = await start_node("broadcast", server, VSN=vsn)
    sent = await client.next(lambda e: e.get("event") == "sent")
    assert sent["result"] == "ok"  # acknowledged by the server
    got = await client.next(lambda e: e.get("event") == "broadcasts")
    assert got["a"] == [{"n": 1, "text": "héllo"}] and got["b"] == [{"n": 1, "text": "héllo"}]
    a, b = got["frames"]["a"], got["frames"]["b"]
    if vsn == "2.0.0":
        # realtime-js pushes a user broadcast as a binary kind-3 frame (JSON-encoded payload); the
        # server delivers it as kind 4, to b and (self) back to a.
        assert (a["binaryOut"], a["binaryIn"], b["binaryOut"], b["binaryIn"]) == ([3], [4], [], [4])
    else:
        assert a["binaryOut"] == a["binaryIn"] == b["binaryOut"] == b["binaryIn"] == []
    assert await client.finish() == 0


async def test_binary_broadcast_payload_round_trips_on_vsn_2(server: RunningServer) -> None:
    """An ArrayBuffer payload goes out as kind 3 with binary encoding and comes back, to the other
    client and to the sender (self), as the same bytes in an ArrayBuffer (kind 4). Bytes that are
    not UTF-8 (0xff, 0xc3 0x28) would not survive a text or JSON detour. (On 1.0.0 realtime-js has
    no binary payloads: it JSON-encodes the ArrayBuffer to {}.)"""
    payload = [0, 1, 2, 127, 128, 0xC3, 0x28, 254, 255, *range(256)]
    client = await start_node("binary", server, VSN="2.0.0", BYTES=json.dumps(payload))
    sent = await client.next(lambda e: e.get("event") == "sent")
    assert sent["result"] == "ok"
    got = await client.next(lambda e: e.get("event") == "broadcasts")
    assert got["a"] == got["b"] == [{"isArrayBuffer": True, "bytes": payload}]
    a, b = got["frames"]["a"], got["frames"]["b"]
    assert (a["binaryOut"], a["binaryIn"], b["binaryIn"]) == ([3], [4], [4])
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


@VSNS
async def test_unfiltered_subscription_is_filtered_by_rls(
    server: RunningServer, world: World, db: psycopg.Connection[Any], vsn: str
) -> None:
    """No filter: each client gets exactly the run_logs rows its token may select, from every run."""
    client = await start_clients(
        server,
        vsn,
        {"who": "viewer", "key": server.anon_key, "token": server.user_token(world.viewer)},
        {"who": "outsider", "key": server.anon_key, "token": server.user_token(world.outsider)},
        {"who": "anon", "key": server.anon_key},
        {"who": "svc", "key": server.service_key},
    )
    try:
        for who in ("viewer", "outsider", "anon", "svc"):
            await client.next(is_status("SUBSCRIBED", who))
        append(db, world.run_a, lines(2, "a"))
        append(db, world.run_b, lines(3, "b"))
        append(db, world.run_a, lines(1, "last-a"))
        append(db, world.run_b, lines(1, "last-b"))
        # Delivery is in commit order per client: its last line means the earlier ones are decided.
        await client.next(is_change("viewer", "last-a0"))
        await client.next(is_change("outsider", "last-b0"))
        await client.next(is_change("svc", "last-b0"))
        await asyncio.sleep(0.3)  # anon has no line of its own to wait for: the sentinel, then a grace
        await client.exit()
        assert client.messages("viewer") == ["a0", "a1", "last-a0"]
        assert {e["run_id"] for e in client.of("viewer", "change")} == {world.run_a}
        assert client.messages("outsider") == ["b0", "b1", "b2", "last-b0"]
        assert {e["run_id"] for e in client.of("outsider", "change")} == {world.run_b}
        assert client.messages("anon") == []
        assert len(client.of("svc", "change")) == 7
    finally:
        await client.finish()


@VSNS
async def test_set_auth_reauthorizes_the_channel(
    server: RunningServer, world: World, db: psycopg.Connection[Any], vsn: str
) -> None:
    """A channel joined with the anon key sees nothing of run A; after
    ``supabase.realtime.setAuth(viewer token)`` (pushed as access_token on the joined channel, no
    rejoin) it gets the viewer's lines. The client's token source (``accessToken``) answers the
    same token from then on, so supabase-js' heartbeat refresh keeps it."""
    client = await start_clients(
        server,
        vsn,
        {
            "who": "user",
            "key": server.anon_key,
            "token": server.anon_key,
            "filter": f"run_id=eq.{world.run_a}",
        },
        {"who": "svc", "key": server.service_key, "filter": f"run_id=eq.{world.run_a}"},
    )
    try:
        await client.next(is_status("SUBSCRIBED", "user"))
        await client.next(is_status("SUBSCRIBED", "svc"))
        append(db, world.run_a, lines(1, "before"))
        await client.next(is_change("svc", "before0"))
        await asyncio.sleep(0.2)
        assert client.of("user", "change") == []  # anon may not read run A
        await client.send({"cmd": "setAuth", "who": "user", "token": server.user_token(world.viewer)})
        done = await client.next(lambda e: e.get("event") == "setAuth")
        assert done["pushed"] >= 1
        # Every access_token push is answered with system "Subscribed to PostgreSQL" (one more came
        # with the join): once all are in, the server holds the viewer's token.
        await client.next(
            lambda e: e.get("event") == "system" and e.get("who") == "user" and e["n"] >= done["pushed"] + 1
        )
        append(db, world.run_a, lines(1, "after"))
        await client.next(is_change("user", "after0"))
        await client.exit()
        assert client.messages("user") == ["after0"]
        assert not client.of("user", "status")[1:], "the channel was not rejoined or closed"
    finally:
        await client.finish()


@VSNS
async def test_expired_and_forged_tokens_fail_the_join(server: RunningServer, world: World, vsn: str) -> None:
    import jwt

    forged = jwt.encode(
        {"role": "authenticated", "sub": world.viewer, "exp": int(time.time()) + 600},
        "another-secret-" * 3,
        algorithm="HS256",
    )
    expired = server.user_token(world.viewer, ttl=1, now=time.time() - 120)
    run = f"run_id=eq.{world.run_a}"
    client = await start_clients(
        server,
        vsn,
        {"who": "expired", "key": server.anon_key, "token": expired, "filter": run},
        {"who": "forged", "key": server.anon_key, "token": forged, "filter": run},
        {"who": "valid", "key": server.anon_key, "token": server.user_token(world.viewer), "filter": run},
    )
    try:
        await client.next(is_status("SUBSCRIBED", "valid"))
        for who, reason in (
            ("expired", r"^InvalidJWTToken: Token has expired 1[12]\d seconds ago$"),
            ("forged", r"^JwtSignatureError: Failed to validate JWT signature$"),
        ):
            error = await client.next(is_status("CHANNEL_ERROR", who))
            assert re.search(reason, error["error"]), error
            assert not client.of(who, "change")
            assert [e["status"] for e in client.of(who, "status")][0] == "CHANNEL_ERROR"
    finally:
        client.proc.kill()
        await client.finish()


@VSNS
async def test_socket_with_a_forged_api_key_is_refused(server: RunningServer, world: World, vsn: str) -> None:
    import jwt

    forged = jwt.encode(
        {"role": "service_role", "exp": int(time.time()) + 600}, "another-secret-" * 3, algorithm="HS256"
    )
    client = await start_clients(
        server, vsn, {"who": "forged", "key": forged}, {"who": "valid", "key": server.anon_key}
    )
    try:
        await client.next(is_status("SUBSCRIBED", "valid"))
        connecting = await client.next(
            lambda e: e.get("event") == "ws" and e.get("who") == "forged" and e["type"] == "connecting"
        )
        error = await client.next(is_status("CHANNEL_ERROR", "forged"))
        assert error["error"] == "channel error: transport failure"  # all a browser WebSocket tells
        # The upgrade was refused: the socket errored and never opened.
        assert [e["type"] for e in client.of("forged", "ws")][:2] == ["connecting", "error"]
        assert not [e for e in client.of("forged", "ws") if e["type"] == "open"]
        assert "SUBSCRIBED" not in [e["status"] for e in client.of("forged", "status")]
        assert any(e["type"] == "open" for e in client.of("valid", "ws"))
        # The very URL supabase-js dialled, over plain HTTP: Supabase's 401 and reason.
        assert f"apikey={forged}" in connecting["url"] and f"vsn={vsn}" in connecting["url"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(connecting["url"].replace("ws://", "http://", 1)) as resp,
        ):
            assert resp.status == 401
            assert await resp.json() == {"error": "Failed to validate JWT signature"}
    finally:
        client.proc.kill()
        await client.finish()


@VSNS
async def test_revoked_member_stops_receiving_lines(
    server: RunningServer, world: World, db: psycopg.Connection[Any], vsn: str
) -> None:
    """After ``delete from project_members`` for the viewer in project A, no line of run A committed
    afterwards reaches them. They are also a viewer of project B, so a line of run B committed last
    tells when everything before it has been decided for them; the service-role sentinel sees all."""
    add_member(db, world.project_b, world.viewer, "viewer")
    client = await start_clients(
        server,
        vsn,
        {"who": "viewer", "key": server.anon_key, "token": server.user_token(world.viewer)},
        {"who": "svc", "key": server.service_key},
    )
    try:
        await client.next(is_status("SUBSCRIBED", "viewer"))
        await client.next(is_status("SUBSCRIBED", "svc"))
        append(db, world.run_a, lines(3, "ok"))
        await client.next(is_change("viewer", "ok2"))
        db.execute(
            "delete from project_members where project_id = %s and user_id = %s",
            (world.project_a, world.viewer),
        )
        append(db, world.run_a, lines(5, "after"))
        append(db, world.run_b, lines(1, "marker"))
        await client.next(is_change("svc", "marker0"))
        await client.next(is_change("viewer", "marker0"))
        await asyncio.sleep(0.2)
        await client.exit()
        assert client.messages("svc") == ["ok0", "ok1", "ok2", *(f"after{i}" for i in range(5)), "marker0"]
        assert client.messages("viewer") == ["ok0", "ok1", "ok2", "marker0"]
    finally:
        await client.finish()


@VSNS
async def test_slow_consumer_is_disconnected_with_1013(
    db_url: str, tmp_path: Path, world: World, db: psycopg.Connection[Any], vsn: str
) -> None:
    """supabase-js cannot be told to stop reading, so the whole Node process is stopped (SIGSTOP):
    its socket is not read, the kernel buffers fill, and the server's bound trips. Resumed, the
    client reads what was queued and then the close frame: 1013, "slow consumer: ..."."""
    async with running_server(db_url, tmp_path, realtime_max_pending_bytes=256 * 1024) as srv:
        client = await start_clients(srv, vsn, {"who": "slow", "key": srv.service_key})
        stopped = False
        try:
            await client.next(is_status("SUBSCRIBED", "slow"))
            await client.next(lambda e: e.get("event") == "ws" and e["type"] == "open")
            client.proc.send_signal(signal.SIGSTOP)
            stopped = True
            gateway = srv.app[GATEWAY]
            big = [{"level": "info", "message": "x" * 60_000} for _ in range(20)]
            for _ in range(20):
                append(db, world.run_a, big)
                if gateway.stats_slow_consumers:
                    break
            await wait_for(lambda: gateway.stats_slow_consumers == 1, what="slow consumer detected")
            client.proc.send_signal(signal.SIGCONT)
            stopped = False
            closed = await client.next(lambda e: e.get("event") == "ws" and e["type"] == "close")
            assert closed["code"] == 1013, closed
            assert closed["reason"].startswith("slow consumer"), closed
            assert gateway.stats_slow_consumers == 1
        finally:
            if stopped:
                client.proc.send_signal(signal.SIGCONT)
            client.proc.kill()
            await client.finish()
