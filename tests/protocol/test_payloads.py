"""phx_join payload validation, defaults and binding ids."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlogs.errors import InvalidJoinPayloadError
from meshlogs.protocol import payloads
from meshlogs.protocol.payloads import (
    JoinPayload,
    PostgresChangeBinding,
    binding_id,
    parse_join_payload,
)

# realtime-js 2.119 (PROTOCOL.md §8) and Python realtime 2.34 join payloads.
JS_JOIN: dict[str, Any] = {
    "config": {
        "broadcast": {"ack": False, "self": False},
        "presence": {"key": "", "enabled": False},
        "postgres_changes": [
            {"event": "INSERT", "schema": "public", "table": "run_logs", "filter": "run_id=eq.42"}
        ],
        "private": False,
        "postgres_changes_options": {"wait": True, "timeout": 5000},
    },
    "access_token": "jwt",
    "version": "realtime-js/2.119.0",
}


def test_js_join_payload() -> None:
    parsed = parse_join_payload(JS_JOIN)
    config = parsed.config
    assert parsed.access_token == "jwt"
    assert (config.broadcast.ack, config.broadcast.self_broadcast) == (False, False)
    assert (config.presence.key, config.presence.enabled) == ("", False)
    assert config.private is False
    (binding,) = config.postgres_changes
    assert (binding.event, binding.schema, binding.table, binding.filter) == (
        "INSERT",
        "public",
        "run_logs",
        "run_id=eq.42",
    )
    assert binding.raw is JS_JOIN["config"]["postgres_changes"][0]  # kept, not copied
    assert binding.raw == {
        "event": "INSERT",
        "schema": "public",
        "table": "run_logs",
        "filter": "run_id=eq.42",
    }
    assert binding.select is None


def test_defaults_without_config() -> None:
    # A payload without config (Supabase's legacy API, or a bare client) gets the defaults.
    parsed = parse_join_payload({})
    assert parsed.access_token is None
    assert parsed.config.postgres_changes == ()
    assert parsed.config.presence.enabled is True
    assert parsed.config.broadcast.ack is False
    assert parsed.config.private is False


def test_presence_enabled_missing_means_true() -> None:
    # realtime-js < 2.12 sends presence: {key: ""} without `enabled`.
    parsed = parse_join_payload({"config": {"presence": {"key": "me"}}})
    assert parsed.config.presence.enabled is True
    assert parsed.config.presence.key == "me"
    assert parse_join_payload({"config": {"presence": {"enabled": None}}}).config.presence.enabled


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("TRUE", True), ("False", False), (None, False)],
)
def test_flexible_booleans(value: object, expected: bool) -> None:
    config = {"broadcast": {"ack": value, "self": value}, "private": value}
    parsed = parse_join_payload({"config": config}).config
    assert parsed.broadcast.ack is expected
    assert parsed.broadcast.self_broadcast is expected
    assert parsed.private is expected


def test_presence_key_number_is_text() -> None:
    assert parse_join_payload({"config": {"presence": {"key": 7}}}).config.presence.key == "7"


def test_unknown_keys_are_ignored() -> None:
    parsed = parse_join_payload(
        {
            "config": {
                "broadcast": {"replay": {"since": 1, "limit": 5}, "replication_ready": "true"},
                "whatever": [1],
            },
            "user_agent": "x",
        }
    )
    assert parsed.config.broadcast.replication_ready is True


def test_tokens() -> None:
    assert parse_join_payload({"user_token": "legacy"}).access_token == "legacy"
    # Supabase prefers user_token when both are strings.
    assert parse_join_payload({"access_token": "a", "user_token": "u"}).access_token == "u"
    # API keys and empty strings fall back to the connect-time token.
    assert parse_join_payload({"access_token": "sb_publishable_x"}).access_token is None
    assert parse_join_payload({"access_token": ""}).access_token is None
    assert parse_join_payload({"access_token": None}).access_token is None


def test_binding_variants() -> None:
    parsed = parse_join_payload(
        {
            "config": {
                "postgres_changes": [
                    None,  # Supabase drops nulls before numbering
                    {"event": "*", "schema": "public"},
                    {"event": "update", "table": "workflow_runs"},
                    {"schema": "public", "table": "run_logs", "select": ["id", "seq"]},
                    {"event": "DELETE", "schema": "*", "table": "*"},
                    {"event": "INSERT", "schema": "public", "table": "t", "columns": ["a"]},
                ]
            }
        }
    )
    b = parsed.config.postgres_changes
    assert [(x.event, x.schema, x.table) for x in b] == [
        ("*", "public", "*"),
        ("UPDATE", "public", "workflow_runs"),
        ("*", "public", "run_logs"),
        ("DELETE", "*", "*"),
        ("INSERT", "public", "t"),
    ]
    assert b[2].select == ("id", "seq")
    assert b[4].select == ("a",)
    # The raw map is kept verbatim: lower-case event, no schema added.
    assert b[1].raw == {"event": "update", "table": "workflow_runs"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "payload: unable to parse, expected a map"),
        ({"config": []}, "config: unable to parse, expected a map"),
        ({"config": {"broadcast": "yes"}}, "config.broadcast: unable to parse, expected a map"),
        ({"config": {"broadcast": {"ack": 3}}}, "config.broadcast.ack: unable to parse"),
        ({"config": {"broadcast": {"self": "maybe"}}}, "config.broadcast.self: unable to parse"),
        ({"config": {"presence": {"enabled": 1}}}, "config.presence.enabled: unable to parse"),
        ({"config": {"presence": {"key": []}}}, "config.presence.key: unable to parse"),
        ({"config": {"private": "no"}}, "config.private: unable to parse, expected boolean"),
        ({"config": {"postgres_changes": {}}}, "expected an array of maps"),
        ({"config": {"postgres_changes": ["x"]}}, "config.postgres_changes[0]: unable to parse"),
        ({"config": {"postgres_changes": [{"event": "TRUNCATE", "schema": "s"}]}}, ".event: "),
        ({"config": {"postgres_changes": [{"event": 1, "schema": "s"}]}}, ".event: "),
        ({"config": {"postgres_changes": [{"schema": 1}]}}, ".schema: unable to parse"),
        ({"config": {"postgres_changes": [{"table": ["t"]}]}}, ".table: unable to parse"),
        ({"config": {"postgres_changes": [{"schema": "s", "filter": 5}]}}, ".filter: unable"),
        ({"config": {"postgres_changes": [{"event": "*"}]}}, "at least a `schema` or a `table`"),
        (
            {"config": {"postgres_changes": [{"schema": "public", "filter": "id=eq.1"}]}},
            "a filter needs an explicit schema and table",
        ),
        (
            {"config": {"postgres_changes": [{"schema": "*", "table": "*", "select": ["a"]}]}},
            "not supported for wildcard subscriptions",
        ),
        (
            {"config": {"postgres_changes": [{"schema": "s", "table": "t", "select": "a,b"}]}},
            ".select: expected a list of column name strings",
        ),
        ({"access_token": 5}, "access_token: unable to parse, expected string"),
    ],
)
def test_invalid_payloads_name_the_field(payload: object, message: str) -> None:
    with pytest.raises(InvalidJoinPayloadError) as info:
        parse_join_payload(payload)
    assert message in str(info.value)
    assert info.value.code == "InvalidJoinPayload"
    assert info.value.reason.startswith("InvalidJoinPayload: ")


def test_binding_ids_are_deterministic_nonzero_31_bit_integers() -> None:
    raw = {"event": "INSERT", "schema": "public", "table": "run_logs", "filter": "run_id=eq.42"}
    ident = binding_id(raw)
    assert isinstance(ident, int) and 0 < ident < 2**31
    # Key order does not matter; any value does.
    assert binding_id(dict(reversed(list(raw.items())))) == ident
    assert binding_id({**raw, "filter": "run_id=eq.43"}) != ident


def test_identical_bindings_share_an_id() -> None:
    binding = {"event": "INSERT", "schema": "public", "table": "run_logs"}
    parsed = parse_join_payload({"config": {"postgres_changes": [binding, dict(binding)]}})
    first, second = parsed.config.postgres_changes
    assert first.id == second.id


def test_colliding_ids_of_different_bindings_are_probed_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(payloads, "binding_id", lambda raw: 2**31 - 1)
    parsed = parse_join_payload(
        {"config": {"postgres_changes": [{"schema": "a"}, {"schema": "b"}, {"schema": "a"}]}}
    )
    ids = [binding.id for binding in parsed.config.postgres_changes]
    assert ids == [2**31 - 1, 1, 2**31 - 1]


# ------------------------------------------------------------------------------------ fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "config",
                    "broadcast",
                    "presence",
                    "postgres_changes",
                    "private",
                    "ack",
                    "self",
                    "key",
                    "enabled",
                    "event",
                    "schema",
                    "table",
                    "filter",
                    "select",
                    "columns",
                    "access_token",
                    "user_token",
                    "x",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@given(json_values)
def test_fuzz_parse_join_payload(payload: Any) -> None:
    try:
        parsed = parse_join_payload(payload)
    except InvalidJoinPayloadError:
        return
    assert isinstance(parsed, JoinPayload)
    for binding in parsed.config.postgres_changes:
        assert isinstance(binding, PostgresChangeBinding)
        assert 0 < binding.id < 2**31
        assert binding.event in ("*", "INSERT", "UPDATE", "DELETE")
        # The reply must be encodable: it echoes the raw map.
        orjson.dumps({**binding.raw, "id": binding.id})
