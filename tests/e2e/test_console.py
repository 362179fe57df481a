"""The Run Console in Chromium against a real server: login, runs list, live logs gap-free across a
server restart, RLS in the UI, ANSI rendered safely. Screenshots land in build/e2e/."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, expect

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
    serve.stop()
    expect(page.get_by_test_id("conn-badge")).not_to_have_attribute("data-state", "live", timeout=TIMEOUT)
    append(db, seeded["run"], [{"level": "info", "message": f"while down {i}"} for i in range(37)])
    serve.start()
    expect(log_list).to_have_attribute("data-last-seq", "99", timeout=60_000)
    expect(page.get_by_test_id("conn-badge")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    expect(log_list).to_have_attribute("data-gap-free", "true")
    expect(page.get_by_test_id("notice")).to_contain_text(re.compile(r"restored"), timeout=TIMEOUT)
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
