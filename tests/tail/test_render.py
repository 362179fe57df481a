"""Row parsing from both sources, filters, and what a terminal or a script receives."""

from __future__ import annotations

import datetime as dt
import re

import orjson
import pytest

from meshlogs.tail.render import LineFilter, LogRow, Renderer, exit_code_for, parse_levels, parse_row

RUN = "9db6a085-da08-4cd7-ba78-896f6b703291"
REST = {
    "run_id": RUN,
    "seq": 3,
    "ts": "2026-12-03T20:00:24.811257+00:00",
    "level": "warn",
    "step": "http_call",
    "message": "retrying",
    "attrs": {"status": 503},
}
# the same row as the realtime record spells it
LIVE = {**REST, "id": 7, "ts": "2026-12-03 20:00:24.811257+00"}


def row(message: str, **kw: object) -> LogRow:
    return parse_row({**REST, "message": message, **kw})


def test_live_and_rest_spellings_give_the_same_row_and_json() -> None:
    assert parse_row(LIVE) == parse_row(REST)
    assert parse_row(LIVE).to_json() == parse_row(REST).to_json()
    assert orjson.loads(parse_row(LIVE).to_json()) == {**REST}


def test_parse_tolerates_text_int8_and_jsonb_as_text() -> None:
    parsed = parse_row({**REST, "seq": "3", "attrs": '{"a": 1}', "ts": "2026-12-03T20:00:24Z"})
    assert parsed.seq == 3 and parsed.attrs == {"a": 1}
    assert parsed.ts == dt.datetime(2026, 12, 3, 20, 0, 24, tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        parse_row({**REST, "seq": None})


def test_levels_repeatable_comma_and_aliases() -> None:
    assert parse_levels(["warn,error", "info"]) == {"warn", "error", "info"}
    assert parse_levels(["WARNING"]) == {"warn"}
    with pytest.raises(ValueError, match="unknown level 'loud'"):
        parse_levels(["info,loud"])


def test_filters() -> None:
    assert LineFilter().matches(row("x"))
    assert not LineFilter(levels=frozenset({"error"})).matches(row("x"))
    assert LineFilter(steps=frozenset({"http_call"})).matches(row("x"))
    assert not LineFilter(steps=frozenset({"branch"})).matches(row("x"))
    assert not LineFilter(steps=frozenset({"branch"})).matches(row("x", step=None))
    # grep ignores colour codes inside the message
    grep = LineFilter(grep=re.compile(r"status 503"))
    assert grep.matches(row("status \x1b[33m503\x1b[0m"))
    assert not grep.matches(row("status 200"))


def test_text_without_colour_strips_every_escape_and_control() -> None:
    text = Renderer(color=False, utc=True).render(row("\x1b[31mred\x1b[0m\x1b]0;title\x07 \x1b[2Jok\x00\x9b"))
    assert text == "     3 20:00:24.811 WARN  http_call red ok  status=503\n"


def test_text_with_colour_keeps_sgr_only_and_resets() -> None:
    text = Renderer(color=True, utc=True).render(row("\x1b[31mred\x1b[0m \x1b[2J\x1b[10;10Hmoved"))
    assert "\x1b[31mred\x1b[0m moved" in text
    assert "\x1b[2J" not in text and "\x1b[10;10H" not in text
    assert "\x1b[33mWARN" in text  # level colour
    assert text.endswith("\x1b[0m\n")


def test_multiline_messages_are_indented_under_the_message() -> None:
    text = Renderer(color=False, utc=True).render(row("first\nsecond", step=None, attrs={}))
    head = "     3 20:00:24.811 WARN  "
    assert text == f"{head}first\n{' ' * len(head)}second\n"


def test_json_lines() -> None:
    out = Renderer(color=True, as_json=True).render(row("\x1b[32mok\x1b[0m"))
    assert out.endswith("\n") and out.count("\n") == 1
    assert orjson.loads(out)["message"] == "\x1b[32mok\x1b[0m"  # JSON keeps the raw message


def test_exit_codes() -> None:
    assert [exit_code_for(s) for s in ("succeeded", "failed", "canceled", "running")] == [0, 1, 1, 0]
