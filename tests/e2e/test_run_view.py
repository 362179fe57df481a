"""The run view in Chromium against a real ``meshlogs serve``: filters, search (local and server-side),
follow mode, permalinks, copy, downloads, keyboard shortcuts, theme and a narrow screen.

Every check names concrete lines (by seq and text) so that a feature that renders nothing, the wrong
lines or only part of the log fails. The list is virtualized, so filtered sets are kept small enough
to be rendered whole, and "the whole log" checks (downloads, server search) read what the server sent
rather than the DOM. Screenshots of the main states land in build/e2e/.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import ARTIFACTS, ServeProcess
from tests.factories import append, make_project, make_run, make_user, make_workflow

PASSWORD = "correct horse battery"
EMAIL = "ana@example.com"
TIMEOUT = 30_000  # ms, for waits only: nothing here asserts on speed

#: The plain run: no steps, more lines than one REST page (1,000) and far more than are rendered.
N = 2500
#: Lines of the plain run that say "cache miss" (search and server-search targets).
CACHE_MISS = [s for s in range(1, N + 1) if s % 250 == 7]
ERRORS = [s for s in range(1, N + 1) if s % 500 == 0]


def level_of(seq: int) -> str:
    if seq % 500 == 0:
        return "error"
    if seq % 100 == 50:
        return "warn"
    if seq % 10 == 3:
        return "debug"
    return "info"


def message_of(seq: int) -> str:
    if seq in CACHE_MISS:
        return f"line {seq}: cache miss for key build-{seq}"
    return f"line {seq}: step output {seq * 7 % 1000}"


def plain_lines(first: int, last: int) -> list[dict[str, Any]]:
    return [{"level": level_of(s), "message": message_of(s)} for s in range(first, last + 1)]


#: The run with steps: (step, first seq, last seq); warn at 25, errors at 55 and 56.
STEPS = [("checkout", 1, 10), ("build", 11, 40), ("test", 41, 70), ("deploy", 71, 80)]
STEP_LEVELS = {25: "warn", 55: "error", 56: "error"}


def step_lines() -> list[dict[str, Any]]:
    out = []
    for step, first, last in STEPS:
        for s in range(first, last + 1):
            out.append({"level": STEP_LEVELS.get(s, "info"), "message": f"{step}: line {s}", "step": step})
    return out


@pytest.fixture
def world(db: psycopg.Connection[Any]) -> dict[str, str]:
    user = make_user(db, EMAIL, PASSWORD)
    project = make_project(db, user, "Payments")
    plain = make_run(db, project, make_workflow(db, project, "nightly-report"))
    steps = make_run(db, project, make_workflow(db, project, "ci-pipeline"))
    append(db, plain, plain_lines(1, N))
    append(db, steps, step_lines())
    return {"plain": plain, "steps": steps}


#: The big run: 200,000 lines, a few of them very long (LONG maps seq to length in characters).
BIG = 200_000
LONG = {3: 20_000, BIG - 5: 6_000, BIG // 2: 60_000}


def long_message(seq: int) -> str:
    head = f"line {seq}: long "
    return head + "".join(f"w{i % 10}abcdefg " for i in range(LONG[seq]))[: LONG[seq] - len(head)]


@pytest.fixture
def big(db: psycopg.Connection[Any]) -> str:
    """A run of BIG lines, inserted by one statement (the dense seq, as append_run_logs would)."""
    user = make_user(db, EMAIL, PASSWORD)
    project = make_project(db, user, "Payments")
    run = make_run(db, project, make_workflow(db, project, "big-export"))
    long_cases = " ".join(f"when {seq} then %(long{seq})s" for seq in LONG)
    db.execute(
        "insert into run_logs (run_id, seq, ts, level, message)"
        " select %(run)s, g, now() - interval '1 hour' + g * interval '10 ms',"
        "  case when g %% 1000 = 0 then 'warn' else 'info' end,"
        f"  case g {long_cases} else 'line ' || g || ': row ' || (g * 7 %% 1000) end"
        " from generate_series(1, %(n)s) g",
        {"run": run, "n": BIG, **{f"long{seq}": long_message(seq) for seq in LONG}},
    )
    db.execute("insert into run_log_seq (run_id, last_seq) values (%s, %s)", (run, BIG))
    return run


#: The timed run: (step, [(seconds after the run started, level)]) with controlled timestamps.
T0 = datetime(2024, 3, 1, 9, 30, 0, tzinfo=UTC)
TIMED = [
    ("checkout", [0.25, 1.0, 4.45]),  # 4.2 s first to last line
    ("build", [5.0, 30.0, 130.0]),  # 2m 05s
    ("test", [131.0, 131.35]),  # 350ms
]


@pytest.fixture
def timed(db: psycopg.Connection[Any]) -> str:
    """A finished run whose start and line timestamps are fixed."""
    user = make_user(db, EMAIL, PASSWORD)
    project = make_project(db, user, "Payments")
    run = make_run(db, project, make_workflow(db, project, "release"))
    db.execute(
        "update workflow_runs set started_at = %s, status = 'succeeded', finished_at = %s where id = %s",
        (T0, T0 + timedelta(seconds=140), run),
    )
    lines = [
        {
            "level": "info",
            "message": f"{step}: at {offset}s",
            "step": step,
            "ts": (T0 + timedelta(seconds=offset)).isoformat(),
        }
        for step, offsets in TIMED
        for offset in offsets
    ]
    append(db, run, lines)
    return run


# ---- helpers ------------------------------------------------------------------------------------


def login(page: Page, serve: ServeProcess) -> None:
    page.goto(f"{serve.url}/login")
    page.get_by_test_id("login-email").fill(EMAIL)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("run-row").first).to_be_visible(timeout=TIMEOUT)


def open_run(page: Page, serve: ServeProcess, run: str, last_seq: int, fragment: str = "") -> Locator:
    """Open the run view and wait until every line is loaded and the channel is live."""
    page.goto(f"{serve.url}/runs/{run}{fragment}")
    log_list = page.get_by_test_id("log-list")
    expect(log_list).to_have_attribute("data-last-seq", str(last_seq), timeout=TIMEOUT)
    expect(page.get_by_test_id("conn-badge")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    return log_list


def line(page: Page, seq: int) -> Locator:
    return page.locator(f'[data-testid="log-line"][data-seq="{seq}"]')


def rendered_seqs(page: Page) -> list[int]:
    seqs = page.get_by_test_id("log-line").evaluate_all("els => els.map(e => Number(e.dataset.seq))")
    return [int(s) for s in seqs]


def expect_rendered(page: Page, seqs: list[int]) -> None:
    """Exactly these lines are in the DOM (the set must be small enough to render whole)."""
    expect(page.get_by_test_id("log-line")).to_have_count(len(seqs), timeout=TIMEOUT)
    assert rendered_seqs(page) == seqs


def level_chip(page: Page, level: str) -> Locator:
    return page.get_by_role("group", name="Levels").locator(f'button[data-level="{level}"]')


def targets(page: Page) -> list[int]:
    seqs = page.locator('[data-testid="log-line"][data-target]').evaluate_all(
        "els => els.map(e => Number(e.dataset.seq))"
    )
    return [int(s) for s in seqs]


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def collect_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


# ---- filters ------------------------------------------------------------------------------------


def test_level_filter(page: Page, serve: ServeProcess, world: dict[str, str]) -> None:
    errors = collect_errors(page)
    login(page, serve)
    shot(page, "runs-list")
    open_run(page, serve, world["plain"], N)
    counts = {
        lvl: level_chip(page, lvl).get_attribute("data-count") for lvl in ("debug", "info", "warn", "error")
    }
    assert counts == {"debug": "250", "info": "2220", "warn": "25", "error": "5"}

    for lvl in ("debug", "info", "warn"):
        level_chip(page, lvl).click()
        expect(level_chip(page, lvl)).to_have_attribute("aria-pressed", "false")
    expect(level_chip(page, "error")).to_have_attribute("aria-pressed", "true")
    expect_rendered(page, ERRORS)
    for seq in ERRORS:
        expect(line(page, seq)).to_have_attribute("data-level", "error")
        expect(line(page, seq)).to_contain_text(message_of(seq))
    shot(page, "run-view-filtered")

    level_chip(page, "warn").click()
    expect(level_chip(page, "warn")).to_have_attribute("aria-pressed", "true")  # turned back on
    expect_rendered(page, sorted(ERRORS + [s for s in range(50, N + 1, 100)]))
    level_chip(page, "error").click()
    level_chip(page, "warn").click()
    expect(page.get_by_test_id("log-empty")).to_have_text("No lines match the filters.", timeout=TIMEOUT)
    assert not errors


def test_step_filter_and_sections(page: Page, serve: ServeProcess, world: dict[str, str]) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 1280, "height": 1400})  # tall enough to render every section
    login(page, serve)
    open_run(page, serve, world["steps"], 80)
    headers = page.get_by_test_id("step-header")
    expect(headers).to_have_count(4, timeout=TIMEOUT)
    expanded = {h.get_attribute("data-step"): h.get_attribute("aria-expanded") for h in headers.all()}
    # A running run: finished steps start collapsed, the failed one and the running one are open.
    assert expanded == {"checkout": "false", "build": "false", "test": "true", "deploy": "true"}
    expect_rendered(page, list(range(41, 81)))  # collapsed steps render no lines
    expect(page.locator('[data-testid="step-header"][data-step="build"]')).to_contain_text("30 lines")
    shot(page, "run-view-steps")

    step = page.get_by_role("combobox", name="Step")
    step.select_option("build")
    expect_rendered(page, list(range(11, 41)))
    for seq in (11, 25, 40):
        expect(line(page, seq)).to_contain_text(f"build: line {seq}")

    level_chip(page, "info").click()  # step and level filters combine
    expect_rendered(page, [25])
    expect(line(page, 25)).to_have_attribute("data-level", "warn")

    step.select_option(label="All steps")
    expect_rendered(page, [55, 56])  # build (collapsed) keeps its header; test is open
    page.get_by_role("button", name="Expand all steps").click()
    expect_rendered(page, [25, 55, 56])
    page.locator('[data-testid="step-header"][data-step="build"]').click()
    expect_rendered(page, [55, 56])
    assert not errors


# ---- search -------------------------------------------------------------------------------------


def test_search_highlight_count_navigation_regex(
    page: Page, serve: ServeProcess, world: dict[str, str]
) -> None:
    errors = collect_errors(page)
    login(page, serve)
    open_run(page, serve, world["plain"], N)
    box = page.get_by_role("textbox", name="Search the log")
    count = page.get_by_test_id("match-count")

    box.fill("cache miss")
    expect(count).to_have_text("1 of 10", timeout=TIMEOUT)

    def current_is(seq: int, marked: str) -> None:
        cur = line(page, seq)
        expect(cur).to_have_attribute("data-current", "true", timeout=TIMEOUT)
        expect(cur).to_be_in_viewport(timeout=TIMEOUT)
        expect(cur.locator("mark")).to_have_text(marked)
        expect(page.locator('[data-testid="log-line"][data-current]')).to_have_count(1)

    current_is(CACHE_MISS[0], "cache miss")
    box.press("Enter")
    expect(count).to_have_text("2 of 10")
    current_is(CACHE_MISS[1], "cache miss")
    box.press("Shift+Enter")
    expect(count).to_have_text("1 of 10")
    page.get_by_role("button", name="Previous match").click()  # wraps around
    expect(count).to_have_text("10 of 10")
    current_is(CACHE_MISS[-1], "cache miss")
    page.get_by_role("button", name="Next match").click()
    expect(count).to_have_text("1 of 10")
    current_is(CACHE_MISS[0], "cache miss")
    shot(page, "run-view-search")

    box.fill("CACHE Miss")
    expect(count).to_have_text("1 of 10", timeout=TIMEOUT)  # case-insensitive by default
    case = page.get_by_role("button", name="Match case")
    case.click()
    expect(case).to_have_attribute("aria-pressed", "true")
    expect(count).to_have_text("no matches", timeout=TIMEOUT)
    case.click()

    box.fill(r"^line 12\d:")
    expect(count).to_have_text("no matches", timeout=TIMEOUT)  # literal text: nothing has a backslash
    page.get_by_role("button", name="Regular expression").click()
    expect(count).to_have_text("1 of 10", timeout=TIMEOUT)  # lines 120..129
    current_is(120, "line 120:")
    box.press("Enter")
    current_is(121, "line 121:")
    for seq in range(120, 130):  # every match on screen is highlighted, not only the current one
        expect(line(page, seq).locator("mark")).to_have_text(f"line {seq}:")
    expect(line(page, 119).locator("mark")).to_have_count(0)
    expect(line(page, 130).locator("mark")).to_have_count(0)

    box.fill("(unclosed")
    expect(count).to_have_text("invalid regex", timeout=TIMEOUT)
    expect(page.get_by_test_id("search-error")).to_be_visible()
    expect(page.locator("mark")).to_have_count(0)
    assert not errors


def test_server_search_covers_the_whole_log(page: Page, serve: ServeProcess, world: dict[str, str]) -> None:
    errors = collect_errors(page)
    login(page, serve)
    open_run(page, serve, world["plain"], N)
    level_chip(page, "info").click()  # hides every "cache miss" line from the loaded view
    box = page.get_by_role("textbox", name="Search the log")
    box.fill("Cache Miss")
    expect(page.get_by_test_id("match-count")).to_have_text("no matches", timeout=TIMEOUT)

    page.get_by_role("button", name="Search the whole log on the server").click()
    results = page.get_by_role("region", name="Server search results")
    expect(results).to_contain_text("10 lines containing “Cache Miss” in the whole log", timeout=TIMEOUT)
    found = results.get_by_test_id("server-result")
    expect(found).to_have_count(10)
    assert [int(s) for s in found.evaluate_all("els => els.map(e => e.dataset.seq)")] == CACHE_MISS
    expect(found.nth(5)).to_contain_text("cache miss for key build-1257")

    found.nth(5).click()  # jumping to a hidden line widens the filter and highlights it
    target = line(page, 1257)
    expect(target).to_be_in_viewport(timeout=TIMEOUT)
    expect(target).to_have_attribute("data-target", "true")
    expect(level_chip(page, "info")).to_have_attribute("aria-pressed", "true")
    assert page.url.endswith("#L1257")

    box.fill("no such text anywhere")
    page.get_by_role("button", name="Search the whole log on the server").click()
    expect(results).to_contain_text("No lines contain that text.", timeout=TIMEOUT)
    results.get_by_role("button", name="Close results").click()
    expect(results).to_have_count(0)
    assert not errors


# ---- follow mode --------------------------------------------------------------------------------


def test_follow_sticks_pauses_and_jumps(
    page: Page, serve: ServeProcess, world: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    errors = collect_errors(page)
    login(page, serve)
    log_list = open_run(page, serve, world["plain"], N)
    follow = page.get_by_role("button", name="Follow", exact=True)
    expect(log_list).to_have_attribute("data-follow", "true")
    expect(follow).to_have_attribute("aria-pressed", "true")
    expect(line(page, N)).to_be_in_viewport(timeout=TIMEOUT)

    append(db, world["plain"], plain_lines(N + 1, N + 20))
    expect(log_list).to_have_attribute("data-last-seq", str(N + 20), timeout=TIMEOUT)
    expect(line(page, N + 20)).to_be_in_viewport(timeout=TIMEOUT)  # stuck to the bottom
    expect(log_list).to_have_attribute("data-follow", "true")
    shot(page, "run-view-live")

    box = log_list.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -600)
    expect(log_list).to_have_attribute("data-follow", "false", timeout=TIMEOUT)
    expect(follow).to_have_attribute("aria-pressed", "false")
    expect(line(page, N + 20)).not_to_be_in_viewport(timeout=TIMEOUT)

    append(db, world["plain"], plain_lines(N + 21, N + 35))
    expect(log_list).to_have_attribute("data-last-seq", str(N + 35), timeout=TIMEOUT)
    jump = page.get_by_role("button", name=re.compile(r"new lines? ↓"))
    expect(jump).to_have_text("15 new lines ↓", timeout=TIMEOUT)
    expect(line(page, N + 35)).not_to_be_in_viewport()  # paused: the view did not move

    jump.click()
    expect(line(page, N + 35)).to_be_in_viewport(timeout=TIMEOUT)
    expect(line(page, N + 35)).to_contain_text(message_of(N + 35))
    expect(log_list).to_have_attribute("data-follow", "true")
    expect(jump).to_have_count(0)

    append(db, world["plain"], plain_lines(N + 36, N + 40))  # following again
    expect(line(page, N + 40)).to_be_in_viewport(timeout=TIMEOUT)
    expect(log_list).to_have_attribute("data-gap-free", "true")
    assert not errors


# ---- permalinks and copy ------------------------------------------------------------------------


def test_permalinks_single_line_and_ranges(
    page: Page, serve: ServeProcess, world: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    errors = collect_errors(page)
    login(page, serve)
    log_list = open_run(page, serve, world["plain"], N, "#L1200")
    target = line(page, 1200)
    expect(target).to_be_in_viewport(timeout=TIMEOUT)
    expect(target).to_have_attribute("data-target", "true")
    expect(target).to_contain_text(message_of(1200))
    assert targets(page) == [1200]
    expect(log_list).to_have_attribute("data-follow", "false")  # the link wins over following

    page.evaluate("location.hash = '#L10-L20'")  # a hash change in the open page
    expect(line(page, 10)).to_be_in_viewport(timeout=TIMEOUT)
    expect(line(page, 20)).to_be_in_viewport(timeout=TIMEOUT)
    expect(page.locator('[data-testid="log-line"][data-target]')).to_have_count(11, timeout=TIMEOUT)
    assert targets(page) == list(range(10, 21))

    page.reload()  # a fresh load of a range link
    expect(log_list).to_have_attribute("data-last-seq", str(N), timeout=TIMEOUT)
    expect(line(page, 10)).to_be_in_viewport(timeout=TIMEOUT)
    expect(page.locator('[data-testid="log-line"][data-target]')).to_have_count(11, timeout=TIMEOUT)
    assert targets(page) == list(range(10, 21))
    shot(page, "run-view-permalink-range")

    page.get_by_role("link", name="Link to line 15", exact=True).click()
    expect(page).to_have_url(re.compile(r"#L15$"))
    expect(page.locator('[data-testid="log-line"][data-target]')).to_have_count(1)
    assert targets(page) == [15]
    page.get_by_role("link", name="Link to line 18", exact=True).click(modifiers=["Shift"])
    expect(page).to_have_url(re.compile(r"#L15-L18$"))
    expect(page.locator('[data-testid="log-line"][data-target]')).to_have_count(4)
    assert targets(page) == [15, 16, 17, 18]
    assert len(page.context.pages) == 1  # Shift+click did not open a window

    # A link to a line not written yet: the view goes there when it arrives.
    page.evaluate(f"location.hash = '#L{N + 10}'")
    append(db, world["plain"], plain_lines(N + 1, N + 20))
    expect(log_list).to_have_attribute("data-last-seq", str(N + 20), timeout=TIMEOUT)
    expect(line(page, N + 10)).to_be_in_viewport(timeout=TIMEOUT)
    assert targets(page) == [N + 10]
    assert not errors


def test_copy_line(page: Page, serve: ServeProcess, world: dict[str, str]) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=serve.url)
    login(page, serve)
    open_run(page, serve, world["plain"], N, "#L42")
    expect(line(page, 42)).to_be_in_viewport(timeout=TIMEOUT)
    line(page, 43).hover()
    button = page.get_by_role("button", name="Copy line 43", exact=True)
    expect(button).to_be_visible()
    button.click()
    expect(button).to_have_attribute("title", "Copied", timeout=TIMEOUT)
    assert page.evaluate("navigator.clipboard.readText()") == message_of(43)

    page.get_by_role("button", name="Copy line 42", exact=True).click()  # the linked line shows its button
    expect(page.get_by_role("button", name="Copy line 42", exact=True)).to_have_attribute("title", "Copied")
    assert page.evaluate("navigator.clipboard.readText()") == message_of(42)


# ---- downloads ----------------------------------------------------------------------------------


TEXT_LINE = re.compile(r"^(?P<ts>\S.*?) (?P<level>DEBUG|INFO |WARN |ERROR) (?P<message>.*)$")


def download(page: Page, name: str, target: Path) -> list[str]:
    with page.expect_download(timeout=TIMEOUT) as info:
        page.get_by_role("button", name=name).click()
    dl = info.value
    dl.save_as(target)
    assert dl.suggested_filename.startswith("run-")
    return target.read_text(encoding="utf-8").split("\n")


def test_download_whole_log_as_text_and_jsonl(
    page: Page, serve: ServeProcess, world: dict[str, str], db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    errors = collect_errors(page)
    login(page, serve)
    open_run(page, serve, world["plain"], N)
    append(db, world["plain"], plain_lines(N + 1, N + 3))  # live lines belong to the download too
    total = N + 3
    expect(page.get_by_test_id("log-list")).to_have_attribute("data-last-seq", str(total), timeout=TIMEOUT)
    for lvl in ("debug", "info", "warn"):  # only 5 lines rendered; the download is still everything
        level_chip(page, lvl).click()
    expect_rendered(page, ERRORS)

    text = download(page, "Download the whole log as text", tmp_path / "run.log")
    assert text[-1] == ""  # every line ends with a newline
    lines = text[:-1]
    assert len(lines) == total
    for seq, raw in enumerate(lines, start=1):
        m = TEXT_LINE.match(raw)
        assert m, raw
        assert m["level"].strip() == level_of(seq).upper(), raw
        assert m["message"] == message_of(seq), raw

    rows = download(page, "Download the whole log as JSON lines", tmp_path / "run.jsonl")
    assert rows[-1] == ""
    parsed = [json.loads(r) for r in rows[:-1]]
    assert [r["seq"] for r in parsed] == list(range(1, total + 1))
    assert [r["message"] for r in parsed] == [message_of(s) for s in range(1, total + 1)]
    assert [r["level"] for r in parsed] == [level_of(s) for s in range(1, total + 1)]
    assert {r["run_id"] for r in parsed} == {world["plain"]}
    assert not errors


# ---- keyboard, theme, narrow screens ------------------------------------------------------------


def test_keyboard_shortcuts(page: Page, serve: ServeProcess, world: dict[str, str]) -> None:
    errors = collect_errors(page)
    login(page, serve)
    log_list = open_run(page, serve, world["plain"], N)
    expect(line(page, N)).to_be_in_viewport(timeout=TIMEOUT)

    page.keyboard.press("g")
    expect(line(page, 1)).to_be_in_viewport(timeout=TIMEOUT)
    expect(log_list).to_have_attribute("data-follow", "false")
    page.keyboard.press("Shift+G")
    expect(line(page, N)).to_be_in_viewport(timeout=TIMEOUT)
    expect(log_list).to_have_attribute("data-follow", "true")
    page.keyboard.press("f")
    expect(log_list).to_have_attribute("data-follow", "false")
    page.keyboard.press("f")
    expect(log_list).to_have_attribute("data-follow", "true")

    box = page.get_by_role("textbox", name="Search the log")
    page.keyboard.press("/")
    expect(box).to_be_focused()
    page.keyboard.type("cache miss")  # "/" itself was not typed into the box
    expect(box).to_have_value("cache miss")
    expect(page.get_by_test_id("match-count")).to_have_text("1 of 10", timeout=TIMEOUT)
    log_list.focus()  # n / N work outside the box
    page.keyboard.press("n")
    expect(page.get_by_test_id("match-count")).to_have_text("2 of 10")
    expect(line(page, CACHE_MISS[1])).to_be_in_viewport(timeout=TIMEOUT)
    page.keyboard.press("Shift+N")
    expect(page.get_by_test_id("match-count")).to_have_text("1 of 10")

    page.keyboard.press("?")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Go to the first line")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    page.get_by_role("button", name="Keyboard shortcuts").click()  # the toolbar opens the same help
    expect(dialog).to_contain_text("Follow new lines on / off")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0)

    box.focus()
    page.keyboard.press("Escape")  # clears the search
    expect(box).to_have_value("")
    expect(page.get_by_test_id("match-count")).to_have_text("")
    page.keyboard.press("Escape")  # then leaves the box
    expect(box).not_to_be_focused()
    assert not errors


def test_theme_toggle(page: Page, serve: ServeProcess, world: dict[str, str]) -> None:
    login(page, serve)
    open_run(page, serve, world["plain"], N)
    background = "getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(background) == "rgb(255, 255, 255)"

    page.get_by_role("button", name="Switch to dark theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate(background) == "rgb(13, 17, 23)"
    expect(line(page, N)).to_be_visible()
    shot(page, "run-view-dark")

    page.reload()  # the choice is remembered
    expect(page.get_by_test_id("log-list")).to_have_attribute("data-last-seq", str(N), timeout=TIMEOUT)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate(background) == "rgb(13, 17, 23)"

    page.get_by_role("button", name="Switch to light theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert page.evaluate(background) == "rgb(255, 255, 255)"


def test_narrow_viewport_renders(page: Page, serve: ServeProcess, world: dict[str, str]) -> None:
    errors = collect_errors(page)
    page.set_viewport_size({"width": 360, "height": 740})
    login(page, serve)
    shot(page, "runs-list-narrow")
    log_list = open_run(page, serve, world["plain"], N)
    last = line(page, N)
    expect(last).to_be_in_viewport(timeout=TIMEOUT)
    expect(last).to_contain_text(message_of(N))

    # Nothing pushes the page wider than the screen; the toolbar scrolls sideways inside itself.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for locator in (log_list, last, page.get_by_role("textbox", name="Search the log")):
        box = locator.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360 + 0.5, box
    search_box = page.get_by_role("textbox", name="Search the log").bounding_box()
    assert search_box is not None and search_box["width"] >= 100
    list_box = log_list.bounding_box()
    assert list_box is not None and list_box["height"] >= 200  # the log keeps most of the screen
    expect(last.locator(".ts")).to_be_hidden()  # timestamps give way to the message
    shot(page, "run-view-narrow")

    page.get_by_role("textbox", name="Search the log").fill("cache miss")
    expect(page.get_by_test_id("match-count")).to_have_text("1 of 10", timeout=TIMEOUT)
    expect(line(page, CACHE_MISS[0])).to_be_in_viewport(timeout=TIMEOUT)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert not errors


# ---- a big log ----------------------------------------------------------------------------------


def test_a_200k_line_log_loads_scrolls_stays_virtualized_and_wraps(
    big: str, page: Page, serve: ServeProcess
) -> None:
    errors = collect_errors(page)
    login(page, serve)
    page.goto(f"{serve.url}/runs/{big}")
    log_list = page.get_by_test_id("log-list")
    expect(log_list).to_have_attribute("data-last-seq", str(BIG), timeout=120_000)  # 200 REST pages
    expect(log_list).to_have_attribute("data-lines", str(BIG))
    expect(log_list).to_have_attribute("data-gap-free", "true")
    expect(page.get_by_test_id("run-lines")).to_have_text("200,000")
    expect(page.get_by_test_id("conn-badge")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    expect(line(page, BIG)).to_be_in_viewport(timeout=TIMEOUT)  # following: the tail is shown
    expect(line(page, BIG)).to_contain_text(f"line {BIG}: row {BIG * 7 % 1000}")

    def few_rendered() -> list[int]:
        seqs = rendered_seqs(page)
        assert 0 < len(seqs) < 200, len(seqs)  # a window of the log, not 200,000 elements
        assert seqs == sorted(seqs)
        return seqs

    assert few_rendered()[-1] == BIG

    page.keyboard.press("g")
    expect(line(page, 1)).to_be_in_viewport(timeout=TIMEOUT)
    assert few_rendered()[0] == 1
    page.keyboard.press("Shift+G")
    expect(line(page, BIG)).to_be_in_viewport(timeout=TIMEOUT)
    few_rendered()

    # The scroll container itself: its middle shows lines from the middle of the log.
    log_list.evaluate("el => { el.scrollTop = el.scrollHeight / 2 - el.clientHeight / 2 }")
    expect(log_list).to_have_attribute("data-follow", "false", timeout=TIMEOUT)
    expect(line(page, BIG)).to_have_count(0, timeout=TIMEOUT)
    middle = few_rendered()
    assert 80_000 < middle[len(middle) // 2] < 120_000, middle
    log_list.evaluate("el => { el.scrollTop = 0 }")
    expect(line(page, 1)).to_be_in_viewport(timeout=TIMEOUT)
    expect(line(page, 1)).to_contain_text("line 1: row 7")
    few_rendered()

    # Wrap on (the default): the 20,000-character line 3 is many rows tall; off: one row, scrolled sideways.
    wrap = page.get_by_role("button", name="Wrap", exact=True)
    expect(wrap).to_have_attribute("aria-pressed", "true")
    expect(line(page, 3)).to_contain_text("line 3: long w0abcdefg w1abcdefg")

    def height(seq: int) -> float:
        box = line(page, seq).bounding_box()
        assert box is not None
        return float(box["height"])

    one_row = height(2)
    assert height(3) > 20 * one_row
    wrap.click()
    expect(wrap).to_have_attribute("aria-pressed", "false")
    expect(line(page, 3)).to_be_in_viewport(timeout=TIMEOUT)
    assert height(3) == pytest.approx(one_row, abs=1)
    assert log_list.evaluate("el => el.scrollWidth > 10 * el.clientWidth")  # the long line overflows
    wrap.click()
    expect(wrap).to_have_attribute("aria-pressed", "true")
    assert height(3) > 20 * one_row
    few_rendered()
    shot(page, "run-view-200k")
    assert not errors


# ---- step durations and timestamps --------------------------------------------------------------


def open_finished_run(page: Page, serve: ServeProcess, run: str, last_seq: int) -> Locator:
    page.goto(f"{serve.url}/runs/{run}")
    log_list = page.get_by_test_id("log-list")
    expect(log_list).to_have_attribute("data-last-seq", str(last_seq), timeout=TIMEOUT)
    expect(page.get_by_test_id("conn-badge")).to_have_attribute("data-state", "finished", timeout=TIMEOUT)
    return log_list


def test_step_headers_show_each_steps_duration(timed: str, page: Page, serve: ServeProcess) -> None:
    errors = collect_errors(page)
    login(page, serve)
    open_finished_run(page, serve, timed, 8)
    headers = page.get_by_test_id("step-header")
    expect(headers).to_have_count(3, timeout=TIMEOUT)
    durations = {
        h.get_attribute("data-step"): h.get_by_title("First to last line of this step").inner_text()
        for h in headers.all()
    }
    assert durations == {"checkout": "4.2s", "build": "2m 05s", "test": "350ms"}
    expect(page.get_by_test_id("run-duration")).to_have_text("2m 20s")  # the run: started → finished
    assert not errors


def test_timestamp_toggle_cycles_clock_elapsed_and_off(timed: str, page: Page, serve: ServeProcess) -> None:
    errors = collect_errors(page)
    login(page, serve)
    open_finished_run(page, serve, timed, 8)
    page.get_by_role("button", name="Expand all steps").click()
    toggle = page.get_by_test_id("ts-toggle")
    first, later = line(page, 1).locator(".ts"), line(page, 6).locator(".ts")

    # Wall clock (local time; minutes and seconds are the same in every whole-hour time zone).
    expect(toggle).to_have_text("Clock time")
    expect(toggle).to_have_attribute("data-mode", "clock")
    expect(first).to_have_text(re.compile(r"^\d\d:\d\d:00\.250$"), timeout=TIMEOUT)
    expect(later).to_have_text(re.compile(r"^\d\d:\d\d:10\.000$"))  # 09:32:10 UTC

    toggle.click()  # time since the run started
    expect(toggle).to_have_text("Elapsed time")
    expect(toggle).to_have_attribute("data-mode", "offset")
    expect(first).to_have_text("+00:00.250")
    expect(later).to_have_text("+02:10.000")

    toggle.click()  # no timestamps
    expect(toggle).to_have_text("No time")
    expect(toggle).to_have_attribute("data-mode", "off")
    expect(first).to_have_count(0)
    expect(line(page, 1)).to_contain_text("checkout: at 0.25s")

    page.reload()  # the choice is remembered
    expect(page.get_by_test_id("log-list")).to_have_attribute("data-last-seq", "8", timeout=TIMEOUT)
    expect(toggle).to_have_attribute("data-mode", "off")
    toggle.click()  # and wraps around to the clock
    expect(toggle).to_have_text("Clock time")
    page.get_by_role("button", name="Expand all steps").click()
    expect(first).to_have_text(re.compile(r"^\d\d:\d\d:00\.250$"), timeout=TIMEOUT)
    assert not errors


# ---- accessible names ---------------------------------------------------------------------------

#: The name a control gets from its own markup: aria-labelledby, aria-label, a <label>, its text
#: (with images' alt), title, or (inputs) a placeholder. Returns the controls that have none.
UNNAMED = """els => els.filter(el => {
    const text = s => (s || '').replace(/\\s+/g, ' ').trim();
    const byIds = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
        .map(id => document.getElementById(id)?.textContent).join(' ');
    const labels = [...(el.labels || [])].map(l => l.textContent).join(' ');
    const alts = [...el.querySelectorAll('img[alt]')].map(i => i.alt).join(' ');
    const own = el.tagName === 'SELECT' ? '' : el.textContent;
    const names = [byIds, el.getAttribute('aria-label'), labels, own, alts, el.title, el.placeholder];
    return !names.some(n => text(n));
}).map(el => el.outerHTML.slice(0, 200))"""


def unnamed_controls(page: Page) -> list[str]:
    controls = page.locator("button, input, select, textarea, a[href], [role=button], [role=link]")
    assert controls.count() > 0
    return list(controls.evaluate_all(UNNAMED))


#: A control in Playwright's ARIA snapshot with no name: `- button` or `- button:` (named ones are quoted).
BARE = re.compile(r"^\s*- (button|link|textbox|combobox|searchbox|checkbox)( \[[^\]]*\])*:?$")


def unnamed_in_aria_tree(page: Page) -> list[str]:
    """Controls whose computed accessible name (Chromium's, via the ARIA snapshot) is empty."""
    return [row for row in page.locator("body").aria_snapshot().splitlines() if BARE.match(row)]


def test_every_control_on_the_run_view_has_an_accessible_name(
    page: Page, serve: ServeProcess, world: dict[str, str]
) -> None:
    page.set_viewport_size({"width": 1280, "height": 1400})
    login(page, serve)
    assert unnamed_controls(page) == []  # the runs list
    open_run(page, serve, world["steps"], 80)
    expect(page.get_by_test_id("step-header")).to_have_count(4, timeout=TIMEOUT)
    expect(page.get_by_test_id("copy-line").first).to_be_attached()
    assert unnamed_controls(page) == []

    assert unnamed_in_aria_tree(page) == []

    # Panels that come and go: server search results, the help dialog.
    page.get_by_role("textbox", name="Search the log").fill("build: line 2")
    page.get_by_role("button", name="Search the whole log on the server").click()
    expect(page.get_by_test_id("server-result").first).to_be_visible(timeout=TIMEOUT)
    page.get_by_role("button", name="Keyboard shortcuts").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    assert unnamed_controls(page) == []
    assert unnamed_in_aria_tree(page) == []
