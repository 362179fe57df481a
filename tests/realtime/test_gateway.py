"""The gateway end to end with the official Python client: filters, RLS, tokens, revocation,
broadcast, presence, restarts, slow consumers. Real Postgres, real sockets, real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from realtime import AsyncRealtimeClient

from meshlogs.realtime.gateway import GATEWAY as GATEWAY_KEY
from tests.factories import World, append, make_world
from tests.realtime.helpers import Recorder, connect, subscribe, wait_for
from tests.support.server import RunningServer, running_server


@pytest.fixture
def world(db: psycopg.Connection[Any]) -> World:
    return make_world(db)


@pytest.fixture
async def server(db_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_url, tmp_path) as srv:
        yield srv


def lines(n: int, prefix: str = "l") -> list[dict[str, Any]]:
    return [{"level": "info", "message": f"{prefix}{i}"} for i in range(n)]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("seq=gt.4", [5, 6]),
        ("seq=gte.5", [5, 6]),
        ("seq=lt.4", [3]),
        ("seq=lte.3", [3]),
        ("seq=neq.4", [3, 5, 6]),
        ("seq=in.(3,6)", [3, 6]),
        ("level=eq.error", [5]),
    ],
)
async def test_filters(
    server: RunningServer, world: World, db: psycopg.Connection[Any], flt: str, expected: list[int]
) -> None:
    client = await connect(server.ws_url, server.anon_key)
    try:
        _ch, rec = await subscribe(client, "f", token=server.user_token(world.viewer), filter=flt)
        assert "SUBSCRIBED" in rec.states
        _s, srec = await subscribe(client, "sentinel", filter=f"run_id=eq.{world.run_a}")
        append(
            db,
            world.run_a,
            [
                {"level": "info", "message": "x"},
                {"level": "info", "message": "y"},
                {"level": "error", "message": "z"},
                {"level": "info", "message": "w"},
            ],
        )
        await wait_for(lambda: len(srec.changes) == 4, what="sentinel lines")
        await asyncio.sleep(0.1)
        assert rec.seqs() == expected
    finally:
        await client.close()


async def test_unfiltered_subscription_is_filtered_by_rls(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    client = await connect(server.ws_url, server.anon_key)
    try:
        _ch, viewer = await subscribe(client, "all-v", token=server.user_token(world.viewer))
        other = await connect(server.ws_url, server.anon_key)
        try:
            _ch2, outsider = await subscribe(other, "all-o", token=server.user_token(world.outsider))
            anon_client = await connect(server.ws_url, server.anon_key)
            try:
                _ch3, anon = await subscribe(anon_client, "all-a")
                append(db, world.run_a, lines(2, "a"))
                append(db, world.run_b, lines(3, "b"))
                await wait_for(lambda: len(viewer.changes) == 2 and len(outsider.changes) == 3)
                await asyncio.sleep(0.2)
                assert {p["data"]["record"]["run_id"] for p in viewer.changes} == {world.run_a}
                assert {p["data"]["record"]["run_id"] for p in outsider.changes} == {world.run_b}
                assert anon.changes == []
            finally:
                await anon_client.close()
        finally:
            await other.close()
    finally:
        await client.close()


async def test_service_role_sees_everything(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    client = await connect(server.ws_url, server.service_key)
    try:
        _ch, rec = await subscribe(client, "svc")
        append(db, world.run_a, lines(1))
        append(db, world.run_b, lines(1))
        await wait_for(lambda: len(rec.changes) == 2)
    finally:
        await client.close()


async def test_update_of_workflow_runs_with_old_record(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    client = await connect(server.ws_url, server.anon_key)
    try:
        _ch, rec = await subscribe(
            client,
            "status",
            token=server.user_token(world.viewer),
            event="UPDATE",
            table="workflow_runs",
            filter=f"id=eq.{world.run_a}",
        )
        db.execute("update workflow_runs set status = 'succeeded' where id = %s", (world.run_a,))
        db.execute("update workflow_runs set status = 'failed' where id = %s", (world.run_b,))
        await wait_for(lambda: len(rec.changes) == 1)
        data = rec.changes[0]["data"]
        assert data["type"] == "UPDATE"
        assert (data["old_record"]["status"], data["record"]["status"]) == ("running", "succeeded")
        assert data["record"]["finished_at"] is not None
        await asyncio.sleep(0.2)
        assert len(rec.changes) == 1
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("flt", "reason"),
    [
        ("nosuch=eq.1", "InvalidFilter"),
        ("seq=eq.notanumber", "InvalidFilter"),
        ("seq=like.%x%", "InvalidFilter"),
        ("garbage", "InvalidFilter"),
    ],
)
async def test_bad_filter_is_a_join_error(server: RunningServer, world: World, flt: str, reason: str) -> None:
    client = await connect(server.ws_url, server.anon_key)
    try:
        _ch, rec = await subscribe(client, "bad", token=server.user_token(world.viewer), filter=flt)
        assert "CHANNEL_ERROR" in rec.states and "SUBSCRIBED" not in rec.states, rec.states
    finally:
        await client.close()


async def test_unpublished_table_is_a_join_error(server: RunningServer, world: World) -> None:
    client = await connect(server.ws_url, server.anon_key)
    try:
        _ch, rec = await subscribe(client, "seq", token=server.user_token(world.viewer), table="run_log_seq")
        assert "CHANNEL_ERROR" in rec.states and "SUBSCRIBED" not in rec.states
    finally:
        await client.close()


async def test_forged_and_expired_tokens_are_refused(server: RunningServer, world: World) -> None:
    import jwt

    forged = jwt.encode(
        {"role": "service_role", "exp": int(time.time()) + 60}, "another-secret-" * 3, algorithm="HS256"
    )
    expired = server.user_token(world.viewer, ttl=1, now=time.time() - 120)
    no_role = jwt.encode({"exp": int(time.time()) + 60}, server.secret, algorithm="HS256")
    no_exp = jwt.encode({"role": "anon"}, server.secret, algorithm="HS256")
    # Supabase Realtime's exact connect-time bodies (RealtimeWeb.UserSocket.error_response/1).
    refusals = (
        (forged, "Failed to validate JWT signature"),
        (expired, "Token has expired"),
        ("nonsense", "The token provided is not a valid JWT"),
        (no_role, "Fields `role` and `exp` are required in JWT"),
        (no_exp, "Fields `role` and `exp` are required in JWT"),
    )
    async with aiohttp.ClientSession() as http:
        for bad, message in refusals:
            async with http.get(f"{server.url}/realtime/v1/websocket?apikey={bad}&vsn=1.0.0") as resp:
                assert resp.status == 401
                assert await resp.json() == {"error": message}
        async with http.get(f"{server.url}/realtime/v1/websocket?vsn=1.0.0") as resp:
            assert resp.status == 401 and (await resp.json()) == {"error": "API key is missing"}
        async with http.get(f"{server.url}/realtime/v1/websocket?apikey={server.anon_key}&vsn=3.0.0") as resp:
            assert resp.status == 403
    client = await connect(server.ws_url, server.anon_key)
    try:
        for topic, token, reason in (
            ("forged", forged, r"JwtSignatureError: Failed to validate JWT signature"),
            ("expired", expired, r"InvalidJWTToken: Token has expired 1[12]\d seconds ago"),
            ("no-role", no_role, r"InvalidJWTToken: Fields `role` and `exp` are required in JWT"),
        ):
            _ch, rec = await subscribe(client, topic, token=token, filter=f"run_id=eq.{world.run_a}")
            assert "CHANNEL_ERROR" in rec.states and "SUBSCRIBED" not in rec.states
            assert any(re.search(reason, e) for e in rec.errors), rec.errors
    finally:
        await client.close()


async def test_token_refresh_reauthorizes(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    """A channel joined as anon sees nothing; after set_auth(user token) it sees the user's rows."""
    client = await connect(server.ws_url, server.anon_key)
    try:
        _ch, rec = await subscribe(client, "refresh", filter=f"run_id=eq.{world.run_a}")
        svc = await connect(server.ws_url, server.service_key)
        try:
            _s, sentinel = await subscribe(svc, "s", filter=f"run_id=eq.{world.run_a}")
            append(db, world.run_a, lines(1, "before"))
            await wait_for(lambda: len(sentinel.changes) == 1, what="the line reaching the service role")
        finally:
            await svc.close()
        await asyncio.sleep(0.1)
        assert rec.changes == []  # anon may not read run_a
        await client.set_auth(server.user_token(world.viewer))
        await wait_for(lambda: any(s.get("status") == "ok" for s in rec.system[1:]), what="re-subscribed")
        append(db, world.run_a, lines(1, "after"))
        await wait_for(lambda: len(rec.changes) == 1)
        assert rec.changes[0]["data"]["record"]["message"] == "after0"
    finally:
        await client.close()


