"""Coalesced server frames, parsed back by an independent WebSocket implementation (websockets' sans-I/O
client protocol), at every length boundary of the header encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Opcode as WsOpcode
from websockets.protocol import Protocol, Side, State

from meshlogs.protocol.phoenix import Frame, Opcode
from meshlogs.protocol.wsframes import encode_frames, frame_header


def parse(data: bytes) -> list[tuple[WsOpcode, bytes]]:
    client = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
    client.receive_data(data)
    frames = [(f.opcode, bytes(f.data)) for f in client.events_received()]
    assert client.data_to_send() == []  # nothing to complain about (a protocol error would close)
    return frames


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_every_header_length_boundary(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    text = ("é" * size).encode()[:size].ljust(size, b"x") if size % 2 == 0 else b"x" * size
    wire = encode_frames([Frame(Opcode.BINARY, payload), Frame(Opcode.TEXT, text)])
    assert parse(wire) == [(WsOpcode.BINARY, payload), (WsOpcode.TEXT, text)]


@given(
    st.lists(st.tuples(st.sampled_from([Opcode.TEXT, Opcode.BINARY]), st.binary(max_size=300)), max_size=20)
)
def test_many_frames_in_one_write_come_out_in_order(frames: list[tuple[Opcode, bytes]]) -> None:
    wire = encode_frames([Frame(op, data) for op, data in frames])
    expected = [(WsOpcode.TEXT if op is Opcode.TEXT else WsOpcode.BINARY, data) for op, data in frames]
    assert parse(wire) == expected


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="opcode"):
        frame_header(0, 1)
    with pytest.raises(ValueError, match="negative"):
        frame_header(1, -1)
