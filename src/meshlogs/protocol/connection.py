"""The sans-I/O state machine of one Realtime WebSocket connection.

Like ``websockets``' ``Protocol``, it does no I/O and reads no clock: the server feeds it frames
with :meth:`RealtimeConnection.receive_text` / :meth:`~RealtimeConnection.receive_binary` (passing
the current monotonic time), then drains :meth:`~RealtimeConnection.events_received` (decisions the
server must make) and :meth:`~RealtimeConnection.data_to_send` (frames to write, in order). The
server's answers (``accept_join``, ``send_broadcast``, ...) queue more frames the same way.

What the connection decides alone, following Phoenix (``phoenix/socket.ex``) and Supabase
(``realtime_channel.ex``):

* heartbeats on topic ``phoenix`` are answered ``ok`` with the heartbeat's ref;
* a message to a topic that is not joined gets ``{"reason": "unmatched topic"}``, except
  ``phx_leave``, which is answered ``ok``;
* a message whose non-null ``join_ref`` is not the channel's current one is dropped (a stale
  message from a previous join), as Phoenix does;
* ``phx_leave`` is answered ``ok`` with the leave's refs, then ``phx_close`` goes out with
  ``ref = join_ref`` (V2 ``[join_ref, join_ref, topic, "phx_close", {}]``);
* a ``phx_join`` of a topic that already has a channel closes the old one first (its ``phx_close``
  carries the old join ref, which current clients ignore), then handles the new join;
* limits: ``ClientJoinRateLimitReached: Too many joins per second`` (then the socket is closed),
  ``ChannelRateLimitReached: Too many channels``; invalid join payloads are refused with
  ``InvalidJoinPayload: <field>: <problem>``;
* unknown events are dropped with a :class:`~meshlogs.protocol.events.MessageIgnored` event,
  malformed frames with a :class:`~meshlogs.protocol.events.ProtocolViolation`; neither closes the
  socket. Only an oversized frame (1009) and a join flood (1008) ask for a close.

Every push carries the channel's **current** join ref on V2 sockets: realtime-js >= 2.100 drops
frames with any other non-null join ref. Server methods take an optional ``join_ref`` guard so that
work finished for an old join (a token timer, a slow authorization) cannot touch a newer one.

Outgoing frames are :class:`~meshlogs.protocol.phoenix.Frame` values (opcode + bytes); text frames are
UTF-8 bytes so that spliced ``postgres_changes`` frames need no decoding.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from meshlogs.errors import FrameError, FrameTooLargeError, InvalidJoinPayloadError
from meshlogs.protocol.broadcast import Broadcast
from meshlogs.protocol.changes import EncodedChange, frame_prefix
from meshlogs.protocol.channel import Channel, ChannelState
from meshlogs.protocol.events import (
    AccessTokenReceived,
    BroadcastReceived,
    CloseRequested,
    Event,
    JoinRequested,
    LeaveRequested,
    MessageIgnored,
    PresenceTracked,
    PresenceUntracked,
    ProtocolViolation,
)
from meshlogs.protocol.limits import Limits, RateWindow
from meshlogs.protocol.outbox import Outbox
from meshlogs.protocol.payloads import parse_join_payload
from meshlogs.protocol.phoenix import (
    Frame,
    Message,
    Opcode,
    UserBroadcastPush,
    Vsn,
    decode_binary,
    decode_text,
)

__all__ = [
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_POLICY_VIOLATION",
    "SUBSCRIBED_TO_POSTGRES",
    "RealtimeConnection",
]

SUBSCRIBED_TO_POSTGRES: Final = "Subscribed to PostgreSQL"
"""The ``system`` message Supabase sends once a channel's postgres subscriptions exist."""

CLOSE_POLICY_VIOLATION: Final = 1008
CLOSE_MESSAGE_TOO_BIG: Final = 1009

_HEARTBEAT_TOPIC: Final = "phoenix"
_TOPIC_PREFIX: Final = "realtime:"
_UNMATCHED: Final = "unmatched topic"
_TOO_MANY_JOINS: Final = "ClientJoinRateLimitReached: Too many joins per second"
_TOO_MANY_CHANNELS: Final = "ChannelRateLimitReached: Too many channels"
_TOPIC_REQUIRED: Final = "TopicNameRequired: You must provide a topic name"
_TRACK_NOT_A_MAP: Final = "Presence track payload must be a map"