async def test_expiring_token_closes_the_channel(server: RunningServer, world: World) -> None:
    client = await connect(server.ws_url, server.anon_key)
    try:
        _ch, rec = await subscribe(
            client, "exp", token=server.user_token(world.viewer, ttl=2), filter=f"run_id=eq.{world.run_a}"
        )
        assert "SUBSCRIBED" in rec.states
        await wait_for(
            lambda: any("Token has expired" in e for e in rec.errors),
            timeout=15,
            what="the expiry reported as a channel error",
        )
        assert "CHANNEL_ERROR" in rec.states
    finally:
        await client.close()


async def test_refreshing_to_a_bad_token_closes_the_channel_with_supabases_message(
    server: RunningServer, world: World
) -> None:
    import jwt

    client = await connect(server.ws_url, server.anon_key)
    try:
        _ch, rec = await subscribe(
            client, "bad-refresh", token=server.user_token(world.viewer), filter=f"run_id=eq.{world.run_a}"
        )
        assert "SUBSCRIBED" in rec.states
        no_role = jwt.encode({"exp": int(time.time()) + 60}, server.secret, algorithm="HS256")
        await client.set_auth(no_role)
        await wait_for(
            lambda: (
                any(s.get("message") == "Fields `role` and `exp` are required in JWT" for s in rec.system)
                or any("Fields `role` and `exp`" in e for e in rec.errors)
            ),
            what="the refresh refused as a system error",
        )
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def viewer_and_sentinel(
    server: RunningServer, world: World, topic: str
) -> AsyncIterator[tuple[AsyncRealtimeClient, Recorder, Recorder]]:
    """The viewer on run A (filtered), and a service-role sentinel on the same run that shows when
    a line has been delivered to everyone who may see it."""
    client = await connect(server.ws_url, server.anon_key)
    svc = await connect(server.ws_url, server.service_key)
    try:
        _ch, viewer = await subscribe(
            client, topic, token=server.user_token(world.viewer), filter=f"run_id=eq.{world.run_a}"
        )
        _s, sentinel = await subscribe(svc, f"{topic}-s", filter=f"run_id=eq.{world.run_a}")
        yield client, viewer, sentinel
    finally:
        await client.close()
        await svc.close()


