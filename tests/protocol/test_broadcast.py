"""Broadcast framing per subscriber: JSON text, binary kind 4, fallbacks."""

from __future__ import annotations

import orjson
import pytest

from meshlogs.protocol.broadcast import Broadcast
from meshlogs.protocol.phoenix import (
    Opcode,
    PayloadEncoding,
    UserBroadcastPush,
    Vsn,
    decode_user_broadcast,
)

TOPIC = "realtime:room"


def test_server_json_broadcast_with_meta() -> None:
    broadcast = Broadcast.create("msg", {"a": 1}, meta={"id": "abc"})
    v2 = broadcast.frame(Vsn.V2, TOPIC, "3")
    v1 = broadcast.frame(Vsn.V1, TOPIC, "3")
    assert v2 is not None and v1 is not None
    assert v2.opcode is Opcode.TEXT and v1.opcode is Opcode.TEXT
    payload = {"type": "broadcast", "event": "msg", "payload": {"a": 1}, "meta": {"id": "abc"}}
    assert orjson.loads(v2.data) == ["3", None, TOPIC, "broadcast", payload]
    assert orjson.loads(v1.data) == {"topic": TOPIC, "event": "broadcast", "payload": payload, "ref": None}


def test_binary_origin_goes_binary_to_v2_only_when_header_fits() -> None:
    push = UserBroadcastPush("1", "2", TOPIC, "ev", {"persist": True}, PayloadEncoding.JSON, b"[1,2]")
    broadcast = Broadcast.from_binary_push(push)
    frame = broadcast.frame(Vsn.V2, TOPIC, "1")
    assert frame is not None and frame.opcode is Opcode.BINARY
    decoded = decode_user_broadcast(frame.data, max_size=1000)
    assert decoded.metadata is None  # the sender's metadata is not forwarded (as Supabase)
    assert decoded.payload == b"[1,2]"
    # A topic longer than 255 bytes cannot be framed in binary: fall back to JSON text.
    long_topic = "realtime:" + "x" * 300
    text = broadcast.frame(Vsn.V2, long_topic, "1")
    assert text is not None and text.opcode is Opcode.TEXT
    assert orjson.loads(text.data)[4] == {"type": "broadcast", "event": "ev", "payload": [1, 2]}


def test_raw_bytes_reach_v2_only() -> None:
    broadcast = Broadcast.create_binary("blob", b"\x00\xff", meta={"id": "m"})
    frame = broadcast.frame(Vsn.V2, TOPIC, None)
    assert frame is not None
    decoded = decode_user_broadcast(frame.data, max_size=1000)
    assert (decoded.encoding, decoded.payload, decoded.metadata) == (
        PayloadEncoding.BINARY,
        b"\x00\xff",
        {"id": "m"},
    )
    assert broadcast.frame(Vsn.V1, TOPIC, None) is None
    assert broadcast.frame(Vsn.V2, "realtime:" + "x" * 300, None) is None


def test_json_push_needs_string_event() -> None:
    with pytest.raises(ValueError):
        Broadcast.from_json_push({"payload": {}})
    with pytest.raises(ValueError):
        Broadcast.from_json_push({"event": 1})
