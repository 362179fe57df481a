"""What a :class:`~meshlogs.protocol.connection.RealtimeConnection` tells the server.

The connection answers everything it can decide alone (heartbeats, leaves, limits, malformed
payloads) and surfaces the rest as these events, in arrival order, from ``events_received()``.
Channel events derive from :class:`ChannelRequest` (topic, join ref, client ref). Joins are answered
with ``accept_join``/``reject_join``; broadcast and presence pushes with ``connection.reply(event)``
once the server has decided (authorization happens there); leaves are already answered.

Every channel event carries the ``join_ref`` of the join it belongs to. Server state for a channel
should be keyed by ``(topic, join_ref)``: a client may leave and rejoin the same topic while the
server is still working on the previous join, and the connection ignores server calls that name a
stale ``join_ref``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from meshlogs.protocol.broadcast import Broadcast
from meshlogs.protocol.payloads import JoinConfig

__all__ = [
    "AccessTokenReceived",
    "BroadcastReceived",
    "ChannelRequest",
    "CloseRequested",
    "Event",
    "JoinRequested",
    "LeaveRequested",
    "MessageIgnored",
    "PresenceTracked",
    "PresenceUntracked",
    "ProtocolViolation",
    "channel_name",
]

_PREFIX = "realtime:"


def channel_name(topic: str) -> str:
    """The channel name Supabase reports in ``system`` messages: the topic without ``realtime:``."""
    return topic[len(_PREFIX) :] if topic.startswith(_PREFIX) else topic


@dataclass(frozen=True, slots=True)
class ChannelRequest:
    """A client message on a channel.

    Attributes:
        topic: the channel topic, ``realtime:<name>``.
        join_ref: the join this message belongs to (the channel's current join ref).
        ref: the message's ref; ``None`` when the client expects no reply.
    """

    topic: str
    join_ref: str
    ref: str | None


@dataclass(frozen=True, slots=True)
class JoinRequested(ChannelRequest):
    """A valid ``phx_join`` passed the limits; answer with ``accept_join`` or ``reject_join``.

    Attributes:
        config: the validated join configuration (bindings carry their reply ids).
        access_token: the token to authorize with: the join's ``access_token``, else the
            connection's connect-time token (``None`` if neither exists).
    """

    config: JoinConfig
    access_token: str | None

    @property
    def channel_name(self) -> str:
        """The topic without ``realtime:``."""
        return channel_name(self.topic)


@dataclass(frozen=True, slots=True)
class LeaveRequested(ChannelRequest):
    """A channel ended on the client's initiative; drop the server state of ``(topic, join_ref)``.

    The connection already replied and sent ``phx_close``.

    Attributes:
        cause: ``"phx_leave"`` for an explicit leave, ``"duplicate_join"`` when a new join of the
            same topic replaced this one (then ``ref`` is ``None``).
    """

    cause: Literal["phx_leave", "duplicate_join"]


@dataclass(frozen=True, slots=True)
class BroadcastReceived(ChannelRequest):
    """A client broadcast on a joined channel; fan it out to the topic's subscribers.

    Attributes:
        broadcast: the message, ready to be framed per subscriber.
        ack_needed: the channel joined with ``broadcast.ack`` and the push has a ref: call
            ``connection.reply(event)`` once accepted (Supabase sends no reply when a private
            channel's write policy denies it).
        self_wanted: the channel joined with ``broadcast.self``: deliver it to the sender's own
            channel too.
    """

    broadcast: Broadcast
    ack_needed: bool
    self_wanted: bool


@dataclass(frozen=True, slots=True)
class PresenceTracked(ChannelRequest):
    """A ``presence`` ``track`` push; track ``meta`` under ``key``, then ``reply`` ok or error.

    Attributes:
        key: the channel's presence key (from the join, or generated at accept).
        meta: the tracked payload (a JSON object).
    """

    key: str
    meta: dict[str, object]


@dataclass(frozen=True, slots=True)
class PresenceUntracked(ChannelRequest):
    """A ``presence`` ``untrack`` push; untrack ``key``, then ``reply``.

    Attributes:
        key: the channel's presence key.
    """

    key: str


@dataclass(frozen=True, slots=True)
class AccessTokenReceived(ChannelRequest):
    """A new token for a channel (``access_token`` push). Never replied to.

    Verify it; on failure ``close_channel(topic, reason)``; on success re-authorize the channel and
    send ``Subscribed to PostgreSQL`` again when it has postgres bindings. Tokens equal to the
    channel's current one, ``null`` and ``sb_...`` API keys are filtered out before this event.

    Attributes:
        token: the new JWT.
    """

    token: str


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The client sent something malformed; nothing changed. Log it.

    Attributes:
        code: a stable error code (``MalformedFrame``, ``FrameTooLarge``, ``InvalidJoinPayload``,
            ``InvalidBroadcast``, ...).
        message: what was wrong, safe to log and to show the client.
        topic: the topic, when the frame could be decoded that far.
        event: the event, when known.
    """

    code: str
    message: str
    topic: str | None = None
    event: str | None = None


@dataclass(frozen=True, slots=True)
class MessageIgnored:
    """A well-formed message the connection dropped on purpose (unknown event, stale join ref,
    push to a channel that is still joining). Log it at debug/info level.

    Attributes:
        topic: the message topic.
        event: the message event.
        reason: why it was ignored.
    """

    topic: str
    event: str
    reason: str


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """Close the WebSocket after sending the pending frames; the connection ignores further input.

    Attributes:
        code: the WebSocket close code (1008 policy violation, 1009 message too big).
        reason: a short human-readable reason.
    """

    code: int
    reason: str


Event: TypeAlias = (
    JoinRequested
    | LeaveRequested
    | BroadcastReceived
    | PresenceTracked
    | PresenceUntracked
    | AccessTokenReceived
    | ProtocolViolation
    | MessageIgnored
    | CloseRequested
)
"""Everything ``events_received()`` may return."""
