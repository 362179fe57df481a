"""Server-to-client WebSocket frame bytes (RFC 6455 §5.2), so a connection's frames can leave in one write.

The kernel's cost per socket ``write()`` (about 10 µs on loopback) is several times Python's cost per
frame (``FANOUT.md`` in the design library), so the gateway joins every frame a connection has pending
in one event-loop iteration into a single write instead of one write per frame. That needs the frames
as bytes: a server's frames are never masked, and meshlogs turns permessage-deflate off, so a frame is
just a 2-, 4- or 10-byte header and the payload.

Pure code: no sockets, no asyncio.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from meshlogs.protocol.phoenix import Frame

__all__ = ["encode_frames", "frame_header"]

_LEN1 = struct.Struct("!BB").pack
_LEN2 = struct.Struct("!BBH").pack
_LEN3 = struct.Struct("!BBQ").pack
_FIN = 0x80


def frame_header(opcode: int, length: int) -> bytes:
    """The header of one unmasked, final, uncompressed frame of ``length`` payload bytes."""
    if not 0 < opcode < 16:
        raise ValueError(f"bad WebSocket opcode {opcode}")
    if length < 0:
        raise ValueError("negative frame length")
    if length < 126:
        return _LEN1(_FIN | opcode, length)
    if length < 65536:
        return _LEN2(_FIN | opcode, 126, length)
    return _LEN3(_FIN | opcode, 127, length)


def encode_frames(frames: Iterable[Frame]) -> bytes:
    """Concatenate ``frames`` as the bytes a server sends for them, in order."""
    parts: list[bytes] = []
    for frame in frames:
        parts.append(frame_header(frame.opcode, len(frame.data)))
        parts.append(frame.data)
    return b"".join(parts)
