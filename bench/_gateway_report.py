"""Tables for ``bench/gateway_bench.py``: one markdown table per scenario, from the result dict.

The same dict is what ``--json`` prints, so the tables never show anything the JSON lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = dict[str, Any]
Column = tuple[str, Callable[[Row], str]]

CPU_KEYS = (("server", "srv"), ("clients", "cli"), ("writer", "wrt"), ("postgres", "pg"))


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pcts(summary: dict[str, Any] | None, keys: tuple[str, ...] = ("p50_ms", "p95_ms", "p99_ms")) -> str:
    return " / ".join(_ms(summary.get(k)) for k in keys) if summary else "–"


def cpu_cell(cpu: dict[str, float] | None) -> str:
    """``srv 0.41 · cli 0.30 · wrt 0.05 · pg 0.62 (wal 0.10) · other 0.20``, in cores."""
    if not cpu:
        return "–"
    parts = [f"{short} {cpu[key]:.2f}" for key, short in CPU_KEYS if key in cpu]
    if "walsender" in cpu and "postgres" in cpu:
        parts[-1] += f" (wal {cpu['walsender']:.2f})"
    parts.append(f"other {cpu.get('other', 0.0):.2f}")
    return " · ".join(parts)


def correctness_cell(c: dict[str, Any] | None) -> str:
    if not c:
        return "–"
    if c["complete"] == c["viewers"]:
        return f"{c['viewers']}/{c['viewers']} exact"
    parts = [f"**{c['complete']}/{c['viewers']} exact**"]
    if c["gap_seqs"] or c["dups"] or c["reordered"]:
        parts.append(f"{c['gap_seqs']} gaps, {c['dups']} dups, {c['reordered']} reordered")
    if c["closed_by_server"]:
        parts.append(f"{c['closed_by_server']} closed by the server ({c['lost_after_close']} seqs lost)")
    if c["behind"]:
        parts.append(
            f"{c['behind']} still behind by {c['behind_seqs']} seqs after {c.get('waited_s', 0):.0f} s"
        )
    return "; ".join(parts)


def _lat(key: str) -> Callable[[Row], str]:
    return lambda r: _ms((r.get("latency") or {}).get(key))


LATENCY_COLUMNS: list[Column] = [
    ("", lambda r: str(r["label"])),
    ("n", lambda r: _num((r.get("latency") or {}).get("n"))),
    ("p50 ms", _lat("p50_ms")),
    ("p95 ms", _lat("p95_ms")),
    ("p99 ms", _lat("p99_ms")),
    ("max ms", _lat("max_ms")),
    ("from commit ack p50/p95/p99", lambda r: _pcts(r.get("from_commit"))),
    ("msgs/s", lambda r: _num(r.get("msgs_per_s"))),
    ("write ms p50/p99", lambda r: _pcts(r.get("write_ms"), ("p50_ms", "p99_ms"))),
    ("DB xact/s", lambda r: _num(r.get("db_xacts_per_s"))),
    ("CPU cores", lambda r: cpu_cell(r.get("cpu"))),
    ("seq check", lambda r: correctness_cell(r.get("correctness"))),
]

RAMP_COLUMNS: list[Column] = [
    ("step", lambda r: str(r["label"])),
    ("target msgs/s", lambda r: _num(r.get("target_msgs_per_s"))),
    ("delivered msgs/s", lambda r: _num(r.get("msgs_per_s"))),
    ("delivered %", lambda r: _num(r.get("delivered_pct"), 2)),
    ("writes on time %", lambda r: _num(r.get("produced_pct"), 1)),
    ("p50 ms", _lat("p50_ms")),
    ("p95 ms", _lat("p95_ms")),
    ("p99 ms", _lat("p99_ms")),
    ("write ms p50/p99", lambda r: _pcts(r.get("write_ms"), ("p50_ms", "p99_ms"))),
    ("authz q/s", lambda r: _num(r.get("authz_queries_per_s"))),
    ("visibility waits/s", lambda r: _num(r.get("visibility_waits_per_s"), 1)),
    ("CPU cores", lambda r: cpu_cell(r.get("cpu"))),
    ("ok", lambda r: "warm-up" if r.get("warmup") else ("yes" if r.get("ok") else "**no**")),
]

WRITER_COLUMNS: list[Column] = [
    ("round", lambda r: str(r["label"])),
    ("lines/s", lambda r: _num(r.get("lines_per_s"))),
    ("ratio vs off", lambda r: _num(r.get("ratio"), 3)),
    ("lines per Postgres core-s (excl. walsender)", lambda r: _num(r.get("lines_per_pg_core"))),
    ("write ms p50/p99", lambda r: _pcts(r.get("write_ms"), ("p50_ms", "p99_ms"))),
    ("delivery p50/p95/p99 ms", lambda r: _pcts(r.get("latency"))),
    ("CPU cores", lambda r: cpu_cell(r.get("cpu"))),
    ("seq check", lambda r: correctness_cell(r.get("correctness"))),
]

IDLE_COLUMNS: list[Column] = [
    ("connections", lambda r: _num(r["connections"])),
    ("joined", lambda r: _num(r["joined"])),
    ("connect s", lambda r: _num(r["connect_seconds"], 1)),
    ("server RSS before MiB", lambda r: _num(r["rss_before"] / 2**20, 1)),
    ("after MiB", lambda r: _num(r["rss_after"] / 2**20, 1)),
    ("KiB/connection", lambda r: _num(r["kib_per_connection"], 1)),
    ("idle CPU cores", lambda r: cpu_cell(r.get("cpu"))),
]


def table(title: str, scenario: dict[str, Any], columns: list[Column]) -> str:
    lines = [
        f"### {title}",
        "",
        "| " + " | ".join(h for h, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(fn(r) for _, fn in columns) + " |" for r in scenario["rows"]]
    notes = []
    if scenario.get("target"):
        notes.append(f"target: {scenario['target']} → **{scenario.get('verdict', '?')}**")
    notes += scenario.get("notes", [])
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines)


SECTIONS: dict[str, tuple[str, list[Column]]] = {
    "light": ("1. Light load: 1 run, 1 viewer, 50 lines/s", LATENCY_COLUMNS),
    "fanout": ("2. Fan-out: runs × viewers (distinct users, RLS on), all writing: rate ramp", RAMP_COLUMNS),
    "hot": ("3. Hot run: 1 run, many viewers (distinct users)", LATENCY_COLUMNS),
    "writer": (
        "4. Writer overhead: append throughput with the gateway + viewers vs. gateway off",
        WRITER_COLUMNS,
    ),
    "idle": ("5. Idle connections, one channel each: server RSS per connection", IDLE_COLUMNS),
    "notify": ("NOTIFY trigger baseline", LATENCY_COLUMNS),
}

LEGEND = (
    "Latency = client receive time − the writer's wall-clock stamp taken just before the statement that"
    " inserts and commits the line (so it includes the append and its commit, shown as 'write ms');"
    " 'from commit ack' = receive time − the moment the writer got the commit acknowledged (can be ≤ 0:"
    " the WAL may reach the gateway first), measured where each statement writes one line. CPU in cores"
    " (CPU-s per s, 1.00 = one core): srv = meshlogs server, cli = load clients, wrt = writer, pg = all"
    " Postgres processes (wal = walsenders: logical decoding for the gateway), other = everything else on"
    " the machine (other tenants of this VM, kernel)."
)


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    head = (
        f"## Gateway bench — {meta['date']} — commit {meta['commit']}\n\n`{meta['command']}`\n\n"
        f"{meta['cpus']} CPUs, Python {meta['python']}, PostgreSQL {meta.get('postgres', '?')}, load"
        f" average {meta['load_before']:.1f} before / {meta.get('load_after', 0):.1f} after.\n\n{LEGEND}"
    )
    parts = [head]
    for key, (title, columns) in SECTIONS.items():
        if key in result["scenarios"]:
            parts.append(table(title, result["scenarios"][key], columns))
    return "\n\n".join(parts) + "\n"
