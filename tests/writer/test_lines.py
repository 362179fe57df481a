"""Line encoding: hygiene, truncation (byte-identical to the SQL function), validation."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import orjson
import psycopg
import pytest

from meshlogs.writer.lines import LineEncoder, clean_text, truncate_message
from meshlogs.writer.masking import SecretMasker


def enc(**kwargs: Any) -> LineEncoder:
    return LineEncoder(kwargs.pop("max_line_bytes", 65536), SecretMasker(kwargs.pop("secrets", ())))


def decode(line: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads(line)
    return obj


def test_clean_text_replaces_nul_and_lone_surrogates() -> None:
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("a\ud800b") == "a\ufffdb"
    assert clean_text("x\udfff") == "x\ufffd"
    assert clean_text("\ud83d\ude00") == "\U0001f600"  # a pair given as two code points is rejoined
    ok = "plain ✓"
    assert clean_text(ok) is ok


def test_bytes_messages_are_decoded_with_replacement() -> None:
    line = decode(enc().encode(b"caf\xc3\xa9 \xff\xfe end\x00"))
    assert line["message"] == "café \ufffd\ufffd end\ufffd"


def test_levels_are_validated_and_normalized() -> None:
    e = enc()
    assert decode(e.encode("x", level="warning"))["level"] == "warn"
    for level in ("debug", "info", "warn", "error"):
        assert decode(e.encode("x", level=level))["level"] == level
    with pytest.raises(ValueError, match="level"):
        e.encode("x", level="fatal")


def test_step_is_cleaned_masked_and_bounded() -> None:
    e = enc(secrets=["s3cret"])
    assert decode(e.encode("x", step="deploy s3cret\x00"))["step"] == "deploy ***\ufffd"
    e.encode("x", step="s" * 200)
    with pytest.raises(ValueError, match="200"):
        e.encode("x", step="s" * 201)


def test_attrs_are_cleaned_masked_recursively_and_made_json_safe() -> None:
    e = enc(secrets=["hunter22"])

    class Thing:
        def __str__(self) -> str:
            return "thing hunter22"

    attrs: dict[Any, Any] = {
        "pw": "hunter22",
        "nested": {"list": ["a", "xhunter22x", {"deep": "hunter22"}], "n": 1, "f": 1.5, "b": True},
        "nul\x00key": "v\x00",
        "obj": Thing(),
        "big": 2**80,
        "when": dt.date(2026, 1, 2),
        5: "int key",
    }
    got = decode(e.encode("x", attrs=attrs))["attrs"]
    assert got == {
        "pw": "***",
        "nested": {"list": ["a", "x***x", {"deep": "***"}], "n": 1, "f": 1.5, "b": True},
        "nul\ufffdkey": "v\ufffd",
        "obj": "thing ***",
        "big": str(2**80),
        "when": "2026-01-02",
        "5": "int key",
    }


def test_attrs_without_secrets_still_lose_nul_and_surrogates() -> None:
    got = decode(enc().encode("x", attrs={"a": "x\x00", "b": ["\ud800"]}))["attrs"]
    assert got == {"a": "x\ufffd", "b": ["\ufffd"]}


def test_cyclic_attrs_are_bounded() -> None:
    loop: list[Any] = []
    loop.append(loop)
    got = decode(enc().encode("x", attrs={"loop": loop}))["attrs"]
    assert isinstance(got["loop"], list)


def test_attrs_must_be_a_mapping_and_fit() -> None:
    e = enc(max_line_bytes=1024)
    with pytest.raises(TypeError):
        e.encode("x", attrs=["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attrs must be at most 1024 bytes"):
        e.encode("x", attrs={"blob": "y" * 2000})


def test_timestamps() -> None:
    e = enc()
    aware = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert decode(e.encode("x", ts=aware))["ts"] == "2026-05-01T12:00:00+02:00"
    assert decode(e.encode("x", ts=dt.datetime(2026, 5, 1, 12, 0)))["ts"] == "2026-05-01T12:00:00+00:00"
    assert decode(e.encode("x", ts=0))["ts"] == "1970-01-01T00:00:00+00:00"
    assert decode(e.encode("x", ts="2026-05-01T12:00:00Z"))["ts"] == "2026-05-01T12:00:00+00:00"
    before = dt.datetime.now(dt.UTC)
    stamped = dt.datetime.fromisoformat(decode(e.encode("x"))["ts"])
    assert before <= stamped <= dt.datetime.now(dt.UTC)
    with pytest.raises(ValueError, match="ISO 8601"):
        e.encode("x", ts="yesterday")
    with pytest.raises(TypeError):
        e.encode("x", ts=True)


def test_message_type_is_checked() -> None:
    with pytest.raises(TypeError):
        enc().encode(42)  # type: ignore[arg-type]


def test_masking_happens_before_truncation() -> None:
    secret = "TOPSECRETVALUE"
    e = enc(max_line_bytes=1024, secrets=[secret])
    # The secret straddles the cut: unmasked, its head would survive truncation.
    text = "x" * (1024 - 40 - 5) + secret + "y" * 2000
    line = decode(e.encode(text))
    assert "TOPSE" not in line["message"]
    assert line["message"].endswith("bytes]")


def random_text(rng: random.Random, n: int) -> str:
    alphabet = ["a", "b", " ", "é", "ß", "€", "✓", "中", "😀", "\U0001f9ea", "\n"]
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_truncation_is_byte_identical_to_the_sql_function(db: psycopg.Connection[Any]) -> None:
    rng = random.Random(42)
    cases: list[tuple[str, int]] = []
    for _ in range(300):
        limit = rng.choice([1024, 1025, 1100, 2000, 4096])
        cases.append((random_text(rng, rng.randint(limit // 4 - 5, limit + 600)), limit))
    cases += [("a" * 5000, 1024), ("😀" * 1000, 1024), ("€" * 342, 1024), ("é" * 513, 1024)]
    for text, limit in cases:
        row = db.execute("select meshlogs.truncate_message(%s, %s)", (text, limit)).fetchone()
        assert row is not None
        ours = truncate_message(text, limit)
        assert ours == row[0], (len(text), limit)
        assert len(ours.encode()) <= limit


def test_truncated_message_carries_the_database_marker() -> None:
    out = truncate_message("z" * 70000, 65536)
    assert out.startswith("z" * 100)
    assert out.endswith(f" … [truncated {70000 - (65536 - 40)} bytes]")
    assert len(out.encode()) <= 65536
