"""Assertion helpers for driving a RealtimeConnection the way the official clients do."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import orjson

from meshlogs.protocol import Channel, Limits, RealtimeConnection, Vsn
from meshlogs.protocol.events import Event, JoinRequested
from meshlogs.protocol.phoenix import Opcode

TOPIC = "realtime:run-42"

T = TypeVar("T")


def only(events: Sequence[object], kind: type[T]) -> T:
    """The single event, checked to be of ``kind``."""
    assert len(events) == 1, events
    (event,) = events
    assert isinstance(event, kind), event
    return event


RUN_LOGS_BINDING: dict[str, Any] = {
    "event": "INSERT",
    "schema": "public",
    "table": "run_logs",
    "filter": "run_id=eq.42",
}


def join_payload(
    *bindings: dict[str, Any],
    presence_enabled: bool | None = False,
    ack: bool = False,
    self_: bool = False,
    token: str | None = "user-jwt",
) -> dict[str, Any]:
    """A phx_join payload shaped like realtime-js 2.119 sends it."""
    presence: dict[str, Any] = {"key": ""}
    if presence_enabled is not None:
        presence["enabled"] = presence_enabled
    payload: dict[str, Any] = {
        "config": {
            "broadcast": {"ack": ack, "self": self_},
            "presence": presence,
            "postgres_changes": list(bindings),
            "private": False,
        }
    }
    if token is not None:
        payload["access_token"] = token
    return payload


class Client:
    """Speaks to a RealtimeConnection in one vsn and decodes what comes back."""

    def __init__(self, vsn: Vsn = Vsn.V2, limits: Limits | None = None, **kwargs: Any) -> None:
        self.vsn = vsn
        self.now = 0.0
        self.conn = RealtimeConnection(vsn, now=self.now, limits=limits, id_factory=self._ids(), **kwargs)

    @staticmethod
    def _ids() -> Any:
        counter = iter(range(1, 1_000_000))
        return lambda: f"presence-key-{next(counter)}"

    def send(
        self,
        join_ref: str | None,
        ref: str | None,
        topic: str,
        event: str,
        payload: Any,
        *,
        omit_join_ref: bool = False,
    ) -> None:
        """Send one text frame as the client would (V1 object or V2 array)."""
        if self.vsn is Vsn.V2:
            data = orjson.dumps([join_ref, ref, topic, event, payload])
        else:
            message: dict[str, Any] = {
                "topic": topic,
                "event": event,
                "payload": payload,
                "ref": ref,
            }
            if not omit_join_ref:
                message["join_ref"] = join_ref
            data = orjson.dumps(message)
        self.conn.receive_text(data.decode(), self.now)

    def send_binary(self, data: bytes) -> None:
        self.conn.receive_binary(data, self.now)

    def join(
        self, topic: str = TOPIC, ref: str = "1", payload: dict[str, Any] | None = None
    ) -> JoinRequested:
        """Send a phx_join (join_ref == ref, as realtime-js does) and return its JoinRequested."""
        self.send(ref, ref, topic, "phx_join", payload if payload is not None else join_payload())
        events = self.conn.events_received()
        joins = [event for event in events if isinstance(event, JoinRequested)]
        assert len(joins) == 1, events
        return joins[0]

    def joined(self, topic: str = TOPIC, ref: str = "1", **kwargs: Any) -> JoinRequested:
        """Join and accept; drains the frames."""
        request = self.join(topic, ref, join_payload(**kwargs) if kwargs else None)
        assert self.conn.accept_join(topic, request.join_ref)
        self.frames()
        return request

    def frames(self) -> list[Any]:
        """Outgoing frames: decoded JSON for text frames, raw bytes for binary ones."""
        out: list[Any] = []
        for frame in self.conn.data_to_send():
            if frame.opcode is Opcode.TEXT:
                out.append(orjson.loads(frame.data))
            else:
                out.append(bytes(frame.data))
        return out

    def events(self) -> list[Event]:
        return self.conn.events_received()

    def only_frame(self) -> Any:
        frames = self.frames()
        assert len(frames) == 1, frames
        return frames[0]


def iter_pairs(frames: list[Any]) -> Iterator[tuple[str, str]]:
    """(topic, event) of V2 frames, for order assertions."""
    for frame in frames:
        yield frame[2], frame[3]


def channel(client: Client, topic: str) -> Channel:
    """The connection's channel of ``topic``, which must exist."""
    found = client.conn.channel(topic)
    assert found is not None
    return found
