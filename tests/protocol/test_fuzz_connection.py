"""Whatever a client sends, in whatever order, the connection never raises and stays consistent."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from meshlogs.protocol import (
    Broadcast,
    BroadcastReceived,
    ChannelState,
    JoinRequested,
    Limits,
    PresenceTracked,
    RealtimeConnection,
    Vsn,
)
from meshlogs.protocol.phoenix import Opcode, PayloadEncoding, UserBroadcastPush, encode_user_broadcast_push

TOPICS = ["realtime:a", "realtime:b", "realtime:", "phoenix", "other"]
EVENTS = ["phx_join", "phx_leave", "broadcast", "presence", "access_token", "heartbeat", "phx_reply", "x"]
REFS = st.none() | st.sampled_from(["1", "2", "3", "4"])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "track", "untrack", "*", "a"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["event", "payload", "type", "access_token", "config", "schema", "table", "key"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)
join_payloads = st.builds(
    lambda ack, enabled, bindings, token: {
        "config": {
            "broadcast": {"ack": ack, "self": True},
            "presence": {"enabled": enabled},
            "postgres_changes": bindings,
        },
        "access_token": token,
    },
    st.booleans(),
    st.booleans(),
    st.lists(
        st.fixed_dictionaries({"event": st.sampled_from(["*", "INSERT"]), "schema": st.just("public")}),
        max_size=2,
    ),
    st.none() | st.sampled_from(["t1", "t2", "sb_x"]),
)
text_frames = st.builds(
    lambda join_ref, ref, topic, event, payload: orjson.dumps([join_ref, ref, topic, event, payload]),
    REFS,
    REFS,
    st.sampled_from(TOPICS),
    st.sampled_from(EVENTS),
    json_values | join_payloads,
)
binary_frames = st.builds(
    lambda join_ref, ref, topic, raw: encode_user_broadcast_push(
        UserBroadcastPush(join_ref, ref, topic, "e", {}, PayloadEncoding.BINARY, raw)
    ),
    REFS,
    REFS,
    st.sampled_from(TOPICS),
    st.binary(max_size=8),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("text"), text_frames | st.binary(max_size=40)),
        st.tuples(st.just("binary"), binary_frames | st.binary(max_size=20)),
        st.tuples(st.just("accept"), st.booleans()),
        st.tuples(st.just("reject"), st.booleans()),
        st.tuples(st.just("close"), st.sampled_from(TOPICS)),
        st.tuples(st.just("error"), st.sampled_from(TOPICS)),
        st.tuples(st.just("broadcast"), st.sampled_from(TOPICS)),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(st.sampled_from(Vsn), steps)
def test_fuzz_connection(vsn: Vsn, script: list[tuple[str, Any]]) -> None:
    conn = RealtimeConnection(vsn, now=0.0, limits=Limits(max_channels=2, max_joins_per_second=5))
    pending: list[JoinRequested] = []
    now = 0.0
    for action, arg in script:
        now += 0.1
        if action == "text":
            conn.receive_text(arg, now)
        elif action == "binary":
            conn.receive_binary(arg, now)
        elif action in ("accept", "reject") and pending:
            request = pending.pop(0)
            if action == "accept":
                conn.accept_join(request.topic, request.join_ref, postgres_subscribed=arg)
            else:
                conn.reject_join(request.topic, request.join_ref, "Unauthorized: fuzz")
        elif action == "close":
            conn.close_channel(arg, "bye")
        elif action == "error":
            conn.error_channel(arg)
        elif action == "broadcast":
            conn.send_broadcast(arg, Broadcast.create("e", {}))
        for event in conn.events_received():
            if isinstance(event, JoinRequested):
                pending.append(event)
            elif isinstance(event, BroadcastReceived):
                conn.ack_broadcast(event)
                conn.send_broadcast(event.topic, event.broadcast)
            elif isinstance(event, PresenceTracked):
                conn.reply(event)
        for frame in conn.data_to_send():
            if frame.opcode is Opcode.TEXT:
                decoded = orjson.loads(frame.data)
                if vsn is Vsn.V2:
                    assert isinstance(decoded, list) and len(decoded) == 5
                else:
                    assert set(decoded) == {"topic", "event", "payload", "ref"}
            else:
                assert vsn is Vsn.V2 and frame.data[0] == 4
    # Invariants: bounded channels, joined channels have a prefix, topics are well-formed.
    assert len(conn.channels) <= 2
    for topic, channel in conn.channels.items():
        assert topic.startswith("realtime:") and topic != "realtime:"
        assert (channel.state is ChannelState.JOINED) == bool(channel.changes_prefix)
