"""What we send passes the official clients' own checks (PROTOCOL.md §2.3, §3.2, §7.2).

The Python ``realtime`` 2.34.1 client validates every inbound V1 frame with pydantic and drops
frames that fail; its models are imported and applied to our frames here. The binding-matching rules
of realtime-js (strict positional comparison of event/schema/table/filter) are re-stated from its
source, since running Node is not a pure test.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from realtime.message import ServerMessageAdapter

from meshlogs.protocol import Broadcast, Column, Vsn, encode_change

from .helpers import RUN_LOGS_BINDING, TOPIC, Client, join_payload


def _v1_session_frames() -> list[dict[str, Any]]:
    client = Client(Vsn.V1)
    request = client.join(payload=join_payload(RUN_LOGS_BINDING, presence_enabled=True))
    client.conn.accept_join(TOPIC, request.join_ref, presence_state={"k": {"metas": [{"phx_ref": "F1"}]}})
    ids = [request.config.postgres_changes[0].id]
    change = encode_change(
        schema="public",
        table="run_logs",
        type="INSERT",
        commit_timestamp=dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
        columns=[Column("id", "int8")],
        record={"id": 7},
    )
    client.conn.send_postgres_changes(TOPIC, ids, change)
    client.conn.send_broadcast(TOPIC, Broadcast.create("ping", {"n": 1}))
    client.conn.send_presence_diff(TOPIC, {"k": {"metas": [{"phx_ref": "F2"}]}}, {})
    client.conn.send_system(TOPIC, status="error", message="boom")
    client.send(None, None, "phoenix", "heartbeat", {})
    client.send("1", "3", TOPIC, "phx_leave", {})
    frames: list[dict[str, Any]] = client.frames()
    client.joined("realtime:b", "4")
    client.conn.error_channel("realtime:b")
    client.send("5", "5", "realtime:c", "phx_join", join_payload())
    client.conn.reject_join("realtime:c", "5", "Unauthorized: no")
    return frames + client.frames()


def test_python_client_accepts_every_v1_frame_we_send() -> None:
    frames = _v1_session_frames()
    events = [frame["event"] for frame in frames]
    assert events == [
        "phx_reply",
        "presence_state",
        "system",
        "postgres_changes",
        "broadcast",
        "presence_diff",
        "system",
        "phx_reply",
        "phx_reply",
        "phx_close",
        "phx_error",
        "phx_reply",
    ]
    for frame in frames:
        assert "ref" in frame
        ServerMessageAdapter.validate_python(frame)  # raises on anything the client would drop


def _js_bindings_match(client_bindings: list[dict[str, Any]], server: list[dict[str, Any]]) -> bool:
    # realtime-js >= 2.87 RealtimeChannel._updatePostgresBindings: positional, strict, null ≡ absent.
    for index, binding in enumerate(client_bindings):
        if index >= len(server):
            return False
        other = server[index]
        if other.get("event") != binding.get("event"):
            return False
        for key in ("schema", "table", "filter"):
            if other.get(key) != binding.get(key):
                return False
        if not other.get("id"):
            return False
    return True


@pytest.mark.parametrize(
    "bindings",
    [
        [RUN_LOGS_BINDING],
        [{"event": "insert", "schema": "public", "table": "run_logs"}],
        [
            {"event": "*", "schema": "public"},
            {"event": "UPDATE", "schema": "public", "table": "workflow_runs"},
        ],
    ],
)
def test_js_binding_check_passes(bindings: list[dict[str, Any]]) -> None:
    for vsn in Vsn:
        client = Client(vsn)
        request = client.join(payload=join_payload(*bindings))
        client.conn.accept_join(TOPIC, request.join_ref)
        reply = client.frames()[0]
        payload = reply[4] if vsn is Vsn.V2 else reply["payload"]
        server = payload["response"]["postgres_changes"]
        assert _js_bindings_match(bindings, server)
        # legacy realtime-js < 2.87 compares with === on the raw objects: no extra keys allowed
        assert [{k: v for k, v in item.items() if k != "id"} for item in server] == bindings


def test_binding_ids_survive_json_as_integers() -> None:
    client = Client(Vsn.V2)
    request = client.join(payload=join_payload(RUN_LOGS_BINDING))
    client.conn.accept_join(TOPIC, request.join_ref)
    raw = client.conn.data_to_send()[0].data
    (item,) = orjson.loads(raw)[4]["response"]["postgres_changes"]
    assert type(item["id"]) is int and item["id"] != 0
