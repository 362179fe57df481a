"""The sans-I/O core of the Supabase Realtime protocol: bytes and times in, events and frames out.

Nothing in this package does I/O, reads a clock or imports asyncio, sockets or a database driver
(``tests/protocol/test_purity.py`` checks it). The server feeds a :class:`RealtimeConnection` per
WebSocket and wires its events to authorization, change capture and fan-out.

Modules:

* :mod:`~meshlogs.protocol.phoenix` — frame codecs (V1 objects, V2 arrays, binary kinds 3 and 4).
* :mod:`~meshlogs.protocol.payloads` — ``phx_join`` payload validation, binding ids.
* :mod:`~meshlogs.protocol.filters`, :mod:`~meshlogs.protocol.pgtypes` — typed filters.
* :mod:`~meshlogs.protocol.connection`, :mod:`~meshlogs.protocol.channel`,
  :mod:`~meshlogs.protocol.events`, :mod:`~meshlogs.protocol.limits` — the connection state machine.
* :mod:`~meshlogs.protocol.broadcast`, :mod:`~meshlogs.protocol.changes` — encode-once frames for
  fan-out.
"""

from __future__ import annotations

from meshlogs.protocol.broadcast import Broadcast
from meshlogs.protocol.changes import Column, EncodedChange, encode_change, frame_prefix
from meshlogs.protocol.channel import Channel, ChannelState
from meshlogs.protocol.connection import SUBSCRIBED_TO_POSTGRES, RealtimeConnection
from meshlogs.protocol.events import (
    AccessTokenReceived,
    BroadcastReceived,
    ChannelRequest,
    CloseRequested,
    Event,
    JoinRequested,
    LeaveRequested,
    MessageIgnored,
    PresenceTracked,
    PresenceUntracked,
    ProtocolViolation,
)
from meshlogs.protocol.filters import Filter, FilterOp, index_value, parse_filter
from meshlogs.protocol.limits import Limits
from meshlogs.protocol.payloads import JoinConfig, PostgresChangeBinding, parse_join_payload
from meshlogs.protocol.phoenix import Frame, Message, Opcode, Vsn, negotiate_vsn

__all__ = [
    "SUBSCRIBED_TO_POSTGRES",
    "AccessTokenReceived",
    "Broadcast",
    "BroadcastReceived",
    "Channel",
    "ChannelRequest",
    "ChannelState",
    "CloseRequested",
    "Column",
    "EncodedChange",
    "Event",
    "Filter",
    "FilterOp",
    "Frame",
    "JoinConfig",
    "JoinRequested",
    "LeaveRequested",
    "Limits",
    "Message",
    "MessageIgnored",
    "Opcode",
    "PostgresChangeBinding",
    "PresenceTracked",
    "PresenceUntracked",
    "ProtocolViolation",
    "RealtimeConnection",
    "Vsn",
    "encode_change",
    "frame_prefix",
    "index_value",
    "negotiate_vsn",
    "parse_filter",
    "parse_join_payload",
]
