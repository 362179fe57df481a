"""Who is joined to which topic, for broadcast and presence (Phoenix PubSub and Presence, in memory).

Broadcast and presence are between the clients of one gateway process: a broadcast push goes to every
channel joined to the same topic (and privacy), the sender's own only with ``self: true``. Presence
keeps one tracked meta per joined channel under its presence key and sends ``presence_diff`` to every
presence-enabled channel of the topic, the tracker included, as Phoenix Presence does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Member", "TopicRegistry"]


class Member(Protocol):
    """A joined channel, as the registry sees it."""

    topic: str
    presence_enabled: bool
    presence_key: str

    def deliver_presence_diff(self, joins: dict[str, Any], leaves: dict[str, Any]) -> None: ...


@dataclass
class _Topic:
    members: set[Any] = field(default_factory=set)
    # presence key -> channel -> meta (each meta carries its phx_ref)
    presence: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)


class TopicRegistry:
    """Members and presence per topic. Owned by the event loop; bounded by the connection limits."""

    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}
        self._refs = itertools.count(1)

    def join(self, member: Member) -> None:
        self._topics.setdefault(member.topic, _Topic()).members.add(member)

    def leave(self, member: Member) -> None:
        topic = self._topics.get(member.topic)
        if topic is None:
            return
        topic.members.discard(member)
        self.untrack(member)
        if not topic.members:
            del self._topics[member.topic]

    def members(self, topic: str) -> Iterator[Any]:
        entry = self._topics.get(topic)
        return iter(list(entry.members)) if entry else iter(())

    def presence_state(self, topic: str) -> dict[str, Any]:
        entry = self._topics.get(topic)
        if entry is None:
            return {}
        return {key: {"metas": list(by_member.values())} for key, by_member in entry.presence.items()}

    def track(self, member: Member, meta: dict[str, Any]) -> None:
        """Track (or update) the member's presence; an identical payload changes nothing."""
        entry = self._topics.setdefault(member.topic, _Topic())
        by_member = entry.presence.setdefault(member.presence_key, {})
        previous = by_member.get(member)
        if previous is not None and {k: v for k, v in previous.items() if k != "phx_ref"} == meta:
            return
        new = {**meta, "phx_ref": self._next_ref()}
        if previous is not None:
            new["phx_ref_prev"] = previous["phx_ref"]
        by_member[member] = new
        joins = {member.presence_key: {"metas": [new]}}
        leaves = {member.presence_key: {"metas": [previous]}} if previous is not None else {}
        self._diff(entry, joins, leaves)

    def untrack(self, member: Member) -> None:
        entry = self._topics.get(member.topic)
        if entry is None:
            return
        by_member = entry.presence.get(member.presence_key)
        if not by_member or member not in by_member:
            return
        meta = by_member.pop(member)
        if not by_member:
            del entry.presence[member.presence_key]
        self._diff(entry, {}, {member.presence_key: {"metas": [meta]}})

    def _diff(self, entry: _Topic, joins: dict[str, Any], leaves: dict[str, Any]) -> None:
        for other in list(entry.members):
            if other.presence_enabled:
                other.deliver_presence_diff(joins, leaves)

    def _next_ref(self) -> str:
        return f"F{next(self._refs):x}"
