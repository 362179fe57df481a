"""The realtime half of ``meshlogs tail``: one channel on the official Python ``realtime`` client.

The channel carries two ``postgres_changes`` bindings: INSERT on ``run_logs`` filtered by the run, and
UPDATE on ``workflow_runs`` for the run's status. Callbacks only put events on the follower's queue.

Reconnecting is the follower's job, not the client's: the client is created with
``auto_reconnect=False``, so a dropped socket reports ``CHANNEL_ERROR`` once and stays down, and the
follower opens a fresh :class:`LiveChannel` (with its own backoff) and backfills by seq. The client's
own reconnect loop gives up after a few tries by raising inside a background task, which a terminal
program that must follow a run for hours cannot rely on.

As PROTOCOL.md §9 warns, the user's token is set with ``set_auth()`` *before* ``subscribe()``, or
the join would run with the anon key's rights and RLS would deliver nothing, silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from meshlogs.tail.api import TailError, Unavailable

__all__ = ["ChannelLost", "JoinRefused", "LiveChannel", "LiveEvent", "LiveRow", "StatusChanged"]

JOIN_TIMEOUT = 10  # seconds, as the official clients use
#: Live events queued at most. A follower that falls this far behind treats the channel as lost:
#: it reconnects and backfills by seq (the table is the truth), as a slow consumer does.
MAX_QUEUED = 50_000


@dataclass(frozen=True)
class LiveRow:
    generation: int
    record: dict[str, Any]


@dataclass(frozen=True)
class StatusChanged:
    generation: int
    status: str


@dataclass(frozen=True)
class ChannelLost:
    generation: int
    reason: str


LiveEvent = LiveRow | StatusChanged | ChannelLost


class JoinRefused(Exception):
    """The server answered the join with an error (the reason is the message)."""


class LiveChannel:
    """One realtime connection with one channel for one run.

    Args:
        url: the server's base URL (``/realtime/v1`` is appended).
        api_key: the anon key (sent as ``apikey`` on the WebSocket URL).
        token: the user's access token (or the API key when not logged in).
        run_id: the run to follow.
        events: where callbacks put :data:`LiveEvent` values.
        generation: tag for this connection's events, so late events of a closed one are ignored.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        token: str,
        run_id: str,
        events: asyncio.Queue[LiveEvent],
        generation: int,
    ) -> None:
        self.url = url.rstrip("/") + "/realtime/v1"
        self.api_key = api_key
        self.token = token
        self.run_id = run_id
        self.events = events
        self.generation = generation
        self._client: Any = None
        self._lost = False

    async def open(self) -> None:
        """Connect, authenticate and subscribe; return once the channel is SUBSCRIBED.

        Raises:
            Unavailable: the socket could not be opened or the join timed out.
            JoinRefused: the server refused the join.
            TailError: the ``realtime`` package is not installed.
        """
        try:
            from realtime import AsyncRealtimeClient
            from realtime import RealtimePostgresChangesListenEvent as Listen
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise TailError(
                "meshlogs tail needs the official realtime client: pip install 'realtime>=2.34'"
            ) from exc
        client = AsyncRealtimeClient(
            self.url, self.api_key, auto_reconnect=False, max_retries=1, timeout=JOIN_TIMEOUT
        )
        self._client = client
        try:
            await client.connect()
        except Exception as exc:  # websockets raises OSError, InvalidStatus, TimeoutError...
            raise Unavailable(f"cannot open the realtime socket: {_describe(exc)}") from exc
        await client.set_auth(self.token)
        channel = client.channel(f"meshlogs-tail:{self.run_id}")
        channel.on_postgres_changes(
            Listen.Insert, self._on_row, table="run_logs", schema="public", filter=f"run_id=eq.{self.run_id}"
        )
        channel.on_postgres_changes(
            Listen.Update, self._on_run, table="workflow_runs", schema="public", filter=f"id=eq.{self.run_id}"
        )
        first: asyncio.Future[tuple[str, Exception | None]] = asyncio.get_running_loop().create_future()

        def on_state(state: Any, error: Exception | None) -> None:
            name = str(getattr(state, "value", state))
            if not first.done():
                first.set_result((name, error))
                return
            if name != "SUBSCRIBED":
                self._report_lost(_reason(name, error))

        try:
            await channel.subscribe(on_state)
        except Exception as exc:  # the socket went away before the join was sent
            raise Unavailable(f"cannot join the channel: {_describe(exc)}") from exc
        try:
            name, error = await asyncio.wait_for(first, JOIN_TIMEOUT + 5)
        except TimeoutError:
            raise Unavailable("no answer to the channel join") from None
        if name == "SUBSCRIBED":
            if not client.is_connected:  # lost between the reply and now
                self._report_lost("socket closed")
            return
        if name == "TIMED_OUT" or not client.is_connected:
            raise Unavailable(_reason(name, error))
        raise JoinRefused(_reason(name, error))

    async def set_token(self, token: str) -> None:
        """Send a refreshed access token on the open channel (``access_token`` event)."""
        self.token = token
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.set_auth(token)

    async def close(self) -> None:
        """Close the socket; events it still reports are ignored (bounded to a few seconds)."""
        self._lost = True
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 5)

    def _report_lost(self, reason: str) -> None:
        if self._lost:
            return
        self._lost = True
        self.events.put_nowait(ChannelLost(self.generation, reason))

    def _on_row(self, payload: Any) -> None:
        if self._lost:
            return
        if self.events.qsize() >= MAX_QUEUED:
            self._report_lost("fell behind the live stream")
            return
        record = _record(payload)
        if record is not None:
            self.events.put_nowait(LiveRow(self.generation, record))

    def _on_run(self, payload: Any) -> None:
        record = _record(payload)
        if record is not None and isinstance(record.get("status"), str):
            self.events.put_nowait(StatusChanged(self.generation, record["status"]))


def _record(payload: Any) -> dict[str, Any] | None:
    try:
        record = payload["data"]["record"]
    except (KeyError, TypeError):
        return None
    return record if isinstance(record, dict) else None


def _reason(state: str, error: Exception | None) -> str:
    if error is None:
        return state.lower().replace("_", " ")
    text = str(error)
    try:
        decoded = json.loads(text)
    except ValueError:
        return text or state.lower()
    if isinstance(decoded, dict):
        for key in ("reason", "message"):
            if isinstance(decoded.get(key), str):
                return str(decoded[key])
    return text


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
