"""postgres_changes: the data object as Supabase builds it, and splice == full encode."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlogs.protocol.changes import (
    Column,
    encode_change,
    encode_ids,
    format_commit_timestamp,
    frame_prefix,
)
from meshlogs.protocol.phoenix import Vsn

COLUMNS = [Column("id", "int8"), Column("run_id", "int8"), Column("line", "text")]
COMMIT = dt.datetime(2026, 9, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)


def test_insert_data_matches_protocol_example() -> None:
    change = encode_change(
        schema="public",
        table="run_logs",
        type="INSERT",
        commit_timestamp=COMMIT,
        columns=COLUMNS,
        record={"id": 7, "run_id": 42, "line": "hello"},
        old_record={"ignored": True},
    )
    assert orjson.loads(change.data) == {
        "schema": "public",
        "table": "run_logs",
        "commit_timestamp": "2026-09-01T10:00:00.123Z",
        "type": "INSERT",
        "errors": None,
        "columns": [
            {"name": "id", "type": "int8"},
            {"name": "run_id", "type": "int8"},
            {"name": "line", "type": "text"},
        ],
        "record": {"id": 7, "run_id": 42, "line": "hello"},
    }


def test_update_and_delete_keys() -> None:
    update = orjson.loads(
        encode_change(
            schema="s",
            table="t",
            type="UPDATE",
            commit_timestamp=COMMIT,
            columns=COLUMNS,
            record={"id": 1},
            old_record=None,
        ).data
    )
    assert update["record"] == {"id": 1}
    assert update["old_record"] == {}  # never null
    delete = orjson.loads(
        encode_change(
            schema="s",
            table="t",
            type="DELETE",
            commit_timestamp=COMMIT,
            columns=COLUMNS,
            record={"id": 1},
            old_record={"id": 1},
            errors=["Error 401: Unauthorized"],
        ).data
    )
    assert "record" not in delete
    assert delete["old_record"] == {"id": 1}
    assert delete["errors"] == ["Error 401: Unauthorized"]


def test_values_are_written_as_to_jsonb_writes_them() -> None:
    record = {
        "ts": dt.datetime(2026, 9, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "local": dt.datetime(2026, 9, 1, 10, 0),
        "day": dt.date(2026, 9, 1),
        "amount": Decimal("12345678901234567890.000000001"),
        "nan": Decimal("NaN"),
        "inf": float("inf"),
        "neg": float("-inf"),
        "fnan": float("nan"),
        "id": uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        "blob": b"\x01\xff",
        "attrs": {"nested": [1, Decimal("2.5")], "ok": True},
        "none": None,
        "interval": dt.timedelta(days=1),
    }
    change = encode_change(
        schema="s", table="t", type="INSERT", commit_timestamp=COMMIT, columns=[], record=record
    )
    assert b'"amount":12345678901234567890.000000001' in change.data
    assert orjson.loads(change.data)["record"] == {
        "ts": "2026-09-01T10:00:00.123456+00:00",
        "local": "2026-09-01T10:00:00",
        "day": "2026-09-01",
        "amount": pytest.approx(12345678901234567890.000000001),
        "nan": "NaN",
        "inf": "Infinity",
        "neg": "-Infinity",
        "fnan": "NaN",
        "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "blob": "\\x01ff",
        "attrs": {"nested": [1, 2.5], "ok": True},
        "none": None,
        "interval": "1 day, 0:00:00",
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (COMMIT, "2026-09-01T10:00:00.123Z"),
        (
            dt.datetime(2026, 9, 1, 12, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-09-01T10:00:00.999Z",
        ),
        (dt.datetime(2026, 9, 1, 10), "2026-09-01T10:00:00.000Z"),
        ("2026-09-01T10:00:00.123Z", "2026-09-01T10:00:00.123Z"),
    ],
)
def test_commit_timestamp(value: dt.datetime | str, text: str) -> None:
    assert format_commit_timestamp(value) == text


def test_encode_ids() -> None:
    assert encode_ids([57806073]) == b"[57806073]"
    assert encode_ids([1, 2, 3]) == b"[1,2,3]"


def _full_encode(vsn: Vsn, topic: str, join_ref: str | None, ids: list[int], data: Any) -> Any:
    payload = {"ids": ids, "data": data}
    if vsn is Vsn.V2:
        return [join_ref, None, topic, "postgres_changes", payload]
    return {"topic": topic, "event": "postgres_changes", "payload": payload, "ref": None}


records = st.dictionaries(
    st.text(max_size=10),
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    max_size=6,
)


@given(
    vsn=st.sampled_from(Vsn),
    topic=st.text(max_size=40),
    join_ref=st.none() | st.text(max_size=8),
    ids=st.lists(st.integers(1, 2**31 - 1), min_size=1, max_size=4),
    record=records,
    kind=st.sampled_from(["INSERT", "UPDATE", "DELETE"]),
)
def test_splice_equals_full_encode(
    vsn: Vsn, topic: str, join_ref: str | None, ids: list[int], record: dict[str, Any], kind: Any
) -> None:
    change = encode_change(
        schema="public",
        table="run_logs",
        type=kind,
        commit_timestamp=COMMIT,
        columns=COLUMNS,
        record=record,
        old_record=record,
    )
    frame = change.frame(frame_prefix(vsn, topic, join_ref), ids, vsn)
    frame.decode("utf-8")  # a valid text frame
    expected_join_ref = join_ref if vsn is Vsn.V2 else None
    assert orjson.loads(frame) == _full_encode(vsn, topic, expected_join_ref, ids, orjson.loads(change.data))
