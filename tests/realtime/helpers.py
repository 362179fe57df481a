"""Helpers for gateway tests: polling waits with timeouts, and subscribing with the official client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from realtime import AsyncRealtimeChannel, AsyncRealtimeClient

TIMEOUT = 20.0


async def wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT, what: str = "condition") -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


class Recorder:
    """Collects callback payloads and subscription states of one channel."""

    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []
        self.states: list[str] = []
        self.system: list[dict[str, Any]] = []
        self.broadcasts: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def on_change(self, payload: dict[str, Any]) -> None:
        self.changes.append(payload)

    def on_state(self, state: Any, err: Exception | None) -> None:
        self.states.append(getattr(state, "value", str(state)))
        if err is not None:
            self.errors.append(str(err))

    def seqs(self) -> list[int]:
        return [int(p["data"]["record"]["seq"]) for p in self.changes]


async def connect(url: str, key: str) -> AsyncRealtimeClient:
    client = AsyncRealtimeClient(url, key, max_retries=20, initial_backoff=0.2)
    await client.connect()
    return client


async def subscribe(
    client: AsyncRealtimeClient,
    topic: str,
    *,
    token: str | None = None,
    event: str = "INSERT",
    table: str = "run_logs",
    filter: str | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[AsyncRealtimeChannel, Recorder]:
    rec = Recorder()
    if token is not None:
        await client.set_auth(token)
    channel = client.channel(topic, params)  # type: ignore[arg-type]
    channel.on_postgres_changes(event, rec.on_change, table=table, schema="public", filter=filter)  # type: ignore[arg-type]
    channel.on_system(lambda p: rec.system.append(dict(p)))
    await channel.subscribe(rec.on_state)
    return channel, rec
