"""The operations docs name only metrics the server really exposes, and document all of them.

The exposed names come from the real registry (:class:`meshlogs.server.metrics.Metrics`) scraped with a
stand-in gateway, so no database or socket is needed. PyYAML is not a dependency: the alert rules in
docs/howto/operate.md are checked with a small line-based reader (``groups`` / ``rules`` / ``alert``
with ``expr``, ``labels.severity`` and ``annotations.summary``), and parsed fully when PyYAML happens to
be installed.
"""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from meshlogs.realtime.gateway import GATEWAY
from meshlogs.server.metrics import Metrics
from meshlogs.server.search_index import SEARCH_INDEXER

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
OPERATE = DOCS / "howto" / "operate.md"
#: Written by another issue; not ours to check.
NOT_CHECKED = {DOCS / "benchmarks.md"}

METRIC = re.compile(r"\bmeshlogs_(?:realtime|capture|delivery|authz|search)_[a-z_]+\b")
RULES_BLOCK = re.compile(r"<!-- alert rules[^>]*-->\n```yaml\n(.*?)\n```", re.S)


def _scrape() -> str:
    status = SimpleNamespace(ready=True, lag_bytes=0)
    stats = SimpleNamespace(delivered=0, transactions=0, changes=0, resets=0, authz_failures=0)
    hub = SimpleNamespace(
        index=[],
        stats=stats,
        source=SimpleNamespace(status=status),
        authorizer=SimpleNamespace(queries=0, cache_hits=0, cache_misses=0, visibility_waits=0),
    )
    gateway = SimpleNamespace(
        hub=hub,
        sessions=[],
        stats_connections=0,
        stats_joins=0,
        stats_bytes_closed=0,
        stats_slow_consumers=0,
    )
    app = web.Application()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app[GATEWAY] = gateway  # type: ignore[assignment]  # a stand-in with the attributes read
        app[SEARCH_INDEXER] = SimpleNamespace(lines_indexed=0, failures=0, duty=1.0)  # type: ignore[assignment]
    return generate_latest(Metrics(app).registry).decode()


EXPOSITION = _scrape()
FAMILIES = set(re.findall(r"^# TYPE (\S+) \S+$", EXPOSITION, re.M))
FAMILIES -= {"meshlogs_delivery_lag_seconds_created"}  # prometheus_client's own companion gauge
SAMPLES = {line.split(" ")[0].split("{")[0] for line in EXPOSITION.splitlines() if line and line[0] != "#"}
EXPOSED = FAMILIES | SAMPLES


def test_the_stand_in_scrape_sees_the_real_metrics() -> None:
    core = {
        "meshlogs_realtime_connections",
        "meshlogs_capture_ready",
        "meshlogs_delivery_lag_seconds",
        "meshlogs_search_index_duty",
    }
    assert core <= FAMILIES
    assert "meshlogs_realtime_slow_consumer_disconnects_total" in SAMPLES


def test_every_metric_is_documented_in_operate_md() -> None:
    documented = set(re.findall(r"^\| `(meshlogs_[a-z_]+)` \|", OPERATE.read_text(encoding="utf-8"), re.M))
    assert documented == FAMILIES, (
        f"docs/howto/operate.md metrics table: missing {sorted(FAMILIES - documented)}, "
        f"not exposed {sorted(documented - FAMILIES)}"
    )


CHECKED = sorted(p for p in DOCS.rglob("*.md") if p not in NOT_CHECKED)


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_only_real_metrics(path: Path) -> None:
    unknown = sorted(set(METRIC.findall(path.read_text(encoding="utf-8"))) - EXPOSED)
    assert not unknown, f"{path.relative_to(ROOT)} names metrics the server does not expose: {unknown}"


def _rules_text() -> str:
    match = RULES_BLOCK.search(OPERATE.read_text(encoding="utf-8"))
    assert match, "docs/howto/operate.md has no '<!-- alert rules -->' yaml block"
    return match.group(1)


def _rules_line_based(text: str) -> list[dict[str, Any]]:
    """Enough of YAML for this file: block mappings and lists, ``>`` folded scalars, # comments."""
    lines = text.splitlines()
    assert lines[0] == "groups:", "the rules file starts with 'groups:'"
    assert any(re.fullmatch(r"  - name: \S+", line) for line in lines), "a group needs a name"
    assert "    rules:" in lines
    rules: list[dict[str, Any]] = []
    key = ""
    for line in lines:
        if re.fullmatch(r"\s*#.*|\s*|groups:|  - name: \S+|    rules:", line):
            continue
        if m := re.fullmatch(r"      - alert: (\w+)", line):
            rules.append({"alert": m.group(1)})
        elif rules and (m := re.fullmatch(r"        (expr|for|labels|annotations):(?: (.*))?", line)):
            key = m.group(1)
            value = (m.group(2) or "").split("  #")[0].strip()
            rules[-1][key] = {} if key in ("labels", "annotations") else ("" if value == ">" else value)
        elif rules and key == "expr" and line.startswith("          "):
            rules[-1]["expr"] = (rules[-1]["expr"] + " " + line.strip()).strip()
        elif rules and key in ("labels", "annotations") and (m := re.fullmatch(r" {10}(\w+): (.+)", line)):
            rules[-1][key][m.group(1)] = m.group(2).strip().strip('"')
        else:
            raise AssertionError(f"unexpected line in the alert rules: {line!r}")
    return rules


def _rules() -> list[dict[str, Any]]:
    text = _rules_text()
    rules = _rules_line_based(text)
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        return rules
    parsed = yaml.safe_load(text)
    full = [rule for group in parsed["groups"] for rule in group["rules"]]
    assert [r["alert"] for r in full] == [r["alert"] for r in rules]
    return full


def test_alert_rules_parse_and_use_real_metrics() -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    wanted = {"MeshlogsCaptureDown", "MeshlogsDeliveryLagHigh", "MeshlogsConnectionDropSpike"}
    assert wanted <= set(names), "connection drops, delivery lag and capture need an alert"
    for rule in rules:
        expr = str(rule.get("expr", ""))
        assert expr, f"{rule['alert']} has no expr"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert expr.count("(") == expr.count(")"), f"{rule['alert']}: unbalanced parentheses"
        used = set(METRIC.findall(expr))
        assert used, f"{rule['alert']} uses no meshlogs metric"
        assert used <= EXPOSED, f"{rule['alert']} uses metrics the server does not expose: {used - EXPOSED}"
        for name in used:
            if name.endswith("_bucket"):
                assert "histogram_quantile" in expr, f"{rule['alert']}: {name} only makes sense in a quantile"
            elif name.endswith("_total"):
                assert re.search(rf"(rate|increase|resets)\({name}\[", expr), (
                    f"{rule['alert']}: counter {name} needs rate()/increase()/resets()"
                )
