"""Oracle test: random lines, random runs, random flushes; the table must equal what was written."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import psycopg

from meshlogs.config import Settings
from meshlogs.writer import AsyncLogWriter, LogWriter
from meshlogs.writer.lines import clean_text
from tests.writer.conftest import stored

ALPHABET = [
    "a",
    "b",
    "Z",
    " ",
    "\t",
    "é",
    "€",
    "中",
    "😀",
    "\x1b[31m",
    "\x1b[0m",
    "\\",
    '"',
    "\n",
    "\x00",
    "\ud800",
]
LEVELS = ["debug", "info", "warn", "warning", "error"]


def random_line(rng: random.Random) -> dict[str, Any]:
    line: dict[str, Any] = {
        "message": "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60))),
        "level": rng.choice(LEVELS),
    }
    if rng.random() < 0.3:
        line["step"] = rng.choice(["build", "test", "déploy", "s\x00tep"])
    if rng.random() < 0.3:
        line["attrs"] = {"n": rng.randint(-(2**40), 2**40), "s": rng.choice(ALPHABET), "l": [1, None, True]}
    return line


def expected_row(line: dict[str, Any]) -> tuple[Any, ...]:
    attrs = line.get("attrs") or {}
    return (
        "warn" if line["level"] == "warning" else line["level"],
        clean_text(line["step"]) if "step" in line else None,
        clean_text(line["message"]),
        {k: clean_text(v) if isinstance(v, str) else v for k, v in attrs.items()},
    )


async def test_random_writes_match_the_table(
    db_url: str, db: psycopg.Connection[Any], runs: Callable[[int], list[str]]
) -> None:
    rng = random.Random(20261203)
    ids = runs(5)
    expected: dict[str, list[dict[str, Any]]] = {r: [] for r in ids}
    writer = AsyncLogWriter(
        db_url, batch_lines=rng.randint(5, 50), batch_bytes=rng.randint(500, 5000), flush_interval=0.01
    )
    async with writer:
        for _ in range(4000):
            run = rng.choice(ids)
            line = random_line(rng)
            await writer.write(run, **line)
            expected[run].append(line)
            roll = rng.random()
            if roll < 0.002:
                await writer.flush()
            elif roll < 0.01:
                await asyncio.sleep(rng.random() * 0.02)
    for run in ids:
        rows = stored(db, run)
        assert [r["seq"] for r in rows] == list(range(1, len(expected[run]) + 1))
        got = [(r["level"], r["step"], r["message"], r["attrs"]) for r in rows]
        assert got == [expected_row(line) for line in expected[run]]


def test_from_settings(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    settings = Settings.load({}, database_url=db_url, writer_batch_lines=3, writer_flush_interval=0.5)
    writer = LogWriter.from_settings(settings)
    with writer:
        for i in range(7):
            writer.write(run, str(i))
    assert [r["message"] for r in stored(db, run)] == [str(i) for i in range(7)]
    assert writer.stats().batches_delivered == 3
    async_writer = AsyncLogWriter.from_settings(settings, batch_lines=9)
    assert async_writer._spool.batch_lines == 9 and async_writer._spool.flush_interval == 0.5
