"""The console bench in a tiny configuration: it completes and the page ends with exactly lines 1..N.

It runs the bench script in a subprocess (its own Playwright, its own server) against this test's
database, so nothing of the browser stays in the test process. Correctness only: the timings it
prints are not asserted on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from meshlogs.server.console import console_root

BENCH = Path(__file__).resolve().parents[2] / "bench" / "console_bench.py"


@pytest.mark.browser
def test_console_bench_tiny(db_url: str) -> None:
    if not (console_root() / "index.html").is_file():
        pytest.fail("the console is not built: run scripts/setup (npm ci && npm run build in web/)")
    argv = [sys.executable, str(BENCH), "--database-url", db_url, "--json", "--timeout", "90"]
    argv += ["--lines", "3000", "--baseline-lines", "1000", "--first", "500"]
    argv += ["--rate", "200", "--live-seconds", "3", "--idle-seconds", "1"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]

    result = json.loads(proc.stdout)
    assert result["failures"] == []
    base, main = result["runs"]["baseline"], result["runs"]["main"]
    assert base["load"]["exact"] == {
        "lines": 1000,
        "last": 1000,
        "gapFree": True,
        "expected": 1000,
        "ok": True,
    }
    assert main["load"]["exact"]["ok"] and main["load"]["exact"]["last"] == 3000
    live = main["live"]
    assert live["written"] == 600
    assert live["exact"] == {"lines": 3600, "last": 3600, "gapFree": True, "expected": 3600, "ok": True}
    assert live["latency_ms"]["n"] == 600 and live["latency_ms"]["never_shown"] == 0
    assert 0 < main["load"]["first_ms"] <= main["load"]["all_ms"]
    assert "| navigation → first 500 lines shown |" in proc.stderr