async def test_refreshing_to_another_users_token_reauthorizes_down(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    """A token refresh is a new authorization: an outsider's token stops the viewer's lines."""
    async with viewer_and_sentinel(server, world, "down") as (client, rec, sentinel):
        append(db, world.run_a, lines(1, "mine"))
        await wait_for(lambda: len(rec.changes) == 1)
        await client.set_auth(server.user_token(world.outsider))
        await wait_for(lambda: any(s.get("status") == "ok" for s in rec.system[1:]), what="re-subscribed")
        append(db, world.run_a, lines(2, "not-yours"))
        await wait_for(lambda: len(sentinel.changes) == 3, what="the sentinel")
        await asyncio.sleep(0.3)
        assert [p["data"]["record"]["message"] for p in rec.changes] == ["mine0"]


async def test_socket_path_health_and_api_key_header(server: RunningServer, world: World) -> None:
    """/socket/websocket is the same endpoint; the key may come as x-api-key; /healthz answers."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/healthz") as resp:
            assert resp.status == 200
        url = server.url.replace("http://", "ws://") + "/socket/websocket?vsn=1.0.0"
        async with http.ws_connect(url, headers={"x-api-key": server.anon_key}) as ws:
            await ws.send_json(
                {"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "1", "join_ref": None}
            )
            reply = await asyncio.wait_for(ws.receive_json(), 10)
            assert (reply["event"], reply["ref"], reply["payload"]["status"]) == ("phx_reply", "1", "ok")


async def test_connections_over_the_limit_get_supabases_429(
    world: World, db_url: str, tmp_path: Path
) -> None:
    async with running_server(db_url, tmp_path, realtime_max_connections=2) as srv:
        url = srv.url.replace("http://", "ws://") + f"/realtime/v1/websocket?apikey={srv.anon_key}&vsn=1.0.0"
        async with aiohttp.ClientSession() as http:
            first = await http.ws_connect(url)
            second = await http.ws_connect(url)
            try:
                async with http.get(url.replace("ws://", "http://")) as resp:
                    assert resp.status == 429
                    assert await resp.json() == {"error": "Too many connected users"}
            finally:
                await first.close()
                await second.close()
            # a slot is free again once a client leaves
            await wait_for(lambda: len(srv.app[GATEWAY_KEY].sessions) == 0, what="sessions closed")
            third = await http.ws_connect(url)
            await third.close()


@pytest.mark.parametrize("change", ["move the run", "delete the project membership"])
async def test_decisions_follow_run_and_project_changes_on_the_stream(
    server: RunningServer, world: World, db: psycopg.Connection[Any], change: str
) -> None:
    """The cached (viewer, run) decision is dropped when the run moves to another project or the
    membership goes, seen on the same stream: no line committed after that reaches the viewer."""
    async with viewer_and_sentinel(server, world, "moves") as (_client, rec, sentinel):
        append(db, world.run_a, lines(1, "before"))
        await wait_for(lambda: len(rec.changes) == 1)
        if change == "move the run":
            sql = "update workflow_runs set project_id = %s where id = %s"
            db.execute(sql, (world.project_b, world.run_a))
        else:
            sql = "delete from project_members where project_id = %s and user_id = %s"
            db.execute(sql, (world.project_a, world.viewer))
        append(db, world.run_a, lines(2, "after"))
        await wait_for(lambda: len(sentinel.changes) == 3, what="the sentinel")
        await asyncio.sleep(0.3)
        assert [p["data"]["record"]["message"] for p in rec.changes] == ["before0"]


async def test_revocation_stops_delivery_within_one_second(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    async with viewer_and_sentinel(server, world, "rev") as (_client, viewer, sentinel):
        append(db, world.run_a, lines(3, "ok"))
        await wait_for(lambda: len(viewer.changes) == 3)
        db.execute("delete from project_members where user_id = %s", (world.viewer,))
        revoked_at = time.monotonic()
        # Lines written right after the revocation commits are never delivered to the viewer.
        append(db, world.run_a, lines(5, "after"))
        await wait_for(lambda: len(sentinel.changes) == 8)
        await asyncio.sleep(0.3)
        assert [p["data"]["record"]["message"] for p in viewer.changes] == ["ok0", "ok1", "ok2"]
        assert time.monotonic() - revoked_at < 10  # generous: this is not a timing test


async def test_broadcast_with_ack_and_self(server: RunningServer) -> None:
    a = await connect(server.ws_url, server.anon_key)
    b = await connect(server.ws_url, server.anon_key)
    try:
        got_a: list[dict[str, Any]] = []
        got_b: list[dict[str, Any]] = []
        cha = a.channel(
            "room",
            {
                "config": {
                    "broadcast": {"ack": True, "self": True},
                    "presence": {"key": "", "enabled": False},
                    "private": False,
                }
            },
        )
        cha.on_broadcast("ping", lambda p: got_a.append(p))
        await cha.subscribe()
        chb = b.channel(
            "room",
            {
                "config": {
                    "broadcast": {"ack": False, "self": False},
                    "presence": {"key": "", "enabled": False},
                    "private": False,
                }
            },
        )
        chb.on_broadcast("ping", lambda p: got_b.append(p))
        await chb.subscribe()
        await cha.send_broadcast("ping", {"n": 1})  # acked: returns after the server's reply
        await wait_for(lambda: len(got_a) == 1 and len(got_b) == 1)
        assert got_b[0]["payload"] == {"n": 1} and got_b[0]["event"] == "ping"
        await chb.send_broadcast("ping", {"n": 2})  # b has self: false
        await wait_for(lambda: len(got_a) == 2)
        await asyncio.sleep(0.1)
        assert len(got_b) == 1
    finally:
        await a.close()
        await b.close()


async def test_presence_sync(server: RunningServer) -> None:
    a = await connect(server.ws_url, server.anon_key)
    b = await connect(server.ws_url, server.anon_key)
    try:
        cha = a.channel(
            "lobby",
            {
                "config": {
                    "broadcast": {"ack": False, "self": False},
                    "presence": {"key": "alice", "enabled": True},
                    "private": False,
                }
            },
        )
        synced: list[int] = []
        cha.on_presence_sync(lambda: synced.append(1))
        await cha.subscribe()
        await cha.track({"status": "watching"})
        chb = b.channel(
            "lobby",
            {
                "config": {
                    "broadcast": {"ack": False, "self": False},
                    "presence": {"key": "bob", "enabled": True},
                    "private": False,
                }
            },
        )
        chb.on_presence_sync(lambda: None)
        await chb.subscribe()
        await chb.track({"status": "idle"})
        await wait_for(lambda: set(cha.presence_state()) == {"alice", "bob"}, what="presence of both")
        await wait_for(lambda: set(chb.presence_state()) == {"alice", "bob"})
        await chb.untrack()
        await wait_for(lambda: set(cha.presence_state()) == {"alice"})
        assert synced
    finally:
        await a.close()
        await b.close()


async def test_slow_consumer_is_disconnected_with_a_reason(
    db_url: str, tmp_path: Path, world: World, db: psycopg.Connection[Any]
) -> None:
    async with (
        running_server(db_url, tmp_path, realtime_max_pending_bytes=256 * 1024) as server,
        aiohttp.ClientSession() as http,
    ):
        url = f"{server.url}/realtime/v1/websocket?apikey={server.service_key}&vsn=1.0.0"
        async with http.ws_connect(url, max_msg_size=0) as ws:
            join = {
                "topic": "realtime:slow",
                "event": "phx_join",
                "ref": "1",
                "join_ref": "1",
                "payload": {
                    "config": {
                        "postgres_changes": [{"event": "INSERT", "schema": "public", "table": "run_logs"}]
                    }
                },
            }
            await ws.send_str(json.dumps(join))
            reply = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            assert reply["payload"]["status"] == "ok"
            # Stop reading; write far more than kernel buffers and the bound can hold.
            big = [{"level": "info", "message": "x" * 60_000} for _ in range(20)]
            for _ in range(20):
                append(db, world.run_a, big)
            gateway = server.app[__import__("meshlogs.realtime.gateway", fromlist=["GATEWAY"]).GATEWAY]
            await wait_for(lambda: gateway.stats_slow_consumers == 1, what="slow consumer detected")
            # Draining now ends with the close frame carrying the reason.
            close = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                msg = await asyncio.wait_for(ws.receive(), 20)
                if msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                ):
                    close = msg
                    break
            assert close is not None and close.type is aiohttp.WSMsgType.CLOSE
            assert close.data == 1013 and "slow consumer" in close.extra


async def test_stream_loss_makes_channels_resync(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    """The replication stream breaks: subscribers are told (phx_error), rejoin by themselves, and
    receive what is written after; nothing pretends the gap did not happen."""
    client = await connect(server.ws_url, server.anon_key)
    try:
        _ch, rec = await subscribe(
            client, "reset", token=server.user_token(world.viewer), filter=f"run_id=eq.{world.run_a}"
        )
        append(db, world.run_a, lines(1, "before"))
        await wait_for(lambda: len(rec.changes) == 1)
        killed = db.execute(
            "select count(pg_terminate_backend(active_pid)) from pg_replication_slots"
            " where database = current_database() and active"
        ).fetchone()
        assert killed == (1,)
        await wait_for(lambda: "CHANNEL_ERROR" in rec.states, what="the channel erroring")
        await wait_for(lambda: rec.states.count("SUBSCRIBED") >= 2, what="the client rejoining")
        from meshlogs.realtime.gateway import GATEWAY

        assert server.app[GATEWAY].hub.stats.resets == 1
        append(db, world.run_a, lines(1, "after"))
        await wait_for(lambda: len(rec.changes) == 2)
        assert [p["data"]["record"]["message"] for p in rec.changes] == ["before0", "after0"]
    finally:
        await client.close()


async def test_metrics_and_readiness(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    client = await connect(server.ws_url, server.anon_key)
    try:
        _ch, rec = await subscribe(
            client, "m", token=server.user_token(world.viewer), filter=f"run_id=eq.{world.run_a}"
        )
        append(db, world.run_a, lines(3))
        await wait_for(lambda: len(rec.changes) == 3)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
            async with http.get(f"{server.url}/readyz") as resp:
                assert resp.status == 200
                assert (await resp.json())["checks"] == {"database": "ok", "capture": "ok"}
        values = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert values["meshlogs_realtime_connections"] == 1
        assert values["meshlogs_realtime_messages_total"] >= 3
        assert values["meshlogs_realtime_joins_total"] >= 1
        assert values["meshlogs_capture_ready"] == 1
        assert values["meshlogs_delivery_lag_seconds_count"] >= 1
        assert values["meshlogs_authz_queries_total"] >= 1
    finally:
        await client.close()


@contextlib.contextmanager
def held_commits(db: psycopg.Connection[Any]) -> Iterator[Callable[[], None]]:
    """Commits wait for a synchronous standby that never answers: their commit records are flushed
    (and streamed) but the transactions stay invisible to new snapshots until ``release()``."""
    db.execute("alter system set synchronous_standby_names = 'meshlogs_test_nobody'")
    db.execute("select pg_reload_conf()")
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            db.execute("alter system reset synchronous_standby_names")
            db.execute("select pg_reload_conf()")

    try:
        yield release
    finally:
        release()


async def test_a_line_streamed_before_its_commit_is_visible_is_still_delivered(
    server: RunningServer, world: World, db: psycopg.Connection[Any], db_url: str
) -> None:
    """Postgres writes and flushes a commit record (which the walsender may stream at once) before
    the transaction leaves the proc array; until then new snapshots do not see its rows. An RLS
    check in that window must wait, not decide "not visible" and drop the line. A synchronous
    standby that never answers holds a commit in exactly that window, for as long as the test likes.
    """
    from meshlogs.realtime.gateway import GATEWAY

    hub = server.app[GATEWAY].hub
    client = await connect(server.ws_url, server.anon_key)
    try:
        # Unfiltered: no decision is prefetched at join, so the first line is checked in SQL.
        _ch, viewer = await subscribe(client, "window", token=server.user_token(world.viewer))
        before = hub.stats.changes
        with held_commits(db) as release:

            def write() -> int:
                with psycopg.connect(db_url, autocommit=True) as conn:
                    return append(conn, world.run_a, lines(1, "held"))

            writer = asyncio.get_running_loop().run_in_executor(None, write)
            await wait_for(lambda: hub.stats.changes > before, what="the held commit on the stream")
            await wait_for(lambda: hub.authorizer.visibility_waits > 0, what="the check waiting")
            assert not writer.done() and viewer.changes == []
            release()
            assert await asyncio.wait_for(writer, 20) == 3
        await wait_for(lambda: len(viewer.changes) == 1, what="the held line")
        assert viewer.changes[0]["data"]["record"]["message"] == "held0"
        assert hub.stats.authz_failures == 0
    finally:
        await client.close()


async def test_a_commit_invisible_for_too_long_makes_the_channel_resync(
    world: World, db: psycopg.Connection[Any], db_url: str, tmp_path: Path
) -> None:
    """Past MESHLOGS_REALTIME_AUTHZ_VISIBILITY_TIMEOUT the check gives up: the channel is told
    (phx_error), rejoins, and the client backfills; the pipeline goes on."""
    from meshlogs.realtime.gateway import GATEWAY

    async with running_server(db_url, tmp_path, realtime_authz_visibility_timeout=0.3) as srv:
        hub = srv.app[GATEWAY].hub
        client = await connect(srv.ws_url, srv.anon_key)
        try:
            _ch, viewer = await subscribe(client, "stuck", token=srv.user_token(world.viewer))
            with held_commits(db) as release:

                def write() -> int:
                    with psycopg.connect(db_url, autocommit=True) as conn:
                        return append(conn, world.run_a, lines(1, "held"))

                writer = asyncio.get_running_loop().run_in_executor(None, write)
                await wait_for(lambda: "CHANNEL_ERROR" in viewer.states, what="the channel erroring")
                assert hub.stats.authz_failures == 1 and viewer.changes == []
                release()
                assert await asyncio.wait_for(writer, 20) == 3
            await wait_for(lambda: viewer.states.count("SUBSCRIBED") >= 2, what="the client rejoining")
            append(db, world.run_a, lines(1, "after"))
            await wait_for(lambda: len(viewer.changes) == 1, what="the next line")
            assert viewer.changes[0]["data"]["record"]["seq"] == 4
        finally:
            await client.close()


async def test_the_python_client_rejoins_after_the_server_restarts(
    world: World, db: psycopg.Connection[Any], db_url: str, tmp_path: Path
) -> None:
    """PyPI realtime reconnects by itself when the server comes back on the same port, rejoins its
    channel, and receives what is written afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with running_server(db_url, tmp_path / "one", port=port) as srv:
        client = await connect(srv.ws_url, srv.anon_key)
        _ch, rec = await subscribe(
            client, "restart", token=srv.user_token(world.viewer), filter=f"run_id=eq.{world.run_a}"
        )
        append(db, world.run_a, lines(1, "before"))
        await wait_for(lambda: len(rec.changes) == 1)
    try:
        async with running_server(db_url, tmp_path / "two", port=port):
            await wait_for(lambda: rec.states.count("SUBSCRIBED") >= 2, timeout=60, what="the rejoin")
            append(db, world.run_a, lines(1, "after"))
            await wait_for(lambda: len(rec.changes) == 2, what="the line after the restart")
            assert [p["data"]["record"]["message"] for p in rec.changes] == ["before0", "after0"]
    finally:
        await client.close()


async def test_a_row_too_large_for_a_frame_goes_out_as_supabase_sends_it(
    world: World, db: psycopg.Connection[Any], db_url: str, tmp_path: Path
) -> None:
    """Over MESHLOGS_REALTIME_MAX_RECORD_BYTES: small values only, and errors names the 413."""
    async with running_server(db_url, tmp_path, realtime_max_record_bytes=2048) as srv:
        client = await connect(srv.ws_url, srv.anon_key)
        try:
            _ch, rec = await subscribe(
                client, "big", token=srv.user_token(world.viewer), filter=f"run_id=eq.{world.run_a}"
            )
            append(db, world.run_a, [{"level": "info", "message": "small"}])
            append(db, world.run_a, [{"level": "warn", "message": "y" * 5000}])
            await wait_for(lambda: len(rec.changes) == 2)
            small, big = (p["data"] for p in rec.changes)
            assert small["errors"] is None and small["record"]["message"] == "small"
            assert big["errors"] == ["Error 413: Payload Too Large"]
            assert "message" not in big["record"]
            assert (big["record"]["seq"], big["record"]["level"], big["record"]["run_id"]) == (
                4,
                "warn",
                world.run_a,
            )
        finally:
            await client.close()


async def test_channel_frame_and_join_limits_come_from_the_settings(
    world: World, db_url: str, tmp_path: Path
) -> None:
    """The limits the protocol core enforces are the server's settings, end to end."""
    async with running_server(
        db_url,
        tmp_path,
        realtime_max_channels=2,
        realtime_max_frame_bytes=4096,
        realtime_max_joins_per_second=5,
    ) as srv:
        url = srv.url.replace("http://", "ws://") + f"/realtime/v1/websocket?apikey={srv.anon_key}&vsn=1.0.0"

        def join(topic: str, ref: str) -> dict[str, Any]:
            return {"topic": f"realtime:{topic}", "event": "phx_join", "payload": {"config": {}}, "ref": ref,
                    "join_ref": ref}  # fmt: skip

        async def reply(ws: aiohttp.ClientWebSocketResponse, ref: str) -> dict[str, Any]:
            while True:
                msg = await asyncio.wait_for(ws.receive_json(), 10)
                if msg["event"] == "phx_reply" and msg["ref"] == ref:
                    return dict(msg["payload"])

        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url) as ws:
                for i in (1, 2):
                    await ws.send_json(join(f"c{i}", str(i)))
                    assert (await reply(ws, str(i)))["status"] == "ok"
                await ws.send_json(join("c3", "3"))
                refused = await reply(ws, "3")
                assert refused == {
                    "status": "error",
                    "response": {"reason": "ChannelRateLimitReached: Too many channels"},
                }
            async with http.ws_connect(url) as ws:
                await ws.send_str("x" * 5000)
                closed = await asyncio.wait_for(ws.receive(), 10)
                assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1009
            async with http.ws_connect(url) as ws:
                for i in range(20):  # a join flood: 20 joins (and leaves) at once, limit 5/s
                    await ws.send_json(join("flood", str(i)))
                    await ws.send_json({"topic": "realtime:flood", "event": "phx_leave", "payload": {},
                                        "ref": f"l{i}", "join_ref": str(i)})  # fmt: skip
                while (msg := await asyncio.wait_for(ws.receive(), 10)).type is aiohttp.WSMsgType.TEXT:
                    pass
                assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1008


async def test_shutdown_tells_clients_the_server_is_going_away(
    world: World, db_url: str, tmp_path: Path
) -> None:
    """Stopping the server closes every WebSocket with 1001 first, instead of the HTTP server
    waiting for the handlers and then cutting them off."""
    async with aiohttp.ClientSession() as http:
        async with running_server(db_url, tmp_path) as srv:
            url = (
                srv.url.replace("http://", "ws://")
                + f"/realtime/v1/websocket?apikey={srv.anon_key}&vsn=1.0.0"
            )
            ws = await http.ws_connect(url, autoclose=True)
            closing = asyncio.create_task(ws.receive())
            await asyncio.sleep(0.1)
            assert not closing.done()
        msg = await asyncio.wait_for(closing, 20)
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1001, "server shutting down")
        await ws.close()
