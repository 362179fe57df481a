"""Phoenix channel frames, exactly as the Supabase Realtime clients send and expect them.

A Phoenix message is five fields: ``join_ref, ref, topic, event, payload`` (``phoenix/socket/message.ex``).
The socket's serializer version (``vsn`` query parameter) decides how they travel:

* **vsn 1.0.0** — one JSON object per text frame. Client → server ``{"topic", "event", "payload",
  "ref", "join_ref"?}``; server → client exactly ``{"topic", "event", "payload", "ref"}``: no
  ``join_ref``, and ``ref`` always present (``null`` for pushes) because the Python client rejects
  frames without it.
* **vsn 2.0.0** — a JSON array ``[join_ref, ref, topic, event, payload]`` both ways, plus binary
  frames for user broadcasts (``realtime_web/socket/v2_serializer.ex``). Every length below is one
  unsigned byte, so every header field is at most 255 bytes of UTF-8::

      kind 3, user broadcast push (client → server; realtime-js >= 2.91 sends every broadcast so)
        u8 3 | u8 join_ref_len | u8 ref_len | u8 topic_len | u8 event_len | u8 meta_len | u8 encoding
        | join_ref | ref | topic | user event | metadata (JSON object or empty) | payload bytes
      kind 4, user broadcast (server → client; the only binary kind realtime-js can decode)
        u8 4 | u8 topic_len | u8 event_len | u8 meta_len | u8 encoding
        | topic | user event | metadata (JSON object or empty) | payload bytes

  ``encoding`` is 1 when the payload is JSON text and 0 when it is raw bytes. Kinds 0–2 (Phoenix's own
  binary push/reply/broadcast) are never produced: realtime-js crashes on them.

Refs are strings chosen by the client and are echoed verbatim; a number where a ref belongs is a
malformed frame rather than something to coerce, because coercing would change what the client
matches replies against.

Every decoder takes a ``max_size`` and raises only :class:`~meshlogs.errors.FrameError` subclasses
(:class:`~meshlogs.errors.MalformedFrameError`, :class:`~meshlogs.errors.FrameTooLargeError`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from meshlogs.errors import FrameTooLargeError, MalformedFrameError, UnsupportedVersionError

__all__ = [
    "KIND_USER_BROADCAST",
    "KIND_USER_BROADCAST_PUSH",
    "MAX_HEADER_FIELD_BYTES",
    "Frame",
    "Message",
    "Opcode",
    "PayloadEncoding",
    "UserBroadcast",
    "UserBroadcastPush",
    "V1",
    "V2",
    "Vsn",
    "decode_binary",
    "decode_text",
    "decode_user_broadcast",
    "encode_text",
    "encode_user_broadcast",
    "encode_user_broadcast_push",
    "negotiate_vsn",
]

KIND_USER_BROADCAST_PUSH = 3
"""Binary frame kind of a user broadcast sent by a client (decoded by the server)."""

KIND_USER_BROADCAST = 4
"""Binary frame kind of a user broadcast sent to a client (the only kind realtime-js decodes)."""

MAX_HEADER_FIELD_BYTES = 255
"""Binary frame header fields carry one-byte lengths."""

_EXCERPT = 80


class Vsn(enum.Enum):
    """Serializer version of one socket, negotiated once from the ``vsn`` query parameter."""

    V1 = "1.0.0"
    V2 = "2.0.0"


# Module-level aliases, as websockets does for its enums; also cheaper than Vsn.V2 on hot paths.
V1 = Vsn.V1
V2 = Vsn.V2

_VSN_RE = re.compile(r"(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)")


def negotiate_vsn(requested: str | None) -> Vsn:
    """Pick the serializer for a new socket from its ``vsn`` query parameter.

    Phoenix matches ``~> 1.0.0`` and ``~> 2.0.0``, so any ``1.0.x`` or ``2.0.x`` is accepted. A
    missing parameter means 1.0.0: Python ``realtime`` up to 2.30 sends none and speaks V1.

    Args:
        requested: the raw query parameter value, or ``None`` when absent.

    Returns:
        The serializer version to speak on this socket.

    Raises:
        UnsupportedVersionError: the value is not a version we speak; the server should refuse the
            upgrade (Phoenix answers 403 with this message).
    """
    if requested is None:
        return Vsn.V1
    match = _VSN_RE.fullmatch(requested)
    if match is not None and match["minor"] == "0":
        if match["major"] == "1":
            return Vsn.V1
        if match["major"] == "2":
            return Vsn.V2
    raise UnsupportedVersionError(
        f"the client's requested serializer version {_excerpt(requested)} does not match the "
        "server's versions (1.0.0, 2.0.0)"
    )


class Opcode(enum.IntEnum):
    """WebSocket data opcodes; the values equal aiohttp's ``WSMsgType.TEXT`` / ``BINARY``."""

    TEXT = 1
    BINARY = 2


