"""One channel of a connection: its state and what a join fixed for its lifetime.

A channel exists from the ``phx_join`` the connection accepted for processing until a leave, a
replacing join, a rejection or a server close. It has two states; leaving is not a state because
the connection answers a ``phx_leave`` at once (reply, then ``phx_close``) and forgets the channel::

    phx_join ──▶ JOINING ──accept_join──▶ JOINED ──phx_leave / close_channel / error_channel──▶ gone
                    │                        ▲
                    └──reject_join / phx_leave / new phx_join of the same topic──▶ gone
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meshlogs.protocol.events import channel_name
from meshlogs.protocol.payloads import JoinConfig

__all__ = ["Channel", "ChannelState"]


class ChannelState(enum.Enum):
    """Where a channel is in its life."""

    JOINING = "joining"
    """The join was validated and surfaced as ``JoinRequested``; the server has not answered."""

    JOINED = "joined"
    """The join reply went out; pushes may flow."""


@dataclass(slots=True, eq=False)
class Channel:
    """The connection's record of one channel. Read it; do not modify it.

    Attributes:
        topic: ``realtime:<name>``.
        join_ref: the current join ref: the join's ``join_ref``, or its ``ref`` when a V1 client
            sent ``join_ref: null`` (Python ``realtime`` <= 2.30). V2 pushes carry it.
        config: the validated join configuration.
        access_token: the token the channel currently runs with (join token, connect-time token,
            or the latest ``access_token`` push).
        presence_key: the key this channel's presence is tracked under.
        state: joining or joined.
        binding_ids: the ids sent in the join reply, one per postgres_changes binding.
        changes_prefix: the cached start of this channel's ``postgres_changes`` frames.
        request_join_ref: the ``join_ref`` of the ``phx_join`` as sent (its reply echoes it).
        request_ref: the ``ref`` of the ``phx_join`` (its reply echoes it).
    """

    topic: str
    join_ref: str
    config: JoinConfig
    access_token: str | None
    presence_key: str
    request_join_ref: str | None
    request_ref: str | None
    state: ChannelState = ChannelState.JOINING
    binding_ids: tuple[int, ...] = ()
    changes_prefix: bytes = b""

    @property
    def name(self) -> str:
        """The topic without ``realtime:``, as ``system`` messages report it."""
        return channel_name(self.topic)
