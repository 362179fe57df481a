"""What the demo's simulated MeshHook runs say: pure generators of lines, pauses and an outcome.

A run is an iterator of :data:`Action` values: :class:`Line` (one log line), :class:`Pause` (time
passing: an HTTP call in flight, a ``delay`` node) and a final :class:`Finish` (the run's status). The
simulator (:mod:`meshlogs.demo.simulator`) plays them through the writer SDK in real time; the
history seeder plays them instantly with timestamps from a virtual clock. No I/O here, randomness
comes in as a ``random.Random``, so a scenario is reproducible and testable on its own.

The shapes follow MeshHook's engine: webhook received → transform (JMESPath) → http_call with retries,
exponential backoff and timings → branch → delay → terminate, one step name per node. Messages carry
ANSI colours where real tools print them, and some echo a secret that the writer masks as ``***``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "Action",
    "Finish",
    "Line",
    "Pause",
    "WorkflowSpec",
    "export_run",
    "pipeline_run",
]

GREEN: Final = "\x1b[32m"
YELLOW: Final = "\x1b[33m"
RED: Final = "\x1b[31m"
CYAN: Final = "\x1b[36m"
MAGENTA: Final = "\x1b[35m"
BOLD: Final = "\x1b[1m"
DIM: Final = "\x1b[2m"
RESET: Final = "\x1b[0m"


@dataclass(frozen=True)
class Line:
    level: str
    step: str
    message: str
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Finish:
    status: str  # succeeded | failed


Action = Line | Pause | Finish


@dataclass(frozen=True)
class WorkflowSpec:
    """A demo workflow: what its webhook receives, how it transforms and whom it calls.

    Attributes:
        slug, name, description: as stored in ``workflow_definitions``.
        source: who sends the webhook (shown in the lines).
        events: event types the webhook receives.
        expression: the transform's JMESPath expression.
        method, target: the http_call.
        secret_name, secret: the credential the http_call uses (masked by the writer).
        condition: the branch condition, and the two branch targets.
        fail_rate: chance the target keeps failing until retries are exhausted.
        long: a long batch run (``export_run``) instead of a webhook pipeline.
    """

    slug: str
    name: str
    description: str
    source: str
    events: tuple[str, ...]
    expression: str
    method: str
    target: str
    secret_name: str
    secret: str
    condition: str = "amount > `10000`"
    then_label: str = "high_value"
    else_label: str = "standard"
    fail_rate: float = 0.2
    long: bool = False

    def definition(self) -> dict[str, Any]:
        """The workflow definition JSON, shaped like MeshHook's (nodes + edges)."""
        nodes: list[dict[str, Any]] = [
            {"id": "webhook", "type": "webhook", "config": {"path": f"/hooks/{self.slug}"}},
            {
                "id": "transform",
                "type": "transform",
                "config": {"language": "jmespath", "expression": self.expression},
            },
            {
                "id": "http_call",
                "type": "http_call",
                "config": {
                    "method": self.method,
                    "url": self.target,
                    "headers": {"Authorization": f"Bearer {{{{secrets.{self.secret_name}}}}}"},
                    "retry": {"attempts": 4, "backoff": "exponential", "initial_ms": 500},
                    "timeout_ms": 10000,
                },
            },
            {
                "id": "branch",
                "type": "branch",
                "config": {"condition": self.condition, "then": "delay", "else": "terminate"},
            },
            {"id": "delay", "type": "delay", "config": {"seconds": 2}},
            {"id": "terminate", "type": "terminate", "config": {}},
        ]
        edges = [["webhook", "transform"], ["transform", "http_call"], ["http_call", "branch"]]
        edges += [["branch", "delay"], ["branch", "terminate"], ["delay", "terminate"]]
        return {
            "version": 1,
            "trigger": "webhook",
            "nodes": nodes,
            "edges": edges,
            "secrets": [self.secret_name],
        }


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def pipeline_run(spec: WorkflowSpec, rng: random.Random) -> Iterator[Action]:
    """One webhook-triggered run of ``spec``: 30 to a few hundred lines over 5-20 seconds."""
    request_id = f"req_{_hex(rng, 16)}"
    event = rng.choice(spec.events)
    event_id = f"evt_{_hex(rng, 20)}"
    ip = (
        f"{rng.choice([3, 18, 34, 52, 54])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    )
    size = rng.randrange(600, 9000)

    # -- webhook ----------------------------------------------------------------------------------
    yield Line(
        "info",
        "webhook",
        f"{BOLD}POST /hooks/{spec.slug}{RESET} from {ip} ({spec.source})",
        {"method": "POST", "content_length": size, "request_id": request_id, "remote_ip": ip},
    )
    yield Line("debug", "webhook", f"content-type: application/json; user-agent: {spec.source}-webhooks/1.0")
    yield Line(
        "debug",
        "webhook",
        f"verifying signature with {spec.secret_name}={spec.secret}",
        {"algorithm": "hmac-sha256"},
    )
    yield Line("info", "webhook", f"signature ok; event {CYAN}{event}{RESET} id={event_id}", {"event": event})
    yield Pause(rng.uniform(0.05, 0.3))

    # -- transform ---------------------------------------------------------------------------------
    items = rng.randrange(5, 120)
    amount = rng.choice([rng.randrange(100, 9_999), rng.randrange(10_000, 250_000)])
    yield Line("info", "transform", f"JMESPath {MAGENTA}{spec.expression}{RESET}")
    missing = 0
    for i in range(1, items + 1):
        item_amount = rng.randrange(50, 20_000)
        yield Line(
            "debug",
            "transform",
            f'item {i}/{items}: {{{CYAN}"sku"{RESET}: {GREEN}"SKU-{rng.randrange(10000, 99999)}"{RESET}, '
            f'{CYAN}"amount"{RESET}: {YELLOW}{item_amount}{RESET}}}',
        )
        if rng.random() < 0.03:
            missing += 1
        if i % 25 == 0:
            yield Pause(rng.uniform(0.02, 0.15))
    if missing:
        yield Line(
            "warn",
            "transform",
            f"{missing} item(s) had no customer.email; mapped to null",
            {"missing_fields": ["customer.email"], "count": missing},
        )
    transform_ms = rng.uniform(0.4, 12.0)
    yield Line(
        "info",
        "transform",
        f"mapped {items} items in {transform_ms:.1f} ms; amount={amount}",
        {"items": items, "duration_ms": round(transform_ms, 1), "amount": amount},
    )
    if rng.random() < 0.03:
        yield Line(
            "error",
            "transform",
            f"{RED}JMESPath error:{RESET} invalid type for value: None, expected one of: ['array']",
            {"expression": spec.expression},
        )
        yield Line("error", "terminate", f"{RED}✖ run failed{RESET} in transform", {"outcome": "failed"})
        yield Finish("failed")
        return

    # -- http_call with retries and exponential backoff --------------------------------------------
    failing = rng.random() < spec.fail_rate
    attempts = 4
    succeeded = False
    for attempt in range(1, attempts + 1):
        yield Line(
            "info",
            "http_call",
            f"→ {spec.method} {spec.target} (attempt {attempt}/{attempts})",
            {"attempt": attempt, "url": spec.target},
        )
        yield Line("debug", "http_call", f"Authorization: Bearer {spec.secret}")
        latency = rng.uniform(0.05, 0.9)
        flaky = failing or (attempt < attempts and rng.random() < 0.25)
        if flaky and rng.random() < 0.2:
            latency = 10.0
        yield Pause(min(latency, 2.5))
        if not flaky:
            status = rng.choice([200, 200, 201, 202])
            yield Line(
                "info",
                "http_call",
                f"← {GREEN}{status} {_OK_REASONS[status]}{RESET} in {_ms(latency)} ms",
                {"status": status, "duration_ms": _ms(latency), "attempt": attempt},
            )
            for line in range(rng.randrange(1, 5)):
                yield Line(
                    "debug", "http_call", f'  response[{line}]: {{"id": "{_hex(rng, 12)}", "ok": true}}'
                )
            succeeded = True
            break
        if latency >= 10.0:
            problem, status_attr = "timed out after 10000 ms", None
        else:
            status_attr = rng.choice([429, 500, 502, 503, 504])
            problem = f"{status_attr} {_REASONS[status_attr]} in {_ms(latency)} ms"
        if attempt < attempts:
            backoff = 0.5 * 2 ** (attempt - 1) * rng.uniform(0.8, 1.2)
            yield Line(
                "warn",
                "http_call",
                f"← {YELLOW}{problem}{RESET}; retrying in {backoff:.1f}s (exponential backoff)",
                {"status": status_attr, "attempt": attempt, "retry_in_ms": _ms(backoff)},
            )
            yield Pause(backoff)
        else:
            yield Line(
                "error",
                "http_call",
                f"← {RED}{problem}{RESET}; giving up after {attempts} attempts",
                {"status": status_attr, "attempt": attempt},
            )
    if not succeeded:
        yield Line(
            "error",
            "terminate",
            f"{RED}✖ run failed{RESET}: http_call to {spec.target} exhausted its retries",
            {"outcome": "failed"},
        )
        yield Finish("failed")
        return

    # -- branch, delay, terminate ------------------------------------------------------------------
    taken = amount > 10_000
    label = spec.then_label if taken else spec.else_label
    yield Line(
        "info",
        "branch",
        f"condition {MAGENTA}{spec.condition}{RESET} → {taken} (path {BOLD}{label}{RESET})",
        {"condition": spec.condition, "result": taken, "path": label},
    )
    if taken:
        delay = rng.choice([1.0, 2.0, 3.0])
        yield Line("info", "delay", f"waiting {delay:.0f}s before completing", {"seconds": delay})
        yield Pause(delay)
        yield Line("debug", "delay", "resumed")
    yield Line("info", "terminate", f"{GREEN}✔ workflow completed{RESET}", {"outcome": "succeeded"})
    yield Finish("succeeded")


_OK_REASONS: Final = {200: "OK", 201: "Created", 202: "Accepted"}
_REASONS: Final = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def export_run(spec: WorkflowSpec, rng: random.Random, lines: int) -> Iterator[Action]:
    """A long batch run: ``lines`` (100,000+) lines exporting ledger entries, with progress."""
    total = max(lines - 6, 1)  # plus 6 lines of framing: exactly ``lines`` in all
    yield Line(
        "info", "webhook", f"{BOLD}scheduled trigger{RESET} {spec.slug} (cron 0 2 * * *)", {"trigger": "cron"}
    )
    yield Line("info", "transform", f"JMESPath {MAGENTA}{spec.expression}{RESET}")
    yield Line("info", "transform", f"selected {total:,} ledger entries for export", {"entries": total})
    yield Line("debug", "http_call", f"Authorization: Bearer {spec.secret}")
    slow = 0
    for i in range(1, total + 1):
        entry = f"LE-{i:07d}"
        if i % 1000 == 0:
            pct = 100.0 * i / total
            yield Line(
                "info",
                "http_call",
                f"{CYAN}progress{RESET} {pct:5.1f}% ({i:,}/{total:,})",
                {"done": i, "total": total},
            )
        elif rng.random() < 0.0015:
            slow += 1
            yield Line(
                "warn",
                "http_call",
                f"{YELLOW}slow upload{RESET} for {entry}: {rng.randrange(1200, 4000)} ms",
                {"entry": entry},
            )
        else:
            yield Line(
                "debug",
                "http_call",
                f"PUT {spec.target}/{entry}.json → 200"
                f" ({rng.randrange(2, 40)} ms, {rng.randrange(300, 4000)} B)",
            )
    yield Line("info", "branch", f"condition {MAGENTA}{spec.condition}{RESET} → {slow > 0}")
    yield Line(
        "info",
        "terminate",
        f"{GREEN}✔ exported {total:,} entries{RESET} ({slow} slow uploads)",
        {"outcome": "succeeded", "entries": total},
    )
    yield Finish("succeeded")