class Frame(NamedTuple):
    """One outgoing WebSocket message.

    Text frames are kept as UTF-8 bytes, not ``str``: spliced ``postgres_changes`` frames are built
    as bytes and must not pay a decode/encode per subscriber (aiohttp's ``send_frame`` takes bytes).
    """

    opcode: Opcode
    data: bytes


@dataclass(frozen=True, slots=True)
class Message:
    """One Phoenix message, whatever the serializer that carried it.

    Attributes:
        join_ref: the ref of the ``phx_join`` this message belongs to; ``None`` when absent.
        ref: the client's ref for this message (replies echo it); ``None`` for server pushes.
        topic: ``"phoenix"`` for heartbeats, ``"realtime:<name>"`` for channels.
        event: ``phx_join``, ``heartbeat``, ``broadcast``, ...
        payload: any JSON value (a dict for every event the official clients send).
    """

    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: Any


class PayloadEncoding(enum.IntEnum):
    """How the payload bytes of a binary user broadcast are encoded."""

    BINARY = 0
    JSON = 1


@dataclass(frozen=True, slots=True)
class UserBroadcastPush:
    """A kind-3 binary frame: a broadcast a client sends (``channel.send({type: 'broadcast', ...})``).

    Attributes:
        join_ref: the channel's join ref, ``None`` when the client sent an empty one.
        ref: the push's ref (replies echo it), ``None`` when empty.
        topic: the channel topic, ``realtime:<name>``.
        user_event: the user's event name (``send({event})``).
        metadata: the metadata object; empty when the client sent none.
        encoding: whether :attr:`payload` is JSON text or raw bytes.
        payload: the user's payload bytes. When JSON, it was checked to parse.
    """

    join_ref: str | None
    ref: str | None
    topic: str
    user_event: str
    metadata: dict[str, Any]
    encoding: PayloadEncoding
    payload: bytes


@dataclass(frozen=True, slots=True)
class UserBroadcast:
    """A kind-4 binary frame: a broadcast delivered to a V2 client.

    Attributes:
        topic: the channel topic.
        user_event: the user's event name.
        metadata: the ``meta`` object (``{"id": ...}`` for database broadcasts) or ``None``.
        encoding: whether :attr:`payload` is JSON text or raw bytes.
        payload: the user's payload bytes.
    """

    topic: str
    user_event: str
    metadata: dict[str, Any] | None
    encoding: PayloadEncoding
    payload: bytes


