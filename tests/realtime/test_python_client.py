"""The official PyPI ``realtime`` client (vsn 1.0.0) against a real server and real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from tests.factories import World, append, make_world
from tests.support.server import RunningServer, running_server

TIMEOUT = 20


@pytest.fixture
def world(db: psycopg.Connection[Any]) -> World:
    return make_world(db)


@pytest.fixture
async def server(db_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_url, tmp_path) as srv:
        yield srv


async def subscribe_logs(
    client: AsyncRealtimeClient, run: str, token: str | None, received: list[dict[str, Any]]
) -> tuple[Any, list[str]]:
    states: list[str] = []
    if token:
        await client.set_auth(token)
    channel = client.channel(f"run:{run}")
    channel.on_postgres_changes(
        "INSERT", lambda p: received.append(p), table="run_logs", schema="public", filter=f"run_id=eq.{run}"
    )
    await channel.subscribe(
        lambda state, err: states.append(state.value if hasattr(state, "value") else str(state))
    )
    return channel, states


async def wait_for(predicate: Any, timeout: float = TIMEOUT) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_subscribe_insert_in_order(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    client = AsyncRealtimeClient(server.ws_url, server.anon_key)
    await client.connect()
    try:
        received: list[dict[str, Any]] = []
        _channel, states = await subscribe_logs(
            client, world.run_a, server.user_token(world.viewer), received
        )
        assert RealtimeSubscribeStates.SUBSCRIBED.value in states, states
        append(db, world.run_a, [{"level": "info", "message": f"line {i}"} for i in range(5)])
        append(db, world.run_a, [{"level": "warn", "message": "more"}])
        await wait_for(lambda: len(received) >= 4)
        await wait_for(lambda: len(received) >= 6)
        seqs = [p["data"]["record"]["seq"] for p in received]
        assert seqs == [3, 4, 5, 6, 7, 8]
        first = received[0]["data"]
        assert first["type"] == "INSERT" and first["table"] == "run_logs" and first["schema"] == "public"
        assert first["record"]["message"] == "line 0" and first["record"]["run_id"] == world.run_a
        assert {"name": "seq", "type": "int8"} in first["columns"]
    finally:
        await client.close()


async def test_other_tenant_gets_nothing(
    server: RunningServer, world: World, db: psycopg.Connection[Any]
) -> None:
    client = AsyncRealtimeClient(server.ws_url, server.anon_key)
    await client.connect()
    try:
        stolen: list[dict[str, Any]] = []
        own: list[dict[str, Any]] = []
        await subscribe_logs(client, world.run_a, server.user_token(world.outsider), stolen)
        other = AsyncRealtimeClient(server.ws_url, server.anon_key)
        await other.connect()
        try:
            await subscribe_logs(other, world.run_b, server.user_token(world.outsider), own)
            append(db, world.run_a, [{"level": "info", "message": "secret"}])
            append(db, world.run_b, [{"level": "info", "message": "mine"}])
            await wait_for(lambda: len(own) == 1)
            await asyncio.sleep(0.3)
            assert stolen == []
        finally:
            await other.close()
    finally:
        await client.close()
