"""Simulated runs on their own: MeshHook's node order, outcomes, line counts, secrets to be masked."""

from __future__ import annotations

import random
import re
from collections import Counter

import click

from meshlogs.cli import cli
from meshlogs.demo.scenarios import Finish, Line, Pause, export_run, pipeline_run
from meshlogs.demo.seed import PROJECTS
from meshlogs.demo.simulator import SimulatorConfig

SPECS = [spec for project in PROJECTS for spec in project.workflows]
WEBHOOK = [s for s in SPECS if not s.long]
ORDER = ["webhook", "transform", "http_call", "branch", "delay", "terminate"]
SGR = re.compile(r"\x1b\[[0-9;]*m")


def test_pipeline_runs_follow_the_node_order_and_end_with_an_outcome() -> None:
    outcomes: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    for seed in range(300):
        spec = WEBHOOK[seed % len(WEBHOOK)]
        actions = list(pipeline_run(spec, random.Random(seed)))
        assert isinstance(actions[-1], Finish) and sum(isinstance(a, Finish) for a in actions) == 1
        lines = [a for a in actions if isinstance(a, Line)]
        steps = [ORDER.index(line.step) for line in lines]
        assert steps == sorted(steps), "steps run in MeshHook's order"
        assert lines[0].step == "webhook" and lines[-1].step == "terminate"
        assert all(
            isinstance(a.seconds, float) and 0 <= a.seconds <= 10 for a in actions if isinstance(a, Pause)
        )
        assert any(spec.secret in line.message for line in lines), (
            "the secret is echoed (the writer masks it)"
        )
        outcomes[actions[-1].status] += 1
        levels.update(line.level for line in lines)
        if actions[-1].status == "failed":
            assert any(line.level == "error" for line in lines)
    assert outcomes["succeeded"] > outcomes["failed"] > 20
    assert set(levels) == {"debug", "info", "warn", "error"}
    # retries with backoff and timings show up
    text = "\n".join(a.message for a in pipeline_run(WEBHOOK[1], random.Random(3)) if isinstance(a, Line))
    assert "attempt 1/4" in text


def test_retries_use_exponential_backoff() -> None:
    for seed in range(200):
        warns = [
            a.attrs["retry_in_ms"]
            for a in pipeline_run(WEBHOOK[1], random.Random(seed))
            if isinstance(a, Line) and a.level == "warn" and "retry_in_ms" in a.attrs
        ]
        if len(warns) >= 3:
            assert warns[0] < warns[1] < warns[2]
            return
    raise AssertionError("no run retried three times")


def test_export_run_has_exactly_the_lines_asked_for() -> None:
    spec = next(s for s in SPECS if s.long)
    actions = list(export_run(spec, random.Random(1), 100_000))
    lines = [a for a in actions if isinstance(a, Line)]
    assert len(lines) == 100_000 and actions[-1] == Finish("succeeded")
    assert sum("progress" in line.message for line in lines) == 99


def test_definitions_are_meshhook_shaped() -> None:
    for spec in SPECS:
        d = spec.definition()
        assert [n["type"] for n in d["nodes"]] == ORDER
        assert d["nodes"][1]["config"]["language"] == "jmespath"
        assert spec.secret not in str(d), "definitions reference secrets, never contain them"


def test_runs_carry_ansi_colours_as_real_tools_print_them() -> None:
    for seed in range(50):
        spec = WEBHOOK[seed % len(WEBHOOK)]
        messages = [a.message for a in pipeline_run(spec, random.Random(seed)) if isinstance(a, Line)]
        coloured = [m for m in messages if SGR.search(m)]
        assert coloured, (spec.slug, seed)
        # every colour is switched off again within its line, as a tool's output would be
        assert all(m.count("\x1b[0m") >= 1 for m in coloured), coloured
        assert any(not SGR.search(m) for m in messages), "plain lines too"
    long = next(s for s in SPECS if s.long)
    export = [a.message for a in export_run(long, random.Random(2), 3000) if isinstance(a, Line)]
    assert any("\x1b[36mprogress\x1b[0m" in m for m in export)


def test_the_default_long_run_is_120000_lines() -> None:
    assert SimulatorConfig().long_run_lines >= 120_000
    demo = cli.commands["demo"]
    assert isinstance(demo, click.Command)
    option = next(p for p in demo.params if p.name == "long_run_lines")
    assert option.default == SimulatorConfig().long_run_lines == 120_000
    # the default size is what the generator produces (generated only, never written here)
    spec = next(s for s in SPECS if s.long)
    actions = export_run(spec, random.Random(5), SimulatorConfig().long_run_lines)
    assert sum(isinstance(a, Line) for a in actions) == 120_000