def _uuid4() -> str:
    return str(uuid.uuid4())


class RealtimeConnection:
    """Protocol state of one Realtime WebSocket connection.

    Args:
        vsn: the serializer version negotiated from the ``vsn`` query parameter.
        now: the time the connection opened (same clock as every later ``now``); starts the idle
            timer.
        limits: the connection's bounds.
        default_token: the connect-time ``apikey`` JWT, used for joins that carry no user token.
        id_factory: makes presence keys for joins that leave ``presence.key`` empty (random UUIDs
            by default; pass a deterministic one in tests).
    """

    def __init__(
        self,
        vsn: Vsn = Vsn.V1,
        *,
        now: float,
        limits: Limits | None = None,
        default_token: str | None = None,
        id_factory: Callable[[], str] = _uuid4,
    ) -> None:
        self.vsn = vsn
        self.limits = limits if limits is not None else Limits()
        self.default_token = default_token
        self._id_factory = id_factory
        self._channels: dict[str, Channel] = {}
        self._events: list[Event] = []
        self._out = Outbox(vsn)
        self._joins = RateWindow(self.limits.max_joins_per_second)
        self._last_received = now
        self._closing = False

    # ----------------------------------------------------------------------------------- state

    @property
    def channels(self) -> Mapping[str, Channel]:
        """Current channels by topic (read-only view); on disconnect, clean up each of them."""
        return MappingProxyType(self._channels)

    def channel(self, topic: str) -> Channel | None:
        """The channel of ``topic``, joining or joined, or ``None``."""
        return self._channels.get(topic)

    @property
    def closing(self) -> bool:
        """A :class:`CloseRequested` was emitted; input is ignored from then on."""
        return self._closing

    @property
    def last_received(self) -> float:
        """Time of the last inbound frame (or of the connection opening)."""
        return self._last_received

    def idle(self, now: float) -> bool:
        """Whether the socket has been silent for longer than ``limits.idle_timeout``.

        Args:
            now: the current time.

        Returns:
            ``True`` when the server should close the socket.
        """
        return now - self._last_received > self.limits.idle_timeout

    # ------------------------------------------------------------------------------ input side

    def receive_text(self, data: str | bytes, now: float) -> None:
        """Handle one inbound text frame.

        Args:
            data: the frame, as ``str`` or UTF-8 bytes.
            now: the current time.
        """
        if self._closing:
            return
        self._last_received = now
        try:
            message = decode_text(data, self.vsn, max_size=self.limits.max_frame_bytes)
        except FrameError as exc:
            self._frame_error(exc)
            return
        self._handle(message, now)

    def receive_binary(self, data: bytes, now: float) -> None:
        """Handle one inbound binary frame (kind-3 user broadcast push on V2 sockets).

        Args:
            data: the frame's bytes.
            now: the current time.
        """
        if self._closing:
            return
        self._last_received = now
        if self.vsn is not Vsn.V2:
            self._violation("MalformedFrame", "binary frames are only accepted with vsn 2.0.0")
            return
        try:
            push = decode_binary(data, max_size=self.limits.max_frame_bytes)
        except FrameError as exc:
            self._frame_error(exc)
            return
        self._binary_broadcast(push)

    def events_received(self) -> list[Event]:
        """Events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[Frame]:
        """Frames to write since the last call, in order."""
        return self._out.drain()

    # ------------------------------------------------------------------------------ server side

    def accept_join(
        self,
        topic: str,
        join_ref: str,
        *,
        binding_ids: Sequence[int] | None = None,
        postgres_subscribed: bool = True,
        presence_state: Mapping[str, Any] | None = None,
    ) -> bool:
        """Answer a :class:`JoinRequested` with success.

        Sends, in Supabase's order: the ``ok`` reply whose ``postgres_changes`` echoes each binding
        map verbatim plus its ``id``; ``presence_state`` when presence is enabled (JS presence
        buffers every diff until it has one); and the ``system`` "Subscribed to PostgreSQL" message
        when the channel has bindings and ``postgres_subscribed`` is true.

        Args:
            topic: the channel topic.
            join_ref: the ``join_ref`` of the ``JoinRequested`` being answered.
            binding_ids: ids to use instead of the bindings' own; positive integers, one per binding.
            postgres_subscribed: the subscriptions exist now; pass ``False`` to send the system
                message later with :meth:`send_system` (or an error one if subscribing failed).
            presence_state: the topic's current presence state (``{}`` when omitted).

        Returns:
            ``False`` when that join is no longer pending (left or replaced meanwhile).

        Raises:
            ValueError: ``binding_ids`` has the wrong length or a non-positive id.
        """
        channel = self._channels.get(topic)
        if channel is None or channel.join_ref != join_ref or channel.state is not ChannelState.JOINING:
            return False
        bindings = channel.config.postgres_changes
        ids = tuple(binding.id for binding in bindings) if binding_ids is None else tuple(binding_ids)
        if len(ids) != len(bindings) or not all(type(ident) is int and ident > 0 for ident in ids):
            raise ValueError("binding_ids needs one positive integer per postgres_changes binding")
        response = {
            "postgres_changes": [
                {**binding.raw, "id": ident} for binding, ident in zip(bindings, ids, strict=True)
            ]
        }
        self._out.reply(channel.request_join_ref, channel.request_ref, topic, response)
        channel.state = ChannelState.JOINED
        channel.binding_ids = ids
        channel.changes_prefix = frame_prefix(self.vsn, topic, join_ref)
        if channel.config.presence.enabled:
            self._out.push(channel, "presence_state", dict(presence_state or {}))
        if bindings and postgres_subscribed:
            self._out.system(channel, "ok", SUBSCRIBED_TO_POSTGRES, "postgres_changes")
        return True

    def reject_join(self, topic: str, join_ref: str, reason: str) -> bool:
        """Answer a :class:`JoinRequested` with an error; the channel is forgotten.

        Args:
            topic: the channel topic.
            join_ref: the ``join_ref`` of the ``JoinRequested`` being answered.
            reason: ``"<Code>: <message>"`` as Supabase words it, e.g.
                ``"InvalidJWTToken: Token has expired 12 seconds ago"``.

        Returns:
            ``False`` when that join is no longer pending.
        """
        channel = self._channels.get(topic)
        if channel is None or channel.join_ref != join_ref or channel.state is not ChannelState.JOINING:
            return False
        del self._channels[topic]
        self._out.reply(channel.request_join_ref, channel.request_ref, topic, None, error=reason)
        return True

    def reply(
        self,
        request: BroadcastReceived | PresenceTracked | PresenceUntracked,
        response: Mapping[str, Any] | None = None,
        *,
        error: str | None = None,
    ) -> bool:
        """Answer a client push (broadcast ack, presence track/untrack).

        Joins are answered with :meth:`accept_join`/:meth:`reject_join`; leaves are answered by the
        connection itself and ``access_token`` pushes never are.

        Args:
            request: the event being answered.
            response: the ``response`` object of an ``ok`` reply (``{}`` when omitted).
            error: send ``{"status": "error", "response": {"reason": error}}`` instead.

        Returns:
            ``False`` when the push had no ref or its join is gone.

        Raises:
            TypeError: ``request`` is another kind of event.
        """
        if not isinstance(request, BroadcastReceived | PresenceTracked | PresenceUntracked):
            raise TypeError(f"{type(request).__name__} is not answered with reply()")
        channel = self._channels.get(request.topic)
        if request.ref is None or channel is None or channel.join_ref != request.join_ref:
            return False
        self._out.reply(request.join_ref, request.ref, request.topic, response, error=error)
        return True

    def ack_broadcast(self, event: BroadcastReceived) -> bool:
        """Reply ``ok`` to a broadcast push if its channel asked for acks.

        Args:
            event: the broadcast event.

        Returns:
            Whether a reply was queued.
        """
        return event.ack_needed and self.reply(event)

    def send_system(
        self,
        topic: str,
        *,
        status: str,
        message: str,
        extension: str = "system",
        join_ref: str | None = None,
    ) -> bool:
        """Push a ``system`` message (Python clients treat ``status: "error"`` as a channel error).

        Args:
            topic: the channel topic.
            status: ``"ok"`` or ``"error"``.
            message: e.g. :data:`SUBSCRIBED_TO_POSTGRES` or
                ``"Error parsing `filter` params: ..."``.
            extension: ``"postgres_changes"`` or ``"system"``.
            join_ref: only if the channel is still this join.

        Returns:
            ``False`` when the channel is not joined (or not that join).
        """
        channel = self._joined(topic, join_ref)
        if channel is None:
            return False
        self._out.system(channel, status, message, extension)
        return True

    def close_channel(self, topic: str, reason: str | None = None, *, join_ref: str | None = None) -> bool:
        """Shut a channel down as Supabase does (token expired, permission revoked, rate limits).

        Sends ``system`` ``{"extension": "system", "status": "error", "message": reason}`` when a
        reason is given, then ``phx_close``. realtime-js reports CLOSED and does not rejoin;
        Python reports CHANNEL_ERROR then CLOSED.

        Args:
            topic: the channel topic.
            reason: the message for the client, e.g. ``"Token has expired 3 seconds ago"``.
            join_ref: only if the channel is still this join.

        Returns:
            ``False`` when the channel is not joined (or not that join).
        """
        channel = self._joined(topic, join_ref)
        if channel is None:
            return False
        if reason is not None:
            self._out.system(channel, "error", reason, "system")
        self._out.close(channel, "phx_close", {})
        del self._channels[topic]
        return True

    def error_channel(
        self, topic: str, reason: str = "channel_crash", *, join_ref: str | None = None
    ) -> bool:
        """Report a server-side channel crash with ``phx_error``; clients rejoin with backoff.

        Use it when the server lost the channel's state (e.g. the change stream broke) and the
        client should resubscribe and backfill.

        Args:
            topic: the channel topic.
            reason: the ``reason`` in the payload.
            join_ref: only if the channel is still this join.

        Returns:
            ``False`` when the channel is not joined (or not that join).
        """
        channel = self._joined(topic, join_ref)
        if channel is None:
            return False
        self._out.close(channel, "phx_error", {"reason": reason})
        del self._channels[topic]
        return True

    def send_broadcast(self, topic: str, broadcast: Broadcast, *, join_ref: str | None = None) -> bool:
        """Deliver a broadcast to this connection's channel of ``topic``.

        Args:
            topic: the channel topic.
            broadcast: the broadcast (JSON text, or binary kind 4 on V2 when it arrived binary).
            join_ref: only if the channel is still this join.

        Returns:
            ``False`` when the channel is not joined, or the broadcast is raw bytes and this is a
            V1 socket (which cannot receive it).
        """
        channel = self._joined(topic, join_ref)
        if channel is None:
            return False
        frame = broadcast.frame(self.vsn, topic, channel.join_ref)
        if frame is None:
            return False
        self._out.append(frame)
        return True

    def send_presence_state(
        self, topic: str, state: Mapping[str, Any], *, join_ref: str | None = None
    ) -> bool:
        """Push ``presence_state`` (``{key: {"metas": [{"phx_ref": ..., ...}]}}``).

        Returns:
            ``False`` when the channel is not joined (or not that join).
        """
        return self.push(topic, "presence_state", dict(state), join_ref=join_ref)

    def send_presence_diff(
        self,
        topic: str,
        joins: Mapping[str, Any],
        leaves: Mapping[str, Any],
        *,
        join_ref: str | None = None,
    ) -> bool:
        """Push ``presence_diff`` ``{"joins": ..., "leaves": ...}``.

        Returns:
            ``False`` when the channel is not joined (or not that join).
        """
        payload = {"joins": dict(joins), "leaves": dict(leaves)}
        return self.push(topic, "presence_diff", payload, join_ref=join_ref)

    def postgres_changes_frame(self, topic: str, ids: Sequence[int], change: EncodedChange) -> bytes | None:
        """The spliced ``postgres_changes`` text frame for this connection's channel of ``topic``.

        For a fan-out path that writes frames itself; :meth:`send_postgres_changes` queues instead.

        Args:
            topic: the channel topic.
            ids: this channel's binding ids that match the change (non-empty).
            change: the change, encoded once for all subscribers.

        Returns:
            The frame bytes (send as a text frame), or ``None`` when the channel is not joined.
        """
        channel = self._joined(topic, None)
        if channel is None:
            return None
        return change.frame(channel.changes_prefix, ids, self.vsn)

    def send_postgres_changes(
        self,
        topic: str,
        ids: Sequence[int],
        change: EncodedChange,
        *,
        join_ref: str | None = None,
    ) -> bool:
        """Queue a ``postgres_changes`` frame for this connection's channel of ``topic``.

        Args:
            topic: the channel topic.
            ids: this channel's binding ids that match the change (non-empty).
            change: the change, encoded once for all subscribers.
            join_ref: only if the channel is still this join.

        Returns:
            ``False`` when the channel is not joined (or not that join).
        """
        channel = self._joined(topic, join_ref)
        if channel is None:
            return False
        data = change.frame(channel.changes_prefix, ids, self.vsn)
        self._out.append(Frame(Opcode.TEXT, data))
        return True

    def push(self, topic: str, event: str, payload: Any, *, join_ref: str | None = None) -> bool:
        """Push any event with the channel's current join ref and ``ref: null``.

        Args:
            topic: the channel topic.
            event: the event name.
            payload: a JSON-serializable payload (clients expect an object).
            join_ref: only if the channel is still this join.

        Returns:
            ``False`` when the channel is not joined (or not that join).
        """
        channel = self._joined(topic, join_ref)
        if channel is None:
            return False
        self._out.push(channel, event, payload)
        return True

    # ------------------------------------------------------------------------------- internals

    def _joined(self, topic: str, join_ref: str | None) -> Channel | None:
        channel = self._channels.get(topic)
        if channel is None or channel.state is not ChannelState.JOINED:
            return None
        if join_ref is not None and channel.join_ref != join_ref:
            return None
        return channel

    def _close(self, code: int, reason: str) -> None:
        self._closing = True
        self._events.append(CloseRequested(code, reason))

    def _violation(self, code: str, message: str, topic: str | None = None, event: str | None = None) -> None:
        self._events.append(ProtocolViolation(code, message, topic, event))

    def _ignored(self, topic: str, event: str, reason: str) -> None:
        self._events.append(MessageIgnored(topic, event, reason))

    def _frame_error(self, exc: FrameError) -> None:
        self._violation(exc.code, str(exc))
        if isinstance(exc, FrameTooLargeError):
            self._close(CLOSE_MESSAGE_TOO_BIG, "frame too large")

    def _handle(self, message: Message, now: float) -> None:
        topic, event = message.topic, message.event
        if topic == _HEARTBEAT_TOPIC:
            if event == "heartbeat":
                self._out.reply(None, message.ref, topic, None)
            else:
                self._out.reply(None, message.ref, topic, None, error=_UNMATCHED)
                self._ignored(topic, event, "only heartbeats go to the phoenix topic")
            return
        if event == "phx_join":
            self._join(message, now)
            return
        channel = self._member(topic, message.join_ref, message.ref, event)
        if channel is None:
            return
        if event == "phx_leave":
            self._leave(channel, message)
        elif event == "access_token":
            self._access_token(channel, message)
        elif channel.state is not ChannelState.JOINED:
            self._ignored(topic, event, "channel is still joining")
        elif event == "broadcast":
            self._json_broadcast(channel, message)
        elif event == "presence":
            self._presence(channel, message)
        else:
            self._ignored(topic, event, "unknown event")

    def _member(self, topic: str, join_ref: str | None, ref: str | None, event: str) -> Channel | None:
        channel = self._channels.get(topic)
        if channel is None:
            if event == "phx_leave":
                # Phoenix answers a leave of an unknown topic ok: the client may have raced a close.
                self._out.reply(join_ref, ref, topic, None)
            else:
                self._out.reply(None, ref, topic, None, error=_UNMATCHED)
                self._ignored(topic, event, "topic is not joined")
            return None
        if join_ref is not None and join_ref != channel.join_ref:
            self._ignored(topic, event, f"stale join_ref {join_ref!r} (current {channel.join_ref!r})")
            return None
        return channel

    def _join(self, message: Message, now: float) -> None:
        topic = message.topic
        if not topic.startswith(_TOPIC_PREFIX):
            self._out.reply(None, message.ref, topic, None, error=_UNMATCHED)
            self._ignored(topic, "phx_join", "topics must start with realtime:")
            return
        join_ref = message.join_ref if message.join_ref is not None else message.ref
        if join_ref is None:
            self._violation("MalformedFrame", "phx_join needs a ref", topic, "phx_join")
            return
        old = self._channels.pop(topic, None)
        if old is not None:
            self._out.close(old, "phx_close", {})
            self._events.append(LeaveRequested(topic, old.join_ref, None, "duplicate_join"))
        if topic == _TOPIC_PREFIX:
            self._out.reply(message.join_ref, message.ref, topic, None, error=_TOPIC_REQUIRED)
            return
        if not self._joins.allow(now):
            self._out.reply(message.join_ref, message.ref, topic, None, error=_TOO_MANY_JOINS)
            self._close(CLOSE_POLICY_VIOLATION, "too many joins per second")
            return
        if len(self._channels) >= self.limits.max_channels:
            self._out.reply(message.join_ref, message.ref, topic, None, error=_TOO_MANY_CHANNELS)
            return
        try:
            payload = parse_join_payload(message.payload)
        except InvalidJoinPayloadError as exc:
            self._out.reply(message.join_ref, message.ref, topic, None, error=exc.reason)
            self._violation(exc.code, str(exc), topic, "phx_join")
            return
        token = payload.access_token if payload.access_token is not None else self.default_token
        presence = payload.config.presence
        self._channels[topic] = Channel(
            topic=topic,
            join_ref=join_ref,
            config=payload.config,
            access_token=token,
            presence_key=presence.key or self._id_factory(),
            request_join_ref=message.join_ref,
            request_ref=message.ref,
        )
        self._events.append(JoinRequested(topic, join_ref, message.ref, payload.config, token))

    def _leave(self, channel: Channel, message: Message) -> None:
        self._out.reply(message.join_ref, message.ref, channel.topic, None)
        self._out.close(channel, "phx_close", {})
        del self._channels[channel.topic]
        self._events.append(LeaveRequested(channel.topic, channel.join_ref, message.ref, "phx_leave"))

    def _access_token(self, channel: Channel, message: Message) -> None:
        payload = message.payload
        if not isinstance(payload, dict) or "access_token" not in payload:
            self._ignored(channel.topic, message.event, "no access_token in the payload")
            return
        token = payload["access_token"]
        if token is None or token == channel.access_token:
            return
        if not isinstance(token, str):
            self._violation(
                "InvalidAccessToken", "access_token must be a string", channel.topic, message.event
            )
            return
        if token.startswith("sb_"):
            return  # an API key, not a user token: keep the current claims (Supabase does)
        channel.access_token = token
        self._events.append(AccessTokenReceived(channel.topic, channel.join_ref, message.ref, token))

    def _emit_broadcast(self, channel: Channel, ref: str | None, broadcast: Broadcast) -> None:
        config = channel.config.broadcast
        self._events.append(
            BroadcastReceived(
                channel.topic,
                channel.join_ref,
                ref,
                broadcast,
                ack_needed=config.ack and ref is not None,
                self_wanted=config.self_broadcast,
            )
        )

    def _json_broadcast(self, channel: Channel, message: Message) -> None:
        payload = message.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
            self._violation(
                "InvalidBroadcast",
                "broadcast payload must be an object with a string `event`",
                channel.topic,
                message.event,
            )
            return
        self._emit_broadcast(channel, message.ref, Broadcast.from_json_push(payload))

    def _binary_broadcast(self, push: UserBroadcastPush) -> None:
        channel = self._member(push.topic, push.join_ref, push.ref, "broadcast")
        if channel is None:
            return
        if channel.state is not ChannelState.JOINED:
            self._ignored(push.topic, "broadcast", "channel is still joining")
            return
        self._emit_broadcast(channel, push.ref, Broadcast.from_binary_push(push))

    def _presence(self, channel: Channel, message: Message) -> None:
        payload = message.payload
        topic, ref = channel.topic, message.ref
        if not isinstance(payload, dict) or "event" not in payload:
            self._out.reply(message.join_ref, ref, topic, None)  # Supabase: a no-op, answered ok
            return
        kind = payload["event"]
        kind = kind.lower() if isinstance(kind, str) else None
        if kind == "track":
            meta = payload.get("payload", {})
            if not isinstance(meta, dict):
                self._out.reply(message.join_ref, ref, topic, None, error=_TRACK_NOT_A_MAP)
                return
            self._events.append(PresenceTracked(topic, channel.join_ref, ref, channel.presence_key, meta))
        elif kind == "untrack":
            self._events.append(PresenceUntracked(topic, channel.join_ref, ref, channel.presence_key))
        else:
            self._out.message(message.join_ref, ref, topic, "phx_reply", {"status": "error", "response": {}})
            self._ignored(topic, message.event, f"unknown presence event {payload['event']!r}")
