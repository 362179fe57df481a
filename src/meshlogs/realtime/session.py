"""One WebSocket connection: the thin I/O shell around the sans-I/O ``RealtimeConnection``.

Reading is websockets' ``data_received`` pattern: feed the frame to the protocol core, act on the
events it surfaces (joins, leaves, broadcasts, presence, token refreshes), then move the frames it
queued to the outbox.

Writing is coalesced: frames queued during one event-loop iteration (e.g. every line of a change batch
for this connection) leave in ONE ``transport.write`` at the end of that iteration, encoded by
:mod:`meshlogs.protocol.wsframes`. At light load that is one frame per write, sent at once; under load
it saves the per-write kernel cost that dominates fan-out (``FANOUT.md``), with no timer and no task
switch per frame. aiohttp still writes its own control frames (pong, close) on the same transport,
always between whole frames.

Backpressure policy (invariant 5): what a connection has not yet handed to the kernel (the outbox
plus the transport's buffer) is bounded in bytes (``MESHLOGS_REALTIME_MAX_PENDING_BYTES``). A client
that cannot keep up past that bound is disconnected with close code 1013 and the reason ``slow
consumer``; it is never silently skipped, and its client reconnects and backfills the missed lines by
seq.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from meshlogs.auth.tokens import verify_token
from meshlogs.errors import InvalidFilterError, TokenError
from meshlogs.protocol.changes import EncodedChange
from meshlogs.protocol.connection import RealtimeConnection
from meshlogs.protocol.events import (
    AccessTokenReceived,
    BroadcastReceived,
    CloseRequested,
    JoinRequested,
    LeaveRequested,
    MessageIgnored,
    PresenceTracked,
    PresenceUntracked,
    ProtocolViolation,
)
from meshlogs.protocol.filters import parse_filter
from meshlogs.protocol.phoenix import Frame, Opcode
from meshlogs.protocol.wsframes import encode_frames
from meshlogs.realtime.claims import Claims
from meshlogs.realtime.subscriptions import Subscription
from meshlogs.realtime.token_errors import expired_message, join_error, refresh_error

if TYPE_CHECKING:
    from meshlogs.realtime.gateway import Gateway

__all__ = ["CLOSE_SLOW_CONSUMER", "ChannelHandle", "Session"]

log = logging.getLogger(__name__)

CLOSE_SLOW_CONSUMER = 1013  # "try again later": the client reconnects and backfills


#: Supabase Realtime's join refusal while it cannot reach the database (clients retry it).
CAPTURE_DOWN = "UnableToConnectToProject: Realtime was unable to connect to the project database"


class ChannelHandle:
    """The server side of one joined channel: its claims, subscriptions and presence."""

    def __init__(
        self, session: Session, topic: str, join_ref: str, claims: Claims, event: JoinRequested
    ) -> None:
        self.session = session
        self.topic = topic
        self.join_ref = join_ref
        self.claims = claims
        self.subscriptions: list[Subscription] = []
        self.presence_enabled = event.config.presence.enabled
        channel = session.conn.channel(topic)
        self.presence_key = channel.presence_key if channel is not None else ""
        self.broadcast_self = event.config.broadcast.self_broadcast

    # Subscriber (hub)
    def deliver_change(self, ids: Sequence[int], change: EncodedChange) -> None:
        data = self.session.conn.postgres_changes_frame(self.topic, ids, change)
        if data is not None:
            self.session.enqueue(Frame(Opcode.TEXT, data))

    def resync(self, reason: str) -> None:
        if self.session.conn.error_channel(self.topic, reason, join_ref=self.join_ref):
            self.session.drop_channel(self)
            self.session.flush()

    # Member (topics)
    def deliver_presence_diff(self, joins: dict[str, Any], leaves: dict[str, Any]) -> None:
        if self.session.conn.send_presence_diff(self.topic, joins, leaves, join_ref=self.join_ref):
            self.session.flush()


class Session:
    """A connected client."""

    def __init__(
        self,
        gateway: Gateway,
        ws: web.WebSocketResponse,
        conn: RealtimeConnection,
        default_claims: Claims,
        *,
        max_pending_bytes: int,
        peer: str,
    ) -> None:
        self.gateway = gateway
        self.ws = ws
        self.conn = conn
        self.default_claims = default_claims
        self.peer = peer
        self.channels: dict[str, ChannelHandle] = {}
        self._out: deque[Frame] = deque()
        self._pending = 0
        self._max_pending = max_pending_bytes
        self._flush_scheduled = False
        self._closing = False
        self._slow = False
        self._loop = asyncio.get_running_loop()
        request = ws._req  # noqa: SLF001 - the prepared request owns the transport we write to
        self._transport = request.transport if request is not None else None
        self.frames_sent = 0
        self.bytes_sent = 0

    # -- reading ------------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = self._loop
        try:
            async for msg in self.ws:
                now = loop.time()
                if msg.type is WSMsgType.TEXT:
                    self.conn.receive_text(msg.data, now)
                elif msg.type is WSMsgType.BINARY:
                    self.conn.receive_binary(msg.data, now)
                else:  # ERROR; CLOSE frames end the iteration
                    break
                await self._handle_events()
                self.flush()
                if self._closing:
                    break
        finally:
            for handle in list(self.channels.values()):
                self.drop_channel(handle)
            self._out.clear()
            self._pending = 0

    async def _handle_events(self) -> None:
        for event in self.conn.events_received():
            if isinstance(event, JoinRequested):
                await self._join(event)
            elif isinstance(event, LeaveRequested):
                handle = self.channels.get(event.topic)
                if handle is not None and handle.join_ref == event.join_ref:
                    self.drop_channel(handle)
            elif isinstance(event, BroadcastReceived):
                self._broadcast(event)
            elif isinstance(event, PresenceTracked):
                handle = self.channels.get(event.topic)
                if handle is not None:
                    self.gateway.topics.track(handle, dict(event.meta))
                    self.conn.reply(event)
            elif isinstance(event, PresenceUntracked):
                handle = self.channels.get(event.topic)
                if handle is not None:
                    self.gateway.topics.untrack(handle)
                    self.conn.reply(event)
            elif isinstance(event, AccessTokenReceived):
                self._refresh_token(event)
            elif isinstance(event, CloseRequested):
                await self.close(event.code, event.reason)
            elif isinstance(event, ProtocolViolation | MessageIgnored):
                log.debug("%s: %s", self.peer, event)

    async def _join(self, event: JoinRequested) -> None:
        topic, join_ref = event.topic, event.join_ref
        try:
            claims = (
                Claims.from_jwt(verify_token(self.gateway.jwt_secret, event.access_token))
                if event.access_token
                else self.default_claims
            )
        except TokenError as exc:
            self.conn.reject_join(topic, join_ref, join_error(exc))
            return
        if event.config.private:
            self.conn.reject_join(
                topic, join_ref, "Unauthorized: private channels are not supported by meshlogs"
            )
            return
        if event.config.postgres_changes and not self.gateway.hub.source.status.ready:
            # Supabase's retryable reason: the client backs off and joins again.
            self.conn.reject_join(topic, join_ref, CAPTURE_DOWN)
            return
        handle = ChannelHandle(self, topic, join_ref, claims, event)
        subs: list[Subscription] = []
        for binding in event.config.postgres_changes:
            tables = await self.gateway.catalog.match(binding.schema, binding.table)
            if not tables:
                self.conn.reject_join(
                    topic,
                    join_ref,
                    "UnableToSubscribe: Unable to subscribe to changes with given parameters: "
                    f"{binding.schema}.{binding.table} is not in the supabase_realtime publication",
                )
                return
            events = (
                frozenset({"INSERT", "UPDATE", "DELETE"})
                if binding.event == "*"
                else frozenset({binding.event})
            )
            for table in tables:
                try:
                    parsed = parse_filter(binding.filter, table.columns) if binding.filter else None
                except InvalidFilterError as exc:
                    self.conn.reject_join(topic, join_ref, f"InvalidFilter: {exc}")
                    return
                if binding.select is not None:
                    unknown = [c for c in binding.select if c not in table.columns]
                    if unknown:
                        self.conn.reject_join(
                            topic, join_ref, f"InvalidSelect: unknown column(s) {', '.join(unknown)}"
                        )
                        return
                select = None
                if binding.select is not None:
                    select = tuple(dict.fromkeys((*table.primary_key, *binding.select)))
                subs.append(
                    Subscription(handle, binding.id, events, table.schema, table.table, parsed, select)
                )
        presence = self.gateway.topics.presence_state(topic) if handle.presence_enabled else None
        if not self.conn.accept_join(topic, join_ref, presence_state=presence):
            return
        handle.subscriptions = subs
        self.channels[topic] = handle
        self.gateway.hub.subscribe(subs)
        self.gateway.topics.join(handle)
        self.gateway.stats_joins += 1

    def _broadcast(self, event: BroadcastReceived) -> None:
        sender = self.channels.get(event.topic)
        if sender is None:
            return
        for member in self.gateway.topics.members(event.topic):
            if member is sender and not event.self_wanted:
                continue
            if member.session.conn.send_broadcast(event.topic, event.broadcast, join_ref=member.join_ref):
                member.session.flush()
        self.conn.ack_broadcast(event)

    def _refresh_token(self, event: AccessTokenReceived) -> None:
        handle = self.channels.get(event.topic)
        if handle is None or handle.join_ref != event.join_ref:
            return
        try:
            claims = Claims.from_jwt(verify_token(self.gateway.jwt_secret, event.token))
        except TokenError as exc:
            if self.conn.close_channel(event.topic, refresh_error(exc), join_ref=handle.join_ref):
                self.drop_channel(handle)
            return
        handle.claims = claims
        if handle.subscriptions:
            self.conn.send_system(
                event.topic,
                status="ok",
                message="Subscribed to PostgreSQL",
                extension="postgres_changes",
                join_ref=handle.join_ref,
            )

    def expire_tokens(self, now_wall: float) -> None:
        """Close channels whose token has expired, with Supabase's message."""
        for handle in list(self.channels.values()):
            exp = handle.claims.expires_at
            if exp is not None and now_wall >= exp:
                reason = expired_message(now_wall - exp)
                if self.conn.close_channel(handle.topic, reason, join_ref=handle.join_ref):
                    self.drop_channel(handle)
                    self.flush()

    def drop_channel(self, handle: ChannelHandle) -> None:
        if self.channels.get(handle.topic) is handle:
            del self.channels[handle.topic]
        self.gateway.hub.unsubscribe(handle.subscriptions)
        handle.subscriptions = []
        self.gateway.topics.leave(handle)

    # -- writing ------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Move the protocol core's queued frames to the outbox."""
        for frame in self.conn.data_to_send():
            self.enqueue(frame)

    def enqueue(self, frame: Frame) -> None:
        if self._closing or self._slow:
            return
        self._out.append(frame)
        self._pending += len(frame.data)
        if self._pending + self._buffered() > self._max_pending:
            self._slow = True
            self.gateway.stats_slow_consumers += 1
            log.warning(
                "%s: slow consumer (%d bytes pending), disconnecting",
                self.peer,
                self._pending + self._buffered(),
            )
            self._out.clear()
            self._pending = 0
            self._loop.create_task(
                self.close(CLOSE_SLOW_CONSUMER, "slow consumer: resubscribe and backfill", timeout=10)
            )
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._write_out)

    def _buffered(self) -> int:
        """Bytes written to the transport that the kernel has not taken yet."""
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def _write_out(self) -> None:
        """Hand every queued frame to the transport in one write (see the module docstring)."""
        self._flush_scheduled = False
        if not self._out:
            return
        frames, size = list(self._out), self._pending
        self._out.clear()
        self._pending = 0
        transport = self._transport
        if self._slow or transport is None or transport.is_closing():
            return
        transport.write(encode_frames(frames))
        self.frames_sent += len(frames)
        self.bytes_sent += size

    async def close(self, code: int, reason: str, *, timeout: float = 2.0) -> None:
        """Close with a code and reason; abort the transport if the client does not answer in time
        (a stuck client must not hold the connection forever)."""
        if self._closing:
            return
        self._write_out()  # what was queued before the close goes out before the close frame
        self._closing = True
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()[:120]), timeout=timeout)
        except (TimeoutError, ConnectionError, RuntimeError):
            transport = self.ws._req.transport if self.ws._req is not None else None  # noqa: SLF001
            if transport is not None:
                transport.abort()
