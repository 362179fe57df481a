"""``tune_gc`` in a process of its own (its settings are process-wide, so never in the test process)."""

from __future__ import annotations

import subprocess
import sys

from meshlogs.server.run import GC_THRESHOLDS


def test_tune_gc_sets_thresholds_and_freezes_startup_objects() -> None:
    code = (
        "import gc; from meshlogs.server.run import tune_gc; "
        "before = gc.get_threshold(); tune_gc(); "
        "print(before, gc.get_threshold(), gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split("\n")[0] == f"(700, 10, 10) {GC_THRESHOLDS} True"
