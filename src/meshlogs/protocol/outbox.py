"""The frames a connection owes its client, encoded for the socket's serializer version.

Three shapes cover everything the server says (``phoenix/socket.ex``, ``realtime_channel.ex``):

* replies echo the request's refs: ``[join_ref, ref, topic, "phx_reply", {"status", "response"}]``;
* pushes carry the channel's current join ref and no ref: ``[join_ref, null, topic, event, payload]``;
* ``phx_close``/``phx_error`` carry the join ref twice, because clients ignore them under any other
  ref: ``[join_ref, join_ref, topic, "phx_close", {}]``.

On V1 sockets the same messages become ``{"topic", "event", "payload", "ref"}`` objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshlogs.protocol.channel import Channel
from meshlogs.protocol.phoenix import Frame, Message, Opcode, Vsn, encode_text

__all__ = ["Outbox"]


class Outbox:
    """Queue of outgoing frames for one socket.

    Args:
        vsn: the socket's serializer version.
    """

    __slots__ = ("_frames", "vsn")

    def __init__(self, vsn: Vsn) -> None:
        self.vsn = vsn
        self._frames: list[Frame] = []

    def drain(self) -> list[Frame]:
        """Everything queued so far, in order; the queue is emptied."""
        frames, self._frames = self._frames, []
        return frames

    def append(self, frame: Frame) -> None:
        """Queue an already encoded frame (spliced changes, broadcasts)."""
        self._frames.append(frame)

    def message(self, join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> None:
        """Queue any message as a text frame."""
        data = encode_text(Message(join_ref, ref, topic, event, payload), self.vsn)
        self._frames.append(Frame(Opcode.TEXT, data))

    def reply(
        self,
        join_ref: str | None,
        ref: str | None,
        topic: str,
        response: Mapping[str, Any] | None = None,
        *,
        error: str | None = None,
    ) -> None:
        """Queue a ``phx_reply``: ``ok`` with ``response``, or ``error`` with ``{"reason": error}``."""
        if error is not None:
            payload = {"status": "error", "response": {"reason": error}}
        else:
            payload = {"status": "ok", "response": dict(response or {})}
        self.message(join_ref, ref, topic, "phx_reply", payload)

    def push(self, channel: Channel, event: str, payload: Any) -> None:
        """Queue a server push on a channel: current join ref, ``ref: null``."""
        self.message(channel.join_ref, None, channel.topic, event, payload)

    def system(self, channel: Channel, status: str, message: str, extension: str) -> None:
        """Queue a ``system`` push; ``channel`` is the name without ``realtime:``."""
        payload = {
            "extension": extension,
            "status": status,
            "message": message,
            "channel": channel.name,
        }
        self.push(channel, "system", payload)

    def close(self, channel: Channel, event: str, payload: Mapping[str, Any]) -> None:
        """Queue ``phx_close`` or ``phx_error`` with ``ref = join_ref``."""
        self.message(channel.join_ref, channel.join_ref, channel.topic, event, dict(payload))
