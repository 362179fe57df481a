"""Micro-benchmark of the protocol core: splice vs. re-encode for postgres_changes, and codecs.

Prints µs per operation. The headline rows compare building one subscriber's postgres_changes frame
by splicing (cached channel prefix + ids + the change's data encoded once) against encoding the whole
message per subscriber with orjson, for V1 and V2 sockets. Run::

    .venv/bin/python bench/protocol_bench.py [--repeat 5] [--number 20000] [--message-bytes 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import timeit
from collections.abc import Callable
from typing import Any

import orjson

from meshlogs.protocol import (
    Column,
    EncodedChange,
    RealtimeConnection,
    Vsn,
    encode_change,
    frame_prefix,
    parse_filter,
)
from meshlogs.protocol.phoenix import decode_text

TOPIC = "realtime:run-0b6f3c1e-8d7a-4f4e-9a51-2f1f0f6f9e42"
COLUMNS = [
    Column("id", "int8"),
    Column("run_id", "uuid"),
    Column("seq", "int8"),
    Column("ts", "timestamptz"),
    Column("level", "text"),
    Column("step", "text"),
    Column("message", "text"),
    Column("attrs", "jsonb"),
]


def make_record(rng: random.Random, message_bytes: int) -> dict[str, Any]:
    return {
        "id": rng.randrange(1, 10**9),
        "run_id": "0b6f3c1e-8d7a-4f4e-9a51-2f1f0f6f9e42",
        "seq": rng.randrange(1, 10**6),
        "ts": dt.datetime(2026, 9, 1, 10, 0, 0, rng.randrange(10**6), tzinfo=dt.UTC),
        "level": rng.choice(["debug", "info", "warn", "error"]),
        "step": "build",
        "message": "".join(rng.choice("abcdefghij klmnop") for _ in range(message_bytes)),
        "attrs": {"attempt": 1, "host": "runner-7"},
    }


def bench(label: str, func: Callable[[], object], number: int, repeat: int) -> tuple[str, float]:
    best = min(timeit.repeat(func, number=number, repeat=repeat))
    return label, best / number * 1e6


def change_rows(message_bytes: int, seed: int, number: int, repeat: int) -> list[tuple[str, float]]:
    """Per-subscriber cost of one postgres_changes frame, three ways, for one message size."""
    rng = random.Random(seed)
    record = make_record(rng, message_bytes)
    commit = dt.datetime(2026, 9, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)
    ids = [57806073]

    def encode_once() -> EncodedChange:
        return encode_change(
            schema="public",
            table="run_logs",
            type="INSERT",
            commit_timestamp=commit,
            columns=COLUMNS,
            record=record,
        )

    change = encode_once()
    data_obj = orjson.loads(change.data)  # the same data as plain JSON values, for the baseline
    prefixes = {vsn: frame_prefix(vsn, TOPIC, "6") for vsn in Vsn}

    def row_v2() -> bytes:
        # Without encode-once: build and encode the data from the typed row for every subscriber.
        return encode_once().frame(prefixes[Vsn.V2], ids, Vsn.V2)

    def full_v2() -> bytes:
        return orjson.dumps(["6", None, TOPIC, "postgres_changes", {"ids": ids, "data": data_obj}])

    def full_v1() -> bytes:
        payload = {"ids": ids, "data": data_obj}
        return orjson.dumps({"topic": TOPIC, "event": "postgres_changes", "payload": payload, "ref": None})

    def splice_v2() -> bytes:
        return change.frame(prefixes[Vsn.V2], ids, Vsn.V2)

    def splice_v1() -> bytes:
        return change.frame(prefixes[Vsn.V1], ids, Vsn.V1)

    assert orjson.loads(splice_v2()) == orjson.loads(full_v2()) == orjson.loads(row_v2())
    assert orjson.loads(splice_v1()) == orjson.loads(full_v1())

    conn = RealtimeConnection(Vsn.V2, now=0.0)
    binding = {"event": "INSERT", "schema": "public", "table": "run_logs"}
    join = ["6", "6", TOPIC, "phx_join", {"config": {"postgres_changes": [binding]}}]
    conn.receive_text(orjson.dumps(join), 0.0)
    conn.accept_join(TOPIC, "6")
    conn.data_to_send()

    def connection_frame() -> bytes | None:
        return conn.postgres_changes_frame(TOPIC, ids, change)

    return [
        bench("frame size, bytes (V2)", lambda: None, 1, 1)[:1] + (float(len(splice_v2())),),
        bench("V2 re-encode from the typed row per subscriber", row_v2, number, repeat),
        bench("V2 orjson.dumps of the whole message per subscriber", full_v2, number, repeat),
        bench("V2 splice: prefix + ids + shared data", splice_v2, number, repeat),
        bench("V2 splice via connection.postgres_changes_frame()", connection_frame, number, repeat),
        bench("V1 orjson.dumps of the whole message per subscriber", full_v1, number, repeat),
        bench("V1 splice: prefix + ids + shared data", splice_v1, number, repeat),
        bench("encode_change (once per change)", encode_once, number, repeat),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (best is reported)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[200, 4000], help="log message sizes in bytes"
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    n, r = args.number, args.repeat

    columns = [change_rows(size, args.seed, n, r) for size in args.sizes]
    heartbeat = b'[null,"7","phoenix","heartbeat",{}]'
    flt = parse_filter("run_id=eq.0B6F3C1E-8D7A-4F4E-9A51-2F1F0F6F9E42", {"run_id": "uuid"})
    assert flt is not None
    row = {"run_id": "0b6f3c1e-8d7a-4f4e-9a51-2f1f0f6f9e42"}
    others = [
        bench("decode_text heartbeat (V2)", lambda: decode_text(heartbeat, Vsn.V2, max_size=1 << 20), n, r),
        bench("Filter.matches uuid eq", lambda: flt.matches(row), n, r),
    ]

    labels = [label for label, _ in columns[0]]
    width = max(len(label) for label in labels + [label for label, _ in others])
    heads = "".join(f"  {f'{size} B msg':>11}" for size in args.sizes)
    print(f"µs per operation, best of {r} x {n} calls\n")
    print(f"{'postgres_changes frame per subscriber':<{width}}{heads}")
    print("-" * width + "  -----------" * len(args.sizes))
    for index, label in enumerate(labels):
        cells = "".join(f"  {column[index][1]:11.3f}" for column in columns)
        if index == 0:
            cells = "".join(f"  {int(column[index][1]):11d}" for column in columns)
        print(f"{label:<{width}}{cells}")
    print()
    for label, micros in others:
        print(f"{label:<{width}}  {micros:11.3f}")
    print()
    for size, column in zip(args.sizes, columns, strict=True):
        values = dict(column)
        row_ratio = values[labels[1]] / values[labels[3]]
        dumps_ratio = values[labels[2]] / values[labels[3]]
        print(
            f"{size} B message: re-encoding the row / splice = {row_ratio:.1f}x, "
            f"orjson.dumps per subscriber / splice = {dumps_ratio:.1f}x"
        )


if __name__ == "__main__":
    main()
