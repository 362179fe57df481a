"""The Run Console in Chromium against a real server: login, runs list, live logs gap-free across a
server restart, RLS in the UI, ANSI rendered safely. Screenshots land in build/e2e/."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser, Page, WebSocket, expect

from tests.e2e.conftest import ARTIFACTS, ServeProcess
from tests.factories import add_member, append, make_project, make_run, make_user, make_workflow

PASSWORD = "correct horse battery"
TIMEOUT = 30_000  # ms, for waits only


@pytest.fixture
def seeded(db: psycopg.Connection[Any]) -> dict[str, str]:
    alice = make_user(db, "alice@example.com", PASSWORD)
    bob = make_user(db, "bob@example.com", PASSWORD)
    project = make_project(db, alice, "Payments")
    add_member(db, project, bob, "viewer")
    other = make_project(db, bob, "Bob's secrets")
    wf = make_workflow(db, project, "charge-cards")
    run = make_run(db, project, wf)
    secret_run = make_run(db, other, make_workflow(db, other, "hidden"))
    append(
        db, run, [{"level": "info", "message": f"history line {i}", "step": "webhook"} for i in range(1, 51)]
    )
    append(
        db,
        run,
        [
            {"level": "warn", "message": "\x1b[33mretrying\x1b[0m in 200ms", "step": "http_call"},
            {
                "level": "error",
                "message": '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>',
                "step": "http_call",
            },
        ],
    )
    append(db, secret_run, [{"level": "info", "message": "bob only"}])
    return {"run": run, "secret_run": secret_run, "project": project}


def login(page: Page, serve: ServeProcess, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{serve.url}/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()


def collect_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_wrong_password_shows_the_auth_error(page: Page, serve: ServeProcess, seeded: dict[str, str]) -> None:
    login(page, serve, "alice@example.com", "nope")
    expect(page.get_by_test_id("login-error")).to_contain_text("Invalid login credentials", timeout=TIMEOUT)


def test_live_logs_gap_free_across_a_server_restart(
    page: Page, serve: ServeProcess, seeded: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, serve, "alice@example.com")
    rows = page.get_by_test_id("run-row")
    expect(rows.first).to_be_visible(timeout=TIMEOUT)
    page.goto(f"{serve.url}/runs/{seeded['run']}")
    log_list = page.get_by_test_id("log-list")
    expect(log_list).to_have_attribute("data-last-seq", "52", timeout=TIMEOUT)
    expect(page.get_by_test_id("conn-badge")).to_have_attribute("data-state", "live", timeout=TIMEOUT)

    append(db, seeded["run"], [{"level": "info", "message": f"live line {i}"} for i in range(10)])
    expect(log_list).to_have_attribute("data-last-seq", "62", timeout=TIMEOUT)
    expect(page.get_by_text("live line 9")).to_be_visible(
        timeout=TIMEOUT
    )  # follow mode keeps the tail in view

    # The server goes away; lines keep being written; the console must restore them all.
    badge = page.get_by_test_id("conn-badge")
    expect(badge).to_have_text("live")
    serve.stop()
    expect(badge).not_to_have_attribute("data-state", "live", timeout=TIMEOUT)
    append(db, seeded["run"], [{"level": "info", "message": f"while down {i}"} for i in range(37)])
    # The badge says so, with the seconds until the next attempt (backoff 1 s, 2 s, 5 s, 10 s).
    expect(badge).to_have_attribute("data-state", "reconnecting", timeout=TIMEOUT)
    expect(badge).to_have_text(re.compile(r"^\s*reconnecting in [1-9]\d*s\s*$"), timeout=TIMEOUT)
    expect(page.get_by_text("while down 0")).to_have_count(0)
    serve.start()
    expect(log_list).to_have_attribute("data-last-seq", "99", timeout=60_000)
    expect(badge).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    expect(badge).to_have_text("live")
    expect(log_list).to_have_attribute("data-gap-free", "true")
    # The restore notice names exactly the lines written while the server was down.
    expect(page.get_by_test_id("notice")).to_have_text("reconnected — 37 lines restored", timeout=TIMEOUT)
    expect(log_list).to_have_attribute("data-restored", "37")
    expect(page.get_by_text("while down 36")).to_be_visible(timeout=TIMEOUT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run-view.png"), full_page=True)
    assert page.evaluate("window.__pwned") is None  # the injected line stayed text
    assert not errors


def test_rls_in_the_ui(page: Page, serve: ServeProcess, seeded: dict[str, str]) -> None:
    login(page, serve, "alice@example.com")
    expect(page.get_by_test_id("run-row").first).to_be_visible(timeout=TIMEOUT)
    ids = page.get_by_test_id("run-row").evaluate_all("rows => rows.map(r => r.dataset.runId)")
    assert seeded["run"] in ids and seeded["secret_run"] not in ids
    page.goto(f"{serve.url}/runs/{seeded['secret_run']}")
    page.wait_for_timeout(1500)
    assert page.get_by_text("bob only").count() == 0


def test_ansi_and_injection_render_as_text(page: Page, serve: ServeProcess, seeded: dict[str, str]) -> None:
    login(page, serve, "bob@example.com")  # a viewer of alice's project
    expect(page.get_by_test_id("run-row").first).to_be_visible(timeout=TIMEOUT)
    page.goto(f"{serve.url}/runs/{seeded['run']}#L52")
    line = page.locator('[data-testid="log-line"][data-seq="52"]')
    expect(line).to_contain_text("<script>", timeout=TIMEOUT)
    assert page.locator('[data-testid="log-list"] img').count() == 0
    warn = page.locator('[data-testid="log-line"][data-seq="51"]')
    expect(warn).to_contain_text("retrying in 200ms", timeout=TIMEOUT)
    assert "\x1b" not in warn.inner_text()
    assert page.evaluate("window.__pwned") is None


def test_runs_list_rows_and_live_status(
    page: Page, serve: ServeProcess, seeded: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    errors = collect_errors(page)
    # The seeded run started 5 minutes ago and is running; a finished one took 2m 05s an hour ago.
    db.execute(
        "update workflow_runs set started_at = now() - interval '5 minutes' where id = %s", (seeded["run"],)
    )
    done = make_run(db, seeded["project"], make_workflow(db, seeded["project"], "refund-batch"), "failed")
    db.execute(
        "update workflow_runs set started_at = now() - interval '1 hour',"
        " finished_at = now() - interval '1 hour' + interval '125 seconds' where id = %s",
        (done,),
    )
    login(page, serve, "alice@example.com")
    expect(page.get_by_test_id("conn-badge")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    row = page.locator(f'[data-testid="run-row"][data-run-id="{seeded["run"]}"]')
    expect(row).to_contain_text("Charge-Cards", timeout=TIMEOUT)  # the workflow's name
    expect(row).to_contain_text("Payments")
    expect(row.get_by_test_id("run-status")).to_have_text("running")
    expect(row.get_by_text("5m ago")).to_be_visible()  # the start time
    expect(row.get_by_test_id("run-duration")).to_have_text(re.compile(r"^\s*5m \d\ds\s*$"))  # ticking
    finished = page.locator(f'[data-testid="run-row"][data-run-id="{done}"]')
    expect(finished).to_contain_text("Refund-Batch", timeout=TIMEOUT)
    expect(finished.get_by_test_id("run-status")).to_have_text("failed")
    expect(finished.get_by_text("1h ago")).to_be_visible()
    expect(finished.get_by_test_id("run-duration")).to_have_text("2m 05s")
    rows = page.get_by_test_id("run-row")
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.runId)")
    assert ids == [seeded["run"], done]  # newest first; bob's run is not listed

    # The run finishes: the row follows without a reload.
    page.evaluate("window.__sameDocument = true")
    db.execute(
        "update workflow_runs set status = 'succeeded', finished_at = now() where id = %s", (seeded["run"],)
    )
    expect(row).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT)
    expect(row.get_by_test_id("run-status")).to_have_text("succeeded")
    expect(row.get_by_test_id("run-duration")).to_have_text(re.compile(r"^\s*5m \d\ds\s*$"))
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert not errors


def test_an_outsider_sees_nothing_of_a_run_written_live(
    page: Page, serve: ServeProcess, seeded: dict[str, str], db: psycopg.Connection[Any], browser: Browser
) -> None:
    frames: list[str] = []

    def on_ws(ws: WebSocket) -> None:
        ws.on(
            "framereceived",
            lambda payload: frames.append(payload if isinstance(payload, str) else repr(payload)),
        )

    page.on("websocket", on_ws)
    login(page, serve, "alice@example.com")  # alice is not a member of bob's project
    expect(page.get_by_test_id("run-row").first).to_be_visible(timeout=TIMEOUT)
    page.goto(f"{serve.url}/runs/{seeded['secret_run']}")
    error = page.get_by_test_id("run-error")
    expect(error).to_have_text(
        "This run does not exist, or you are not a member of its project.", timeout=TIMEOUT
    )

    # Bob, the owner, watches the same run in another browser: the sentinel that the lines went out live.
    owner_context = browser.new_context()
    try:
        owner = owner_context.new_page()
        login(owner, serve, "bob@example.com")
        expect(owner.get_by_test_id("run-row").first).to_be_visible(timeout=TIMEOUT)
        owner.goto(f"{serve.url}/runs/{seeded['secret_run']}")
        owner_list = owner.get_by_test_id("log-list")
        expect(owner_list).to_have_attribute("data-last-seq", "1", timeout=TIMEOUT)
        expect(owner.get_by_test_id("conn-badge")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
        append(
            db, seeded["secret_run"], [{"level": "info", "message": f"secret live {i}"} for i in range(20)]
        )
        expect(owner_list).to_have_attribute("data-last-seq", "21", timeout=TIMEOUT)
        expect(owner.get_by_text("secret live 19")).to_be_visible(timeout=TIMEOUT)
    finally:
        owner_context.close()

    expect(error).to_be_visible()  # still the same clear state, and nothing of the run
    assert page.get_by_test_id("log-line").count() == 0
    assert page.get_by_text("secret live").count() == 0
    assert page.get_by_text("bob only").count() == 0
    assert page.get_by_text("Bob's secrets").count() == 0
    assert not [f for f in frames if "secret live" in f or "bob only" in f]
