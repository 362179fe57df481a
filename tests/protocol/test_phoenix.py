"""Frame codecs: V1 objects, V2 arrays, binary kinds 3 and 4, vsn negotiation, size limits."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlogs.errors import (
    FrameError,
    FrameTooLargeError,
    MalformedFrameError,
    UnsupportedVersionError,
)
from meshlogs.protocol.phoenix import (
    Message,
    PayloadEncoding,
    UserBroadcast,
    UserBroadcastPush,
    Vsn,
    decode_binary,
    decode_text,
    decode_user_broadcast,
    encode_text,
    encode_user_broadcast,
    encode_user_broadcast_push,
    negotiate_vsn,
)

MAX = 1 << 20

# ------------------------------------------------------------------------------------------ vsn


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, Vsn.V1), ("1.0.0", Vsn.V1), ("2.0.0", Vsn.V2), ("1.0.3", Vsn.V1), ("2.0.1", Vsn.V2)],
)
def test_negotiate_vsn(requested: str | None, expected: Vsn) -> None:
    # Absent means 1.0.0: Python realtime <= 2.30 sends no vsn and speaks V1.
    assert negotiate_vsn(requested) is expected


@pytest.mark.parametrize("requested", ["", "3.0.0", "1.1.0", "2", "v2.0.0", "2.0.0-rc", "abc"])
def test_negotiate_vsn_rejects_unknown(requested: str) -> None:
    with pytest.raises(UnsupportedVersionError) as info:
        negotiate_vsn(requested)
    assert info.value.code == "UnsupportedVersion"
    assert "1.0.0, 2.0.0" in str(info.value)


# ------------------------------------------------------------------------------------ V1 / V2


def test_decode_v2_array() -> None:
    raw = '["6","7","realtime:run-42","phx_join",{"config":{}}]'
    assert decode_text(raw, Vsn.V2, max_size=MAX) == Message(
        "6", "7", "realtime:run-42", "phx_join", {"config": {}}
    )


def test_decode_v2_accepts_longer_arrays_and_bytes() -> None:
    # The Supabase server matches [join_ref, ref, topic, event, payload | _].
    raw = b'[null,"7","phoenix","heartbeat",{},"extra"]'
    assert decode_text(raw, Vsn.V2, max_size=MAX) == Message(None, "7", "phoenix", "heartbeat", {})


def test_decode_v1_object_with_missing_or_null_refs() -> None:
    # JS V1 heartbeats omit join_ref; Python sends ref null and join_ref null.
    js = '{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"3"}'
    py = '{"event":"heartbeat","payload":{},"topic":"phoenix","ref":null,"join_ref":null}'
    assert decode_text(js, Vsn.V1, max_size=MAX) == Message(None, "3", "phoenix", "heartbeat", {})
    assert decode_text(py, Vsn.V1, max_size=MAX) == Message(None, None, "phoenix", "heartbeat", {})


@pytest.mark.parametrize(
    ("vsn", "raw", "fragment"),
    [
        (Vsn.V2, "not json", "not valid JSON"),
        (Vsn.V2, "", "not valid JSON"),
        (Vsn.V2, '{"topic":"x"}', "JSON array"),
        (Vsn.V2, '["1","2","t","e"]', "JSON array"),
        (Vsn.V2, '[1,"2","t","e",{}]', "join_ref must be a string"),
        (Vsn.V2, '["1",2,"t","e",{}]', "ref must be a string"),
        (Vsn.V2, '["1","2",null,"e",{}]', "topic must be a string"),
        (Vsn.V2, '["1","2","t",3,{}]', "event must be a string"),
        (Vsn.V1, "[]", "JSON object"),
        (Vsn.V1, '{"topic":"t","event":"e"}', "no payload"),
        (Vsn.V1, '{"topic":"t","payload":{}}', "event must be a string"),
        (Vsn.V2, '"\\ud800"', "not valid JSON"),
        (Vsn.V2, "[" * 5000 + "]" * 5000, "not valid JSON"),
    ],
)
def test_decode_text_malformed(vsn: Vsn, raw: str, fragment: str) -> None:
    with pytest.raises(MalformedFrameError) as info:
        decode_text(raw, vsn, max_size=MAX)
    assert fragment in str(info.value)
    assert info.value.code == "MalformedFrame"


def test_decode_text_invalid_utf8_bytes() -> None:
    with pytest.raises(MalformedFrameError):
        decode_text(b'["1","2","t","e",{"a":"\xff"}]', Vsn.V2, max_size=MAX)


def test_decode_text_size_limit_counts_utf8_bytes() -> None:
    frame = '[null,"1","phoenix","heartbeat",{"x":"' + "é" * 20 + '"}]'
    size = len(frame.encode())
    assert decode_text(frame, Vsn.V2, max_size=size).event == "heartbeat"
    with pytest.raises(FrameTooLargeError) as info:
        decode_text(frame, Vsn.V2, max_size=size - 1)
    assert info.value.code == "FrameTooLarge"
    with pytest.raises(FrameTooLargeError):
        decode_text(frame.encode(), Vsn.V2, max_size=size - 1)


def test_encode_v2_reply_and_push_shapes() -> None:
    reply = Message("6", "7", "realtime:x", "phx_reply", {"status": "ok", "response": {}})
    push = Message("6", None, "realtime:x", "system", {"a": 1})
    assert encode_text(reply, Vsn.V2) == (b'["6","7","realtime:x","phx_reply",{"status":"ok","response":{}}]')
    assert encode_text(push, Vsn.V2) == b'["6",null,"realtime:x","system",{"a":1}]'


def test_encode_v1_has_ref_and_no_join_ref() -> None:
    # The Python client rejects frames without "ref"; Phoenix's V1 serializer never sends join_ref.
    data = orjson.loads(encode_text(Message("6", None, "realtime:x", "system", {}), Vsn.V1))
    assert data == {"topic": "realtime:x", "event": "system", "payload": {}, "ref": None}
    assert list(data) == ["topic", "event", "payload", "ref"]


# ------------------------------------------------------------------------------------- binary

# PROTOCOL.md §1.3: send({type:'broadcast',event:'ping',payload:{n:1}}), join_ref "6", ref "7".
KIND3_EXAMPLE = (
    bytes.fromhex("03 01 01 0f 04 00 01 36 37")
    + b"realtime:run-42"
    + b"ping"
    + (bytes.fromhex("7b226e223a317d"))
)


def test_decode_kind3_example_from_protocol_doc() -> None:
    push = decode_binary(KIND3_EXAMPLE, max_size=MAX)
    assert push == UserBroadcastPush(
        join_ref="6",
        ref="7",
        topic="realtime:run-42",
        user_event="ping",
        metadata={},
        encoding=PayloadEncoding.JSON,
        payload=b'{"n":1}',
    )
    assert encode_user_broadcast_push(push) == KIND3_EXAMPLE


def test_decode_kind3_empty_refs_metadata_and_raw_payload() -> None:
    meta = b'{"persist":true}'
    data = bytes((3, 0, 0, 3, 1, len(meta), 0)) + b"r:x" + b"e" + meta + b"\x00\xff\x01"
    push = decode_binary(data, max_size=MAX)
    assert push.join_ref is None and push.ref is None
    assert push.metadata == {"persist": True}
    assert push.encoding is PayloadEncoding.BINARY
    assert push.payload == b"\x00\xff\x01"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (bytes((4, 1, 1, 0, 1)) + b"te{}", "kind 4 is not accepted"),
        (bytes((0, 1, 1, 1)) + b"jte", "kind 0"),
        (bytes((3, 1, 1, 1)), "header"),
        (bytes((3, 1, 1, 1, 1, 0, 1)) + b"jr", "topic"),
        (bytes((3, 0, 0, 1, 1, 0, 7)) + b"te{}", "encoding must be 0 or 1"),
        (bytes((3, 0, 0, 1, 1, 0, 1)) + b"\xfft{}", "UTF-8"),
        (bytes((3, 0, 0, 1, 1, 2, 1)) + b"te[]{}", "metadata must be a JSON object"),
        (bytes((3, 0, 0, 1, 1, 2, 1)) + b"te{x{}", "metadata is not valid JSON"),
        (bytes((3, 0, 0, 1, 1, 0, 1)) + b"te{bad", "does not parse"),
    ],
)
def test_decode_binary_malformed(data: bytes, fragment: str) -> None:
    with pytest.raises(MalformedFrameError) as info:
        decode_binary(data, max_size=MAX)
    assert fragment in str(info.value)


def test_decode_binary_too_large() -> None:
    with pytest.raises(FrameTooLargeError):
        decode_binary(KIND3_EXAMPLE, max_size=len(KIND3_EXAMPLE) - 1)


def test_encode_kind4_layout() -> None:
    data = encode_user_broadcast(
        "realtime:run-42", "ping", b'{"n":1}', encoding=PayloadEncoding.JSON, metadata=b'{"id":"a"}'
    )
    assert data[:5] == bytes((4, 15, 4, 10, 1))
    assert data[5:] == b'realtime:run-42ping{"id":"a"}{"n":1}'
    assert decode_user_broadcast(data, max_size=MAX) == UserBroadcast(
        "realtime:run-42", "ping", {"id": "a"}, PayloadEncoding.JSON, b'{"n":1}'
    )


def test_encode_kind4_refuses_long_header_fields() -> None:
    with pytest.raises(ValueError, match="255"):
        encode_user_broadcast("t" * 256, "e", b"{}", encoding=PayloadEncoding.JSON)
    # 255 bytes of UTF-8 is the limit, not 255 characters.
    with pytest.raises(ValueError):
        encode_user_broadcast("t", "é" * 128, b"{}", encoding=PayloadEncoding.JSON)


def test_decode_user_broadcast_rejects_other_kinds() -> None:
    with pytest.raises(MalformedFrameError):
        decode_user_broadcast(KIND3_EXAMPLE, max_size=MAX)
    with pytest.raises(MalformedFrameError):
        decode_user_broadcast(bytes((4, 1)), max_size=MAX)


# ----------------------------------------------------------------------------------- property

refs = st.none() | st.text(max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
messages = st.builds(
    Message,
    join_ref=refs,
    ref=refs,
    topic=st.text(max_size=40),
    event=st.text(max_size=20),
    payload=json_values,
)


@given(messages)
def test_v2_text_round_trip(message: Message) -> None:
    assert decode_text(encode_text(message, Vsn.V2), Vsn.V2, max_size=MAX) == message


@given(messages)
def test_v1_text_round_trip_drops_join_ref(message: Message) -> None:
    decoded = decode_text(encode_text(message, Vsn.V1), Vsn.V1, max_size=MAX)
    assert decoded == Message(None, message.ref, message.topic, message.event, message.payload)


def _short_text(max_bytes: int = 255) -> st.SearchStrategy[str]:
    return st.text(max_size=60).filter(lambda text: len(text.encode()) <= max_bytes)


@given(
    join_ref=_short_text(),
    ref=_short_text(),
    topic=_short_text(),
    event=_short_text(),
    metadata=st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=3),
    payload=st.binary(max_size=50) | json_values.map(orjson.dumps),
)
def test_kind3_round_trip(
    join_ref: str, ref: str, topic: str, event: str, metadata: dict[str, int], payload: bytes
) -> None:
    try:
        orjson.loads(payload)
        encoding = PayloadEncoding.JSON
    except orjson.JSONDecodeError:
        encoding = PayloadEncoding.BINARY
    push = UserBroadcastPush(join_ref or None, ref or None, topic, event, metadata, encoding, payload)
    assert decode_binary(encode_user_broadcast_push(push), max_size=MAX) == push


@given(topic=_short_text(), event=_short_text(), payload=st.binary(max_size=50))
def test_kind4_round_trip(topic: str, event: str, payload: bytes) -> None:
    data = encode_user_broadcast(topic, event, payload, encoding=PayloadEncoding.BINARY)
    assert decode_user_broadcast(data, max_size=MAX) == UserBroadcast(
        topic, event, None, PayloadEncoding.BINARY, payload
    )


# ------------------------------------------------------------------------------------ fuzzing


@given(st.binary(max_size=300) | st.text(max_size=300), st.sampled_from(Vsn))
def test_fuzz_decode_text(data: bytes | str, vsn: Vsn) -> None:
    try:
        message = decode_text(data, vsn, max_size=200)
    except FrameError:
        return
    assert isinstance(message.topic, str) and isinstance(message.event, str)


@given(st.binary(max_size=300))
def test_fuzz_decode_binary(data: bytes) -> None:
    for decode in (decode_binary, decode_user_broadcast):
        with contextlib.suppress(FrameError):
            decode(data, max_size=200)


@given(st.binary(min_size=1, max_size=200).map(lambda rest: bytes((3,)) + rest))
def test_fuzz_decode_kind3_prefix(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_binary(data, max_size=1000)


@given(st.lists(st.one_of(json_values, st.floats()), min_size=0, max_size=7))
def test_fuzz_decode_v2_arrays_of_anything(items: list[object]) -> None:
    try:
        raw = orjson.dumps(items)
    except TypeError:
        return
    with contextlib.suppress(FrameError):
        decode_text(raw, Vsn.V2, max_size=MAX)
