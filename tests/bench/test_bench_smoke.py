"""The gateway bench in a tiny configuration: it completes and every viewer got exactly seq 1..N.

This checks correctness only (the bench's plumbing and the gateway's delivery under it), never
speed: the timing figures it prints are not asserted on.
"""

from __future__ import annotations

import json

import pytest

from meshlogs.bench import run_bench


def test_gateway_bench_tiny_fanout(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--scenarios", "fanout", "--database-url", db_url, "--clients", "1", "--json"]
    argv += ["--fanout-runs", "5", "--fanout-viewers", "2", "--fanout-steps", "100", "--step-seconds", "2"]

    assert run_bench(argv) == 0

    result = json.loads(capsys.readouterr().out)
    fanout = result["scenarios"]["fanout"]
    assert fanout["joined"]["opened"] == 10
    seqs = fanout["correctness"]
    assert seqs["lines"] > 0
    assert (seqs["viewers"], seqs["complete"]) == (10, 10)
    assert (seqs["missing_seqs"], seqs["dups"], seqs["reordered"], seqs["closed_by_server"]) == (0, 0, 0, 0)
    assert [r["warmup"] for r in fanout["rows"]] == [True, False]
    for row in fanout["rows"]:
        assert row["latency"]["n"] > 0  # every step's lines reached the viewers