def _excerpt(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def _check_size(data: str | bytes, max_size: int) -> None:
    # Measured in bytes on the wire; a str is counted by its UTF-8 length, computed only when the
    # character count alone cannot decide (a character is 1 to 4 bytes).
    size = len(data)
    if isinstance(data, str) and size <= max_size < size * 4:
        size = len(data.encode("utf-8", "surrogatepass"))
    if size > max_size:
        raise FrameTooLargeError(f"frame of {size} bytes exceeds the limit of {max_size} bytes")


def _ref(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedFrameError(f"{name} must be a string or null, got {_excerpt(value)}")


def _name(value: object, name: str) -> str:
    if isinstance(value, str):
        return value
    raise MalformedFrameError(f"{name} must be a string, got {_excerpt(value)}")


def decode_text(data: str | bytes, vsn: Vsn, *, max_size: int) -> Message:
    """Decode one text frame into a :class:`Message`.

    V1 needs an object with string ``topic`` and ``event`` and a ``payload`` key; ``ref`` and
    ``join_ref`` may be missing (JS heartbeats omit ``join_ref``). V2 needs an array of at least five
    elements (extra elements are ignored, as the Supabase server does).

    Args:
        data: the frame as received (``str`` or UTF-8 ``bytes``).
        vsn: the socket's serializer version.
        max_size: largest accepted frame, in bytes.

    Returns:
        The decoded message.

    Raises:
        FrameTooLargeError: the frame is larger than ``max_size``; it was not parsed.
        MalformedFrameError: not JSON, not UTF-8, or not the shape ``vsn`` requires.
    """
    _check_size(data, max_size)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # orjson's message names the position, never the content.
        raise MalformedFrameError(f"frame is not valid JSON: {exc}") from None
    if vsn is V2:
        if not isinstance(value, list) or len(value) < 5:
            raise MalformedFrameError(
                "vsn 2.0.0 frames must be a JSON array [join_ref, ref, topic, event, payload]"
            )
        join_ref, ref, topic, event, payload = value[:5]
    else:
        if not isinstance(value, dict):
            raise MalformedFrameError("vsn 1.0.0 frames must be a JSON object")
        if "payload" not in value:
            raise MalformedFrameError("vsn 1.0.0 frame has no payload key")
        topic = value.get("topic")
        event = value.get("event")
        payload = value["payload"]
        ref = value.get("ref")
        join_ref = value.get("join_ref")
    return Message(
        join_ref=_ref(join_ref, "join_ref"),
        ref=_ref(ref, "ref"),
        topic=_name(topic, "topic"),
        event=_name(event, "event"),
        payload=payload,
    )


def encode_text(message: Message, vsn: Vsn) -> bytes:
    """Encode a message as one text frame (UTF-8 bytes).

    V1 drops ``join_ref`` (Phoenix's V1 serializer never sends it) and always writes ``ref``.

    Args:
        message: what to send; its payload must be JSON-serializable by orjson.
        vsn: the socket's serializer version.

    Returns:
        The frame's bytes.
    """
    if vsn is V2:
        return orjson.dumps([message.join_ref, message.ref, message.topic, message.event, message.payload])
    return orjson.dumps(
        {
            "topic": message.topic,
            "event": message.event,
            "payload": message.payload,
            "ref": message.ref,
        }
    )


class _Reader:
    """Cursor over a binary frame that turns every short read into a MalformedFrameError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, size: int, what: str) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise MalformedFrameError(f"binary frame ends inside its {what}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def text(self, size: int, what: str) -> str:
        try:
            return self.take(size, what).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedFrameError(f"binary frame {what} is not valid UTF-8") from None

    def rest(self) -> bytes:
        return self.data[self.pos :]


def _encoding(value: int) -> PayloadEncoding:
    if value == PayloadEncoding.JSON:
        return PayloadEncoding.JSON
    if value == PayloadEncoding.BINARY:
        return PayloadEncoding.BINARY
    raise MalformedFrameError(f"binary frame payload encoding must be 0 or 1, got {value}")


def _metadata(raw: bytes) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedFrameError("binary frame metadata is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedFrameError("binary frame metadata must be a JSON object")
    return value


def _check_json_payload(encoding: PayloadEncoding, payload: bytes) -> None:
    # A JSON payload is spliced verbatim into text frames for V1 subscribers, so it must parse.
    if encoding is PayloadEncoding.JSON:
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise MalformedFrameError("binary frame payload is marked JSON but does not parse") from None


def _binary_kind(data: bytes, max_size: int) -> int:
    _check_size(data, max_size)
    if not data:
        raise MalformedFrameError("empty binary frame")
    return data[0]


def decode_binary(data: bytes, *, max_size: int) -> UserBroadcastPush:
    """Decode a V2 binary frame sent by a client; only kind 3 (user broadcast push) is accepted.

    Args:
        data: the frame's bytes.
        max_size: largest accepted frame, in bytes.

    Returns:
        The push. Empty ``join_ref``/``ref`` fields (realtime-js writes ``''`` for missing refs)
        become ``None``.

    Raises:
        FrameTooLargeError: the frame is larger than ``max_size``.
        MalformedFrameError: another kind, a truncated header, bad UTF-8, metadata that is not a
            JSON object, an unknown encoding, or a JSON payload that does not parse.
    """
    kind = _binary_kind(data, max_size)
    if kind != KIND_USER_BROADCAST_PUSH:
        raise MalformedFrameError(f"binary frame kind {kind} is not accepted from clients (only kind 3)")
    if len(data) < 7:
        raise MalformedFrameError("binary frame ends inside its header")
    join_ref_len, ref_len, topic_len, event_len, meta_len, encoding_byte = data[1:7]
    encoding = _encoding(encoding_byte)
    reader = _Reader(data, 7)
    join_ref = reader.text(join_ref_len, "join_ref")
    ref = reader.text(ref_len, "ref")
    topic = reader.text(topic_len, "topic")
    user_event = reader.text(event_len, "event")
    metadata = _metadata(reader.take(meta_len, "metadata"))
    payload = reader.rest()
    _check_json_payload(encoding, payload)
    return UserBroadcastPush(
        join_ref=join_ref or None,
        ref=ref or None,
        topic=topic,
        user_event=user_event,
        metadata=metadata or {},
        encoding=encoding,
        payload=payload,
    )


def _field(value: str | bytes, what: str) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if len(raw) > MAX_HEADER_FIELD_BYTES:
        raise ValueError(f"{what} is {len(raw)} bytes; binary frames allow at most 255")
    return raw


def encode_user_broadcast(
    topic: str,
    user_event: str,
    payload: bytes,
    *,
    encoding: PayloadEncoding,
    metadata: bytes | None = None,
) -> bytes:
    """Encode a kind-4 frame, the binary broadcast realtime-js decodes.

    Args:
        topic: the channel topic.
        user_event: the user's event name.
        payload: the user's payload bytes (JSON text when ``encoding`` is JSON).
        encoding: how ``payload`` is encoded.
        metadata: an already JSON-encoded ``meta`` object, or ``None``.

    Returns:
        The frame's bytes.

    Raises:
        ValueError: ``topic``, ``user_event`` or ``metadata`` is longer than 255 bytes; send a JSON
            text broadcast instead.
    """
    topic_raw = _field(topic, "topic")
    event_raw = _field(user_event, "user event")
    meta_raw = _field(metadata or b"", "metadata")
    header = bytes((KIND_USER_BROADCAST, len(topic_raw), len(event_raw), len(meta_raw), encoding))
    return b"".join((header, topic_raw, event_raw, meta_raw, payload))


def encode_user_broadcast_push(push: UserBroadcastPush) -> bytes:
    """Encode a kind-3 frame as realtime-js does; for Python clients and tests.

    Args:
        push: the broadcast; ``None`` refs are written as empty fields.

    Returns:
        The frame's bytes.

    Raises:
        ValueError: a header field is longer than 255 bytes.
    """
    join_ref = _field(push.join_ref or "", "join_ref")
    ref = _field(push.ref or "", "ref")
    topic = _field(push.topic, "topic")
    event = _field(push.user_event, "user event")
    meta = _field(orjson.dumps(push.metadata) if push.metadata else b"", "metadata")
    header = bytes(
        (
            KIND_USER_BROADCAST_PUSH,
            len(join_ref),
            len(ref),
            len(topic),
            len(event),
            len(meta),
            push.encoding,
        )
    )
    return b"".join((header, join_ref, ref, topic, event, meta, push.payload))


def decode_user_broadcast(data: bytes, *, max_size: int) -> UserBroadcast:
    """Decode a kind-4 frame as realtime-js does; for Python clients and tests.

    Args:
        data: the frame's bytes.
        max_size: largest accepted frame, in bytes.

    Returns:
        The broadcast.

    Raises:
        FrameTooLargeError: the frame is larger than ``max_size``.
        MalformedFrameError: another kind or a bad layout.
    """
    kind = _binary_kind(data, max_size)
    if kind != KIND_USER_BROADCAST:
        raise MalformedFrameError(f"binary frame kind {kind} is not a user broadcast (kind 4)")
    if len(data) < 5:
        raise MalformedFrameError("binary frame ends inside its header")
    topic_len, event_len, meta_len, encoding_byte = data[1:5]
    encoding = _encoding(encoding_byte)
    reader = _Reader(data, 5)
    topic = reader.text(topic_len, "topic")
    user_event = reader.text(event_len, "event")
    metadata = _metadata(reader.take(meta_len, "metadata"))
    payload = reader.rest()
    _check_json_payload(encoding, payload)
    return UserBroadcast(
        topic=topic, user_event=user_event, metadata=metadata, encoding=encoding, payload=payload
    )
