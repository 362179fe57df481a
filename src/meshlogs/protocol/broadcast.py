"""User broadcasts: decoded once from the sender, framed cheaply for each subscriber.

A broadcast reaches the server in one of two forms and leaves in up to three, as in Supabase
(``broadcast_handler.ex``, ``user_broadcast.ex``, ``v2_serializer.ex``):

=====================================  =========================  ===============================
arrives as                             to a V2 subscriber         to a V1 subscriber
=====================================  =========================  ===============================
JSON text push (V1 clients, Python)    V2 text array              V1 text object
binary kind 3, JSON payload (JS V2)    binary kind 4              V1 text object (converted)
binary kind 3, raw bytes payload       binary kind 4              not delivered (V1 has no binary)
=====================================  =========================  ===============================

The subscriber-facing JSON payload object (``{"type": "broadcast", "event", "payload", ...}``) is
encoded once per broadcast (:attr:`Broadcast.envelope`); each subscriber's frame only adds its topic
and join ref around those bytes. A JSON text push is forwarded with every key the sender put in it,
as Supabase does; the sender's binary-frame metadata is not forwarded (Supabase drops it too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from meshlogs.protocol.phoenix import (
    MAX_HEADER_FIELD_BYTES,
    V2,
    Frame,
    Opcode,
    PayloadEncoding,
    UserBroadcastPush,
    Vsn,
    encode_user_broadcast,
)

__all__ = ["Broadcast"]


@dataclass(frozen=True, slots=True, eq=False)
class Broadcast:
    """A broadcast ready to be framed for any number of subscribers.

    Build one with :meth:`from_json_push`, :meth:`from_binary_push`, :meth:`create` or
    :meth:`create_binary`, not with the constructor.

    Attributes:
        event: the user's event name.
        envelope: the JSON payload object of text frames, or ``None`` when the user payload is raw
            bytes (then V1 sockets cannot receive it).
        binary_payload: the user payload bytes to send as a kind-4 frame to V2 sockets, or ``None``
            to send V2 sockets the text form.
        encoding: the encoding of :attr:`binary_payload`.
        meta: the JSON-encoded ``meta`` object for kind-4 frames, or ``None``.
    """

    event: str
    envelope: bytes | None
    binary_payload: bytes | None
    encoding: PayloadEncoding
    meta: bytes | None

    @classmethod
    def from_json_push(cls, payload: Mapping[str, Any]) -> Broadcast:
        """A broadcast from a JSON ``broadcast`` push; the payload is forwarded as sent.

        Args:
            payload: the push payload, a map with a string ``event``.

        Returns:
            The broadcast.

        Raises:
            ValueError: ``event`` is missing or not a string.
        """
        event = payload.get("event")
        if not isinstance(event, str):
            raise ValueError("broadcast payload needs a string `event`")
        return cls(
            event=event,
            envelope=orjson.dumps(payload),
            binary_payload=None,
            encoding=PayloadEncoding.JSON,
            meta=None,
        )

    @classmethod
    def from_binary_push(cls, push: UserBroadcastPush) -> Broadcast:
        """A broadcast from a kind-3 frame; V2 subscribers get it back as kind 4.

        Args:
            push: the decoded frame (its JSON payload was already checked to parse).

        Returns:
            The broadcast.
        """
        envelope = None
        if push.encoding is PayloadEncoding.JSON:
            envelope = _envelope(push.user_event, push.payload, None)
        return cls(
            event=push.user_event,
            envelope=envelope,
            binary_payload=push.payload,
            encoding=push.encoding,
            meta=None,
        )

    @classmethod
    def create(cls, event: str, payload: Any, *, meta: Mapping[str, Any] | None = None) -> Broadcast:
        """A server-originated JSON broadcast (e.g. from the database), sent as text to everyone.

        Args:
            event: the user event name.
            payload: any JSON-serializable value; clients expect an object.
            meta: optional ``meta`` object (``{"id": ...}`` for database messages).

        Returns:
            The broadcast.
        """
        meta_json = orjson.dumps(meta) if meta is not None else None
        return cls(
            event=event,
            envelope=_envelope(event, orjson.dumps(payload), meta_json),
            binary_payload=None,
            encoding=PayloadEncoding.JSON,
            meta=meta_json,
        )

    @classmethod
    def create_binary(cls, event: str, data: bytes, *, meta: Mapping[str, Any] | None = None) -> Broadcast:
        """A server-originated raw-bytes broadcast; only V2 sockets can receive it.

        Args:
            event: the user event name.
            data: the payload bytes.
            meta: optional ``meta`` object.

        Returns:
            The broadcast.
        """
        return cls(
            event=event,
            envelope=None,
            binary_payload=data,
            encoding=PayloadEncoding.BINARY,
            meta=orjson.dumps(meta) if meta is not None else None,
        )

    def frame(self, vsn: Vsn, topic: str, join_ref: str | None) -> Frame | None:
        """The frame for one subscriber.

        Args:
            vsn: the subscriber socket's serializer version.
            topic: the subscriber's channel topic.
            join_ref: the channel's current join ref (V2 text frames carry it).

        Returns:
            The frame, or ``None`` when this socket cannot receive the broadcast (raw bytes to V1).
        """
        if vsn is V2 and self.binary_payload is not None and _fits_binary(self, topic):
            data = encode_user_broadcast(
                topic, self.event, self.binary_payload, encoding=self.encoding, metadata=self.meta
            )
            return Frame(Opcode.BINARY, data)
        if self.envelope is None:
            return None
        topic_json = orjson.dumps(topic)
        if vsn is V2:
            data = b"".join(
                (b"[", orjson.dumps(join_ref), b",null,", topic_json, b',"broadcast",', self.envelope, b"]")
            )
        else:
            data = b"".join(
                (b'{"topic":', topic_json, b',"event":"broadcast","payload":', self.envelope, b',"ref":null}')
            )
        return Frame(Opcode.TEXT, data)


def _envelope(event: str, payload_json: bytes, meta_json: bytes | None) -> bytes:
    parts = [b'{"type":"broadcast","event":', orjson.dumps(event), b',"payload":', payload_json]
    if meta_json is not None:
        parts += [b',"meta":', meta_json]
    parts.append(b"}")
    return b"".join(parts)


def _fits_binary(broadcast: Broadcast, topic: str) -> bool:
    # Header fields carry one-byte lengths; a longer topic or event falls back to a text frame.
    return (
        len(topic.encode()) <= MAX_HEADER_FIELD_BYTES
        and len(broadcast.event.encode()) <= MAX_HEADER_FIELD_BYTES
        and len(broadcast.meta or b"") <= MAX_HEADER_FIELD_BYTES
    )
