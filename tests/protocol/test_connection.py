"""The connection state machine, exchange by exchange (PROTOCOL.md §2, §5, §7, §8).

Each test drives a RealtimeConnection with the frames an official client sends and asserts the exact
frames that come back. V2 frames are compared as decoded arrays, V1 frames as decoded objects.

PROTOCOL.md §7.1 checklist → tests (codec-level ones live in test_phoenix/test_changes):

1. vsn per socket, V1 objects / V2 arrays, kind 3 in, only kind 4 out: test_negotiate_vsn*,
   test_v2_session_from_protocol_doc, test_v1_session_python_2_34, test_binary_kind3_broadcast_round_trip,
   test_binary_frames_on_v1_are_violations.
2. refs verbatim, pushes ref null, V1 replies carry ref: the two session tests,
   test_v1_python_2_30_join_ref_null_uses_the_join_ref, test_v1_js_heartbeat_without_join_ref_key.
3. heartbeat replies: session tests, test_other_events_on_phoenix_topic.
4. join reply = bindings verbatim + non-zero int ids: test_join_reply_echoes_bindings_verbatim_with_ids,
   test_join_reply_without_bindings_has_empty_list_and_no_system_message, test_server_supplied_binding_ids.
5. current join_ref on pushes, phx_close/phx_error ref = join_ref:
   test_pushes_after_rejoin_carry_the_new_join_ref, test_duplicate_join_closes_old_channel_with_old_join_ref,
   test_close_channel_on_token_expiry, test_close_channel_without_reason_and_error_channel.
6. postgres_changes payload: test_changes.py, test_postgres_changes_frame_fast_path_equals_queued_frame.
7. presence_state after join, missing enabled = true: test_presence_state_after_join_when_enabled_or_missing.
8. access_token never replied, join without token: test_access_token_filtering,
   test_join_falls_back_to_connect_time_token.
9. ack only with ack:true, presence and phx_leave always answered:
   test_json_broadcast_without_ack_is_not_replied, test_broadcast_ack, test_presence_*,
   test_leave_of_unknown_topic_is_answered_ok.
10. unknown keys/events ignored, never a close: test_unknown_events_are_ignored_never_closed,
    test_malformed_frames_are_violations_not_closes (and test_payloads.test_unknown_keys_are_ignored).

§7.2 (Python client validation) is test_client_compat.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from meshlogs.protocol import (
    SUBSCRIBED_TO_POSTGRES,
    AccessTokenReceived,
    Broadcast,
    BroadcastReceived,
    ChannelState,
    CloseRequested,
    Column,
    EncodedChange,
    JoinRequested,
    LeaveRequested,
    Limits,
    MessageIgnored,
    PresenceTracked,
    PresenceUntracked,
    ProtocolViolation,
    Vsn,
    encode_change,
)
from meshlogs.protocol.phoenix import (
    PayloadEncoding,
    UserBroadcastPush,
    decode_user_broadcast,
    encode_user_broadcast_push,
)

from .helpers import RUN_LOGS_BINDING, TOPIC, Client, channel, join_payload, only

OK_EMPTY = {"status": "ok", "response": {}}
SUBSCRIBED = {
    "extension": "postgres_changes",
    "status": "ok",
    "message": SUBSCRIBED_TO_POSTGRES,
    "channel": "run-42",
}


def reasons(client: Client) -> list[str]:
    return [event.reason for event in client.events() if isinstance(event, MessageIgnored)]


def change() -> EncodedChange:
    return encode_change(
        schema="public",
        table="run_logs",
        type="INSERT",
        commit_timestamp=dt.datetime(2026, 9, 1, 10, 0, 0, 123000, tzinfo=dt.UTC),
        columns=[Column("id", "int8")],
        record={"id": 7},
    )


# ------------------------------------------------------------------------- §8 sessions, exact


def test_v2_session_from_protocol_doc() -> None:
    client = Client(Vsn.V2)
    client.send("6", "6", TOPIC, "phx_join", join_payload(RUN_LOGS_BINDING))
    (request,) = client.events()
    assert isinstance(request, JoinRequested)
    assert (request.topic, request.join_ref, request.ref) == (TOPIC, "6", "6")
    assert request.access_token == "user-jwt"
    assert request.channel_name == "run-42"
    assert client.frames() == []  # nothing is said before the server decides
    binding_id = request.config.postgres_changes[0].id

    assert client.conn.accept_join(TOPIC, "6")
    assert client.frames() == [
        [
            "6",
            "6",
            TOPIC,
            "phx_reply",
            {"status": "ok", "response": {"postgres_changes": [{**RUN_LOGS_BINDING, "id": binding_id}]}},
        ],
        ["6", None, TOPIC, "system", SUBSCRIBED],
    ]

    assert client.conn.send_postgres_changes(TOPIC, [binding_id], change())
    (frame,) = client.frames()
    assert frame[:4] == ["6", None, TOPIC, "postgres_changes"]
    assert frame[4]["ids"] == [binding_id]
    assert frame[4]["data"]["record"] == {"id": 7}

    client.send(None, "7", "phoenix", "heartbeat", {})
    assert client.frames() == [[None, "7", "phoenix", "phx_reply", OK_EMPTY]]

    client.send("6", "8", TOPIC, "access_token", {"access_token": "new-jwt"})
    assert client.frames() == []  # never replied to
    assert client.events() == [AccessTokenReceived(TOPIC, "6", "8", "new-jwt")]

    client.send("6", "9", TOPIC, "phx_leave", {})
    assert client.frames() == [
        ["6", "9", TOPIC, "phx_reply", OK_EMPTY],
        ["6", "6", TOPIC, "phx_close", {}],
    ]
    assert client.events() == [LeaveRequested(TOPIC, "6", "9", "phx_leave")]
    assert client.conn.channel(TOPIC) is None


def test_v1_session_python_2_34() -> None:
    client = Client(Vsn.V1)
    request = client.join(payload=join_payload(RUN_LOGS_BINDING))
    assert client.conn.accept_join(TOPIC, request.join_ref)
    binding_id = request.config.postgres_changes[0].id
    assert client.frames() == [
        {
            "topic": TOPIC,
            "event": "phx_reply",
            "payload": {
                "status": "ok",
                "response": {"postgres_changes": [{**RUN_LOGS_BINDING, "id": binding_id}]},
            },
            "ref": "1",
        },
        {"topic": TOPIC, "event": "system", "payload": SUBSCRIBED, "ref": None},
    ]
    client.send(None, None, "phoenix", "heartbeat", {})
    assert client.frames() == [{"topic": "phoenix", "event": "phx_reply", "payload": OK_EMPTY, "ref": None}]
    client.send("1", "5", TOPIC, "phx_leave", {})
    assert client.frames() == [
        {"topic": TOPIC, "event": "phx_reply", "payload": OK_EMPTY, "ref": "5"},
        {"topic": TOPIC, "event": "phx_close", "payload": {}, "ref": "1"},
    ]


def test_v1_python_2_30_join_ref_null_uses_the_join_ref() -> None:
    # Python realtime <= 2.30 sends join_ref null on every message; the join's ref stands in.
    client = Client(Vsn.V1)
    client.send(None, "3", TOPIC, "phx_join", join_payload())
    request = only(client.events(), JoinRequested)
    assert request.join_ref == "3"
    assert client.conn.accept_join(TOPIC, "3")
    client.frames()
    client.send(None, "4", TOPIC, "phx_leave", {})
    assert client.frames() == [
        {"topic": TOPIC, "event": "phx_reply", "payload": OK_EMPTY, "ref": "4"},
        {"topic": TOPIC, "event": "phx_close", "payload": {}, "ref": "3"},
    ]


def test_v1_js_heartbeat_without_join_ref_key() -> None:
    client = Client(Vsn.V1)
    client.send(None, "10", "phoenix", "heartbeat", {}, omit_join_ref=True)
    assert client.frames() == [{"topic": "phoenix", "event": "phx_reply", "payload": OK_EMPTY, "ref": "10"}]


# --------------------------------------------------------------------------------- join reply


def test_join_reply_echoes_bindings_verbatim_with_ids() -> None:
    # Lower-case event, missing filter, extra select key, key order: all echoed as sent, plus id.
    bindings: list[dict[str, Any]] = [
        {"table": "run_logs", "event": "insert", "schema": "public"},
        {"event": "*", "schema": "public", "table": "workflow_runs", "select": ["id"]},
        {"event": "*", "schema": "public", "table": "workflow_runs", "select": ["id"]},
    ]
    client = Client()
    request = client.join(payload=join_payload(*bindings))
    client.conn.accept_join(TOPIC, request.join_ref)
    reply = client.frames()[0][4]["response"]["postgres_changes"]
    ids = [b.id for b in request.config.postgres_changes]
    assert reply == [{**binding, "id": ident} for binding, ident in zip(bindings, ids, strict=True)]
    assert [list(item) for item in reply][0] == ["table", "event", "schema", "id"]
    assert all(type(ident) is int and ident > 0 for ident in ids)
    assert ids[1] == ids[2]  # identical bindings share an id
    assert "filter" not in reply[0]  # never add keys the client did not send


def test_join_reply_without_bindings_has_empty_list_and_no_system_message() -> None:
    client = Client()
    request = client.join()
    client.conn.accept_join(TOPIC, request.join_ref)
    assert client.frames() == [
        ["1", "1", TOPIC, "phx_reply", {"status": "ok", "response": {"postgres_changes": []}}]
    ]


def test_server_supplied_binding_ids() -> None:
    client = Client()
    request = client.join(payload=join_payload(RUN_LOGS_BINDING))
    with pytest.raises(ValueError):
        client.conn.accept_join(TOPIC, request.join_ref, binding_ids=[0])
    with pytest.raises(ValueError):
        client.conn.accept_join(TOPIC, request.join_ref, binding_ids=[1, 2])
    assert client.conn.accept_join(TOPIC, request.join_ref, binding_ids=[57806073])
    reply = client.frames()[0][4]["response"]["postgres_changes"]
    assert reply[0]["id"] == 57806073
    assert channel(client, TOPIC).binding_ids == (57806073,)


def test_subscribed_message_can_be_deferred() -> None:
    client = Client()
    request = client.join(payload=join_payload(RUN_LOGS_BINDING))
    client.conn.accept_join(TOPIC, request.join_ref, postgres_subscribed=False)
    assert [frame[3] for frame in client.frames()] == ["phx_reply"]
    assert client.conn.send_system(
        TOPIC, status="error", message="Error parsing `filter` params", extension="postgres_changes"
    )
    assert client.only_frame() == [
        "1",
        None,
        TOPIC,
        "system",
        {
            "extension": "postgres_changes",
            "status": "error",
            "message": "Error parsing `filter` params",
            "channel": "run-42",
        },
    ]


def test_presence_state_after_join_when_enabled_or_missing() -> None:
    for enabled in (True, None):
        client = Client()
        request = client.join(payload=join_payload(RUN_LOGS_BINDING, presence_enabled=enabled))
        client.conn.accept_join(TOPIC, request.join_ref, presence_state={"k": {"metas": []}})
        frames = client.frames()
        assert [frame[3] for frame in frames] == ["phx_reply", "presence_state", "system"]
        assert frames[1] == ["1", None, TOPIC, "presence_state", {"k": {"metas": []}}]


def test_presence_state_defaults_to_empty_object() -> None:
    client = Client()
    request = client.join(payload=join_payload(presence_enabled=True))
    client.conn.accept_join(TOPIC, request.join_ref)
    assert client.frames()[1] == ["1", None, TOPIC, "presence_state", {}]


def test_reject_join() -> None:
    client = Client()
    request = client.join()
    assert client.conn.reject_join(TOPIC, request.join_ref, "Unauthorized: no")
    assert client.only_frame() == [
        "1",
        "1",
        TOPIC,
        "phx_reply",
        {"status": "error", "response": {"reason": "Unauthorized: no"}},
    ]
    assert client.conn.channel(TOPIC) is None
    assert not client.conn.reject_join(TOPIC, request.join_ref, "again")


def test_join_falls_back_to_connect_time_token() -> None:
    client = Client(default_token="anon-jwt")
    request = client.join(payload=join_payload(token=None))
    assert request.access_token == "anon-jwt"
    client.send("2", "2", "realtime:b", "phx_join", join_payload(token="sb_publishable_abc"))
    assert only(client.events(), JoinRequested).access_token == "anon-jwt"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"config": {"broadcast": {"ack": 1}}}, "InvalidJoinPayload: config.broadcast.ack"),
        ([], "InvalidJoinPayload: payload"),
    ],
)
def test_invalid_join_payload_is_refused(payload: object, reason: str) -> None:
    client = Client()
    client.send("1", "1", TOPIC, "phx_join", payload)
    frame = client.only_frame()
    assert frame[:4] == ["1", "1", TOPIC, "phx_reply"]
    assert frame[4]["status"] == "error"
    assert frame[4]["response"]["reason"].startswith(reason)
    (violation,) = client.events()
    assert isinstance(violation, ProtocolViolation) and violation.code == "InvalidJoinPayload"
    assert client.conn.channel(TOPIC) is None


def test_topic_rules() -> None:
    client = Client()
    client.send("1", "1", "realtime:", "phx_join", join_payload())
    assert client.only_frame()[4] == {
        "status": "error",
        "response": {"reason": "TopicNameRequired: You must provide a topic name"},
    }
    client.send("2", "2", "room:1", "phx_join", join_payload())
    assert client.only_frame() == [
        None,
        "2",
        "room:1",
        "phx_reply",
        {"status": "error", "response": {"reason": "unmatched topic"}},
    ]
    assert isinstance(client.events()[-1], MessageIgnored)


def test_join_without_any_ref_is_a_violation() -> None:
    client = Client()
    client.send(None, None, TOPIC, "phx_join", join_payload())
    assert client.frames() == []
    (event,) = client.events()
    assert isinstance(event, ProtocolViolation) and event.code == "MalformedFrame"


# ----------------------------------------------------------------------- rejoin and join_ref


def test_duplicate_join_closes_old_channel_with_old_join_ref() -> None:
    client = Client()
    client.joined(ref="1")
    client.send("5", "5", TOPIC, "phx_join", join_payload())
    assert client.frames() == [["1", "1", TOPIC, "phx_close", {}]]
    events = client.events()
    assert events[0] == LeaveRequested(TOPIC, "1", None, "duplicate_join")
    assert isinstance(events[1], JoinRequested) and events[1].join_ref == "5"
    assert channel(client, TOPIC).state is ChannelState.JOINING


def test_pushes_after_rejoin_carry_the_new_join_ref() -> None:
    client = Client()
    client.joined(ref="1", presence_enabled=True)
    client.send("5", "5", TOPIC, "phx_join", join_payload(RUN_LOGS_BINDING, presence_enabled=True))
    client.frames()
    request = only(client.events()[1:], JoinRequested)
    # The server finishing work for the old join is ignored.
    assert not client.conn.accept_join(TOPIC, "1")
    assert not client.conn.send_system(TOPIC, status="ok", message="x")
    assert client.conn.accept_join(TOPIC, "5")
    frames = client.frames()
    assert [frame[0] for frame in frames] == ["5", "5", "5"]
    ids = [request.config.postgres_changes[0].id]
    assert client.conn.send_postgres_changes(TOPIC, ids, change())
    assert client.conn.send_broadcast(TOPIC, Broadcast.create("e", {"a": 1}))
    assert client.conn.send_presence_diff(TOPIC, {"k": {"metas": []}}, {})
    assert client.conn.send_presence_state(TOPIC, {})
    assert client.conn.push(TOPIC, "custom", {})
    assert [frame[0] for frame in client.frames()] == ["5"] * 5
    # join_ref guards refuse stale server work on every push method.
    assert not client.conn.send_presence_state(TOPIC, {}, join_ref="1")
    assert not client.conn.close_channel(TOPIC, "expired", join_ref="1")
    assert not client.conn.send_postgres_changes(TOPIC, ids, change(), join_ref="1")
    assert client.frames() == []


def test_stale_join_ref_messages_are_ignored() -> None:
    client = Client()
    client.joined(ref="5")
    client.send("1", "9", TOPIC, "phx_leave", {})
    client.send("1", "10", TOPIC, "broadcast", {"type": "broadcast", "event": "e", "payload": {}})
    assert client.frames() == []
    assert [type(event) for event in client.events()] == [MessageIgnored, MessageIgnored]
    assert client.conn.channel(TOPIC) is not None


def test_null_join_ref_messages_are_accepted() -> None:
    client = Client()
    client.joined(ref="5")
    client.send(None, "10", TOPIC, "phx_leave", {})
    assert client.frames() == [
        [None, "10", TOPIC, "phx_reply", OK_EMPTY],
        ["5", "5", TOPIC, "phx_close", {}],
    ]


def test_leave_while_joining_makes_accept_a_no_op() -> None:
    client = Client()
    request = client.join()
    client.send("1", "2", TOPIC, "phx_leave", {})
    assert client.frames() == [
        ["1", "2", TOPIC, "phx_reply", OK_EMPTY],
        ["1", "1", TOPIC, "phx_close", {}],
    ]
    assert client.events() == [LeaveRequested(TOPIC, "1", "2", "phx_leave")]
    assert not client.conn.accept_join(TOPIC, request.join_ref)
    assert client.frames() == []


def test_leave_of_unknown_topic_is_answered_ok() -> None:
    client = Client()
    client.send("3", "4", "realtime:nowhere", "phx_leave", {})
    assert client.frames() == [["3", "4", "realtime:nowhere", "phx_reply", OK_EMPTY]]
    assert client.events() == []


def test_message_to_unjoined_topic_gets_unmatched_topic() -> None:
    client = Client()
    client.send("3", "4", "realtime:nowhere", "broadcast", {"event": "e", "payload": {}})
    assert client.frames() == [
        [
            None,
            "4",
            "realtime:nowhere",
            "phx_reply",
            {"status": "error", "response": {"reason": "unmatched topic"}},
        ]
    ]


def test_other_events_on_phoenix_topic() -> None:
    client = Client()
    client.send(None, "4", "phoenix", "phx_join", {})
    assert client.only_frame()[4]["response"] == {"reason": "unmatched topic"}


# ------------------------------------------------------------------------------------- close


def test_close_channel_on_token_expiry() -> None:
    client = Client()
    client.joined(ref="6")
    assert client.conn.close_channel(TOPIC, "Token has expired 3 seconds ago")
    assert client.frames() == [
        [
            "6",
            None,
            TOPIC,
            "system",
            {
                "extension": "system",
                "status": "error",
                "message": "Token has expired 3 seconds ago",
                "channel": "run-42",
            },
        ],
        ["6", "6", TOPIC, "phx_close", {}],
    ]
    assert client.conn.channel(TOPIC) is None
    assert not client.conn.close_channel(TOPIC)


def test_close_channel_without_reason_and_error_channel() -> None:
    client = Client()
    client.joined(ref="6")
    assert client.conn.close_channel(TOPIC)
    assert client.frames() == [["6", "6", TOPIC, "phx_close", {}]]
    client.joined(ref="7")
    assert client.conn.error_channel(TOPIC)
    assert client.frames() == [["7", "7", TOPIC, "phx_error", {"reason": "channel_crash"}]]
    assert client.conn.channel(TOPIC) is None


def test_server_methods_need_a_joined_channel() -> None:
    client = Client()
    client.join()
    assert not client.conn.send_system(TOPIC, status="ok", message="m")
    assert not client.conn.close_channel(TOPIC)
    assert not client.conn.error_channel(TOPIC)
    assert not client.conn.send_broadcast(TOPIC, Broadcast.create("e", {}))
    assert not client.conn.push(TOPIC, "x", {})
    assert client.conn.postgres_changes_frame(TOPIC, [1], change()) is None
    assert client.frames() == []


# ------------------------------------------------------------------------------------ limits


def test_too_many_channels() -> None:
    client = Client(limits=Limits(max_channels=2))
    client.join("realtime:a", "1")
    client.join("realtime:b", "2")
    client.send("3", "3", "realtime:c", "phx_join", join_payload())
    assert client.only_frame() == [
        "3",
        "3",
        "realtime:c",
        "phx_reply",
        {"status": "error", "response": {"reason": "ChannelRateLimitReached: Too many channels"}},
    ]
    assert client.events() == []
    # Rejoining an existing topic replaces it and does not count twice.
    client.join("realtime:a", "4")
    assert not client.conn.closing


def test_too_many_joins_per_second_closes_the_socket() -> None:
    client = Client(limits=Limits(max_joins_per_second=2))
    client.join("realtime:a", "1")
    client.now = 0.5
    client.join("realtime:b", "2")
    client.now = 0.9
    client.send("3", "3", "realtime:c", "phx_join", join_payload())
    assert client.only_frame()[4] == {
        "status": "error",
        "response": {"reason": "ClientJoinRateLimitReached: Too many joins per second"},
    }
    assert client.events() == [CloseRequested(1008, "too many joins per second")]
    assert client.conn.closing
    client.send(None, "9", "phoenix", "heartbeat", {})
    assert client.frames() == []  # input is ignored once closing


def test_join_rate_window_slides_with_the_passed_in_clock() -> None:
    client = Client(limits=Limits(max_joins_per_second=2))
    client.join("realtime:a", "1")
    client.now = 0.5
    client.join("realtime:b", "2")
    client.now = 1.01  # the first join left the window
    client.join("realtime:c", "3")
    assert not client.conn.closing


def test_oversized_frame_closes_with_1009() -> None:
    client = Client(limits=Limits(max_frame_bytes=64))
    client.send(None, "1", "phoenix", "heartbeat", {"pad": "x" * 100})
    assert client.frames() == []
    violation, close = client.events()
    assert isinstance(violation, ProtocolViolation) and violation.code == "FrameTooLarge"
    assert close == CloseRequested(1009, "frame too large")


def test_malformed_frames_are_violations_not_closes() -> None:
    client = Client(Vsn.V2)
    client.conn.receive_text("{not json", 1.0)
    client.conn.receive_text('{"topic":"phoenix"}', 1.0)  # a V1 object on a V2 socket
    client.send_binary(b"\x01\x02")
    events = client.events()
    assert [type(event) for event in events] == [ProtocolViolation] * 3
    assert all(isinstance(e, ProtocolViolation) and e.code == "MalformedFrame" for e in events)
    assert not client.conn.closing
    client.send(None, "2", "phoenix", "heartbeat", {})
    assert client.frames() == [[None, "2", "phoenix", "phx_reply", OK_EMPTY]]


def test_binary_frames_on_v1_are_violations() -> None:
    client = Client(Vsn.V1)
    client.send_binary(b"\x03")
    (event,) = client.events()
    assert isinstance(event, ProtocolViolation)


def test_unknown_events_are_ignored_never_closed() -> None:
    client = Client()
    client.joined()
    client.send("1", "2", TOPIC, "something_new", {"x": 1})
    client.send("1", "3", TOPIC, "heartbeat", {})
    assert client.frames() == []
    assert reasons(client) == ["unknown event"] * 2
    assert not client.conn.closing


def test_idle_uses_the_passed_in_clock() -> None:
    client = Client(limits=Limits(idle_timeout=60))
    assert not client.conn.idle(59.0)
    assert client.conn.idle(60.5)
    client.now = 50.0
    client.send(None, "1", "phoenix", "heartbeat", {})
    assert client.conn.last_received == 50.0
    assert not client.conn.idle(100.0)
    assert client.conn.idle(110.5)


def test_limits_validation() -> None:
    with pytest.raises(ValueError):
        Limits(max_channels=0)
    with pytest.raises(ValueError):
        Limits(idle_timeout=0)


# --------------------------------------------------------------------------------- broadcast


def test_json_broadcast_without_ack_is_not_replied() -> None:
    client = Client(Vsn.V1)
    client.joined(self_=True)
    payload = {"type": "broadcast", "event": "ping", "payload": {"n": 1}, "extra": True}
    client.send("1", "2", TOPIC, "broadcast", payload)
    assert client.frames() == []
    (event,) = client.events()
    assert isinstance(event, BroadcastReceived)
    assert (event.ack_needed, event.self_wanted, event.ref) == (False, True, "2")
    assert not client.conn.ack_broadcast(event)
    # Fan-out of the same message to this (V1) channel: forwarded as sent, extras included.
    assert client.conn.send_broadcast(TOPIC, event.broadcast)
    assert client.only_frame() == {"topic": TOPIC, "event": "broadcast", "payload": payload, "ref": None}


def test_broadcast_ack() -> None:
    client = Client(Vsn.V2)
    client.joined(ack=True)
    client.send("1", "7", TOPIC, "broadcast", {"type": "broadcast", "event": "e", "payload": {}})
    (event,) = client.events()
    assert isinstance(event, BroadcastReceived) and event.ack_needed
    assert client.conn.ack_broadcast(event)
    assert client.only_frame() == ["1", "7", TOPIC, "phx_reply", OK_EMPTY]


def test_binary_kind3_broadcast_round_trip() -> None:
    sender = Client(Vsn.V2)
    sender.joined(ack=True)
    push = UserBroadcastPush("1", "7", TOPIC, "ping", {}, PayloadEncoding.JSON, b'{"n":1}')
    sender.send_binary(encode_user_broadcast_push(push))
    (event,) = sender.events()
    assert isinstance(event, BroadcastReceived)
    assert event.ack_needed and event.broadcast.event == "ping"
    sender.conn.ack_broadcast(event)
    assert sender.only_frame() == ["1", "7", TOPIC, "phx_reply", OK_EMPTY]

    v2 = Client(Vsn.V2)
    v2.joined()
    assert v2.conn.send_broadcast(TOPIC, event.broadcast)
    decoded = decode_user_broadcast(v2.only_frame(), max_size=1 << 20)
    assert (decoded.topic, decoded.user_event, decoded.payload) == (TOPIC, "ping", b'{"n":1}')

    v1 = Client(Vsn.V1)
    v1.joined()
    assert v1.conn.send_broadcast(TOPIC, event.broadcast)
    assert v1.only_frame() == {
        "topic": TOPIC,
        "event": "broadcast",
        "payload": {"type": "broadcast", "event": "ping", "payload": {"n": 1}},
        "ref": None,
    }


def test_raw_binary_broadcast_is_not_delivered_to_v1() -> None:
    v1 = Client(Vsn.V1)
    v1.joined()
    assert not v1.conn.send_broadcast(TOPIC, Broadcast.create_binary("blob", b"\x00\x01"))
    assert v1.frames() == []


def test_binary_broadcast_to_unjoined_or_stale_topic() -> None:
    client = Client(Vsn.V2)
    push = UserBroadcastPush("1", "7", TOPIC, "ping", {}, PayloadEncoding.JSON, b"{}")
    client.send_binary(encode_user_broadcast_push(push))
    assert client.only_frame()[4]["response"] == {"reason": "unmatched topic"}
    client.joined(ref="3")
    client.send_binary(encode_user_broadcast_push(push))  # join_ref "1" is stale
    assert client.frames() == []
    assert isinstance(client.events()[-1], MessageIgnored)


def test_invalid_json_broadcast_is_a_violation() -> None:
    client = Client()
    client.joined(ack=True)
    client.send("1", "2", TOPIC, "broadcast", {"payload": {}})
    client.send("1", "3", TOPIC, "broadcast", [1])
    assert client.frames() == []
    assert [e.code for e in client.events() if isinstance(e, ProtocolViolation)] == ["InvalidBroadcast"] * 2


def test_pushes_while_joining_are_ignored() -> None:
    client = Client()
    client.join()
    client.send("1", "2", TOPIC, "broadcast", {"event": "e", "payload": {}})
    client.send("1", "3", TOPIC, "presence", {"event": "track", "payload": {}})
    assert client.frames() == []
    assert reasons(client) == ["channel is still joining"] * 2


# ---------------------------------------------------------------------------------- presence


def test_presence_track_and_untrack() -> None:
    client = Client()
    client.joined()
    key = channel(client, TOPIC).presence_key
    assert key == "presence-key-1"  # generated with the injected id factory
    client.send(
        "1", "8", TOPIC, "presence", {"type": "presence", "event": "track", "payload": {"user": "u1"}}
    )
    (tracked,) = client.events()
    assert tracked == PresenceTracked(TOPIC, "1", "8", key, {"user": "u1"})
    assert client.frames() == []  # the server replies once tracked
    assert client.conn.reply(tracked)
    assert client.only_frame() == ["1", "8", TOPIC, "phx_reply", OK_EMPTY]
    client.send("1", "9", TOPIC, "presence", {"event": "UNTRACK"})  # Python omits type
    (untracked,) = client.events()
    assert untracked == PresenceUntracked(TOPIC, "1", "9", key)
    assert client.conn.reply(untracked, error="nope")
    assert client.only_frame()[4] == {"status": "error", "response": {"reason": "nope"}}


def test_presence_key_from_join_config() -> None:
    client = Client()
    payload = join_payload()
    payload["config"]["presence"]["key"] = "alice"
    request = client.join(payload=payload)
    client.conn.accept_join(TOPIC, request.join_ref)
    assert channel(client, TOPIC).presence_key == "alice"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"event": "track", "payload": [1]},
            {"status": "error", "response": {"reason": "Presence track payload must be a map"}},
        ),
        (
            {"event": "track", "payload": None},
            {"status": "error", "response": {"reason": "Presence track payload must be a map"}},
        ),
        ({"event": "dance"}, {"status": "error", "response": {}}),
        ({"event": 5}, {"status": "error", "response": {}}),
        ({"type": "presence"}, OK_EMPTY),
        ([], OK_EMPTY),
    ],
)
def test_presence_answers_without_the_server(payload: object, expected: object) -> None:
    client = Client()
    client.joined()
    client.send("1", "8", TOPIC, "presence", payload)
    assert client.only_frame() == ["1", "8", TOPIC, "phx_reply", expected]
    assert not any(isinstance(e, PresenceTracked | PresenceUntracked) for e in client.events())


def test_presence_track_without_payload_tracks_empty_meta() -> None:
    client = Client()
    client.joined()
    client.send("1", "8", TOPIC, "presence", {"event": "track"})
    (event,) = client.events()
    assert isinstance(event, PresenceTracked) and event.meta == {}


def test_reply_refuses_joins_and_leaves() -> None:
    client = Client()
    request = client.join()
    with pytest.raises(TypeError):
        client.conn.reply(request)  # type: ignore[arg-type]


def test_reply_needs_a_ref_and_a_current_join() -> None:
    client = Client()
    client.joined(ref="1")
    client.send("1", None, TOPIC, "presence", {"event": "untrack"})
    assert not client.conn.reply(only(client.events(), PresenceUntracked))
    client.send("1", "5", TOPIC, "presence", {"event": "untrack"})
    event = only(client.events(), PresenceUntracked)
    client.joined(ref="9")
    client.events()
    assert not client.conn.reply(event)


# ------------------------------------------------------------------------------ access token


def test_access_token_filtering() -> None:
    client = Client(default_token="anon")
    client.joined(token=None)
    for token in (None, "anon", "sb_secret_x"):
        client.send("1", "2", TOPIC, "access_token", {"access_token": token})
    assert client.events() == []
    client.send("1", "3", TOPIC, "access_token", {"access_token": "user"})
    client.send("1", "4", TOPIC, "access_token", {"access_token": "user"})  # unchanged: dropped
    assert client.events() == [AccessTokenReceived(TOPIC, "1", "3", "user")]
    assert channel(client, TOPIC).access_token == "user"
    client.send("1", "5", TOPIC, "access_token", {"access_token": 5})
    client.send("1", "6", TOPIC, "access_token", {})
    assert [type(event) for event in client.events()] == [ProtocolViolation, MessageIgnored]
    assert client.frames() == []


def test_access_token_while_joining_updates_the_pending_join() -> None:
    client = Client()
    request = client.join()
    client.send("1", "2", TOPIC, "access_token", {"access_token": "fresh"})
    assert client.events() == [AccessTokenReceived(TOPIC, request.join_ref, "2", "fresh")]


# ------------------------------------------------------------------------- postgres_changes


def test_postgres_changes_frame_fast_path_equals_queued_frame() -> None:
    for vsn in Vsn:
        client = Client(vsn)
        client.joined(ref="4")
        encoded = change()
        fast = client.conn.postgres_changes_frame(TOPIC, [11, 12], encoded)
        client.conn.send_postgres_changes(TOPIC, [11, 12], encoded)
        (queued,) = client.conn.data_to_send()
        assert fast is not None and fast == queued.data
        decoded = orjson.loads(fast)
        if vsn is Vsn.V2:
            assert decoded[:4] == ["4", None, TOPIC, "postgres_changes"]
        else:
            assert decoded["ref"] is None and decoded["payload"]["ids"] == [11, 12]


def test_channels_view_is_read_only() -> None:
    client = Client()
    client.join("realtime:a", "1")
    assert list(client.conn.channels) == ["realtime:a"]
    with pytest.raises(TypeError):
        client.conn.channels["realtime:b"] = client.conn.channels["realtime:a"]  # type: ignore[index]
