"""What ``meshlogs tail`` prints: rows normalized from either source, filters, text and JSON lines. Pure.

Live rows (realtime ``record``) and backfilled rows (REST) describe the same table in slightly
different spellings (``2026-01-02 03:04:05.6+00`` vs ``2026-01-02T03:04:05.6+00:00``; hosted
Supabase may send int8 as a string); :func:`parse_row` turns both into one :class:`LogRow`, so the
JSON output is identical whichever way a line arrived.

Terminal safety: a log line is untrusted text. With colours on, only SGR sequences (colours, bold)
are kept and every line ends with a reset, so a line cannot move the cursor, retitle the window or
leave the terminal red; with colours off every escape sequence is removed. Other control characters
(except tab and newline) are dropped either way.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from meshlogs.ansi import ANSI_ESCAPE

__all__ = [
    "LEVELS",
    "FINAL_STATUSES",
    "LineFilter",
    "LogRow",
    "Renderer",
    "exit_code_for",
    "parse_levels",
    "parse_row",
]

LEVELS: Final = ("debug", "info", "warn", "error")
_LEVEL_ALIASES: Final = {"warning": "warn", "err": "error", "information": "info"}

#: Run statuses after which no more lines are expected, and the exit code each maps to.
FINAL_STATUSES: Final = {"succeeded": 0, "failed": 1, "canceled": 1}

_ANSI: Final = ANSI_ESCAPE
_SGR: Final = re.compile(r"\x1b\[[0-9;:]*m")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_UNSAFE: Final = re.compile(f"{_ANSI.pattern}|{_CONTROL.pattern}")

_RESET: Final = "\x1b[0m"
_DIM: Final = "\x1b[2m"
_CYAN: Final = "\x1b[36m"
_LEVEL_STYLE: Final = {
    "debug": "\x1b[2m",
    "info": "\x1b[34m",
    "warn": "\x1b[33m",
    "error": "\x1b[1;31m",
}


@dataclass(frozen=True)
class LogRow:
    """One ``run_logs`` row as tail shows it."""

    run_id: str
    seq: int
    ts: _dt.datetime | None
    level: str
    step: str | None
    message: str
    attrs: Mapping[str, Any]

    def to_json(self) -> bytes:
        """One compact JSON object (no trailing newline); ``ts`` in ISO 8601 with an offset."""
        return orjson.dumps(
            {
                "run_id": self.run_id,
                "seq": self.seq,
                "ts": self.ts.isoformat() if self.ts is not None else None,
                "level": self.level,
                "step": self.step,
                "message": self.message,
                "attrs": self.attrs,
            }
        )


def _parse_ts(value: Any) -> _dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=_dt.UTC)


def parse_row(record: Mapping[str, Any]) -> LogRow:
    """A row from a realtime ``record`` or a REST result object.

    Raises:
        ValueError: the record has no usable ``seq`` (it cannot be merged).
    """
    raw_seq = record.get("seq")
    if isinstance(raw_seq, bool) or not isinstance(raw_seq, int | str):
        raise ValueError(f"row without a seq: {dict(record)!r}"[:200])
    seq = int(raw_seq)
    attrs = record.get("attrs")
    if isinstance(attrs, str):  # a server that sends jsonb as text
        try:
            attrs = orjson.loads(attrs)
        except orjson.JSONDecodeError:
            attrs = {"value": attrs}
    level = str(record.get("level") or "info")
    step = record.get("step")
    return LogRow(
        run_id=str(record.get("run_id") or ""),
        seq=seq,
        ts=_parse_ts(record.get("ts")),
        level=level,
        step=str(step) if step is not None else None,
        message=str(record.get("message") or ""),
        attrs=attrs if isinstance(attrs, dict) else {},
    )


def parse_levels(values: Iterable[str]) -> frozenset[str]:
    """``--level`` values (repeatable, comma lists, aliases such as ``warning``) as a set.

    Raises:
        ValueError: an unknown level, naming it.
    """
    levels: set[str] = set()
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            name = _LEVEL_ALIASES.get(name, name)
            if name not in LEVELS:
                raise ValueError(f"unknown level {part.strip()!r} (choose from {', '.join(LEVELS)})")
            levels.add(name)
    return frozenset(levels)


@dataclass(frozen=True)
class LineFilter:
    """Which rows are printed. Empty sets mean "all"; ``grep`` searches the message without ANSI."""

    levels: frozenset[str] = frozenset()
    steps: frozenset[str] = frozenset()
    grep: re.Pattern[str] | None = None

    def matches(self, row: LogRow) -> bool:
        if self.levels and row.level not in self.levels:
            return False
        if self.steps and (row.step or "") not in self.steps:
            return False
        return not (self.grep is not None and self.grep.search(_ANSI.sub("", row.message)) is None)


def exit_code_for(status: str) -> int:
    """0 for a run that succeeded (or has not finished), 1 for one that failed or was canceled."""
    return FINAL_STATUSES.get(status, 0)


class Renderer:
    """Formats rows as text lines (optionally coloured) or JSON lines, each ending in a newline.

    Args:
        color: keep SGR colour codes of messages and colour levels; False strips every escape.
        as_json: one JSON object per line instead of text.
        utc: print times in UTC instead of the local zone.
    """

    def __init__(self, *, color: bool, as_json: bool = False, utc: bool = False) -> None:
        self.color = color
        self.as_json = as_json
        self.utc = utc

    def render(self, row: LogRow) -> str:
        if self.as_json:
            return row.to_json().decode() + "\n"
        return self._text(row)

    def _time(self, ts: _dt.datetime | None) -> str:
        if ts is None:
            return "--:--:--.---"
        local = ts.astimezone(_dt.UTC if self.utc else None)
        return local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"

    def _clean(self, text: str) -> str:
        text = text.replace("\r\n", "\n")
        if self.color:
            # Keep colours; drop every other escape sequence (cursor moves, titles, hyperlinks) and
            # stray control characters, bare ESC included.
            return _UNSAFE.sub(lambda m: m.group(0) if _SGR.fullmatch(m.group(0)) else "", text)
        return _UNSAFE.sub("", text)

    def _text(self, row: LogRow) -> str:
        seq = f"{row.seq:>6}"
        time = self._time(row.ts)
        level = row.level.upper().ljust(5)
        step = row.step or ""
        message = self._clean(row.message)
        attrs = " ".join(f"{k}={_attr(v)}" for k, v in row.attrs.items())
        attrs = self._clean(attrs)
        plain_head = f"{seq} {time} {level} " + (f"{self._clean(step)} " if step else "")
        if self.color:
            style = _LEVEL_STYLE.get(row.level, "")
            head = f"{_DIM}{seq} {time}{_RESET} {style}{level}{_RESET} " + (
                f"{_CYAN}{self._clean(step)}{_RESET} " if step else ""
            )
        else:
            head = plain_head
        indent = " " * len(plain_head)
        body = message.replace("\n", "\n" + indent)
        if attrs:
            body += f"  {_DIM}{attrs}{_RESET}" if self.color else f"  {attrs}"
        if self.color:
            body += _RESET
        return head + body + "\n"


def _attr(value: Any) -> str:
    if isinstance(value, str):
        return value if value and not any(c.isspace() for c in value) else orjson.dumps(value).decode()
    return orjson.dumps(value).decode()
