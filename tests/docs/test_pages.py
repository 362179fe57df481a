"""The required docs pages exist and say what they are for: each names the things a reader comes for.

Not a style check: each phrase below is a fact a reader of that page needs (a systemd unit, the
WebSocket headers a reverse proxy must pass, the publication Supabase Realtime streams...). The
protocol page's tested client versions must be the versions the test suite really runs against.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

#: page -> phrases (regular expressions, case-insensitive) it must contain.
REQUIRED: dict[str, list[str]] = {
    "topics/architecture.md": [
        r"dense per-run sequence",
        r"run_log_seq",
        r"logical replication|pgoutput",
        r"fan-out",
        r"backfill",
        r"seq=gt\.",
        r"RLS|row-level security",
    ],
    "reference/protocol.md": [
        r"^\|\s*feature\s*\|\s*status\s*\|",  # the compatibility matrix
        r"## Realtime",
        r"## REST",
        r"## Auth",
        r"vsn 1\.0\.0",
        r"vsn 2\.0\.0",
        r"postgres_changes",
    ],
    "topics/security.md": [
        r"RLS|row-level security",
        r"append_run_logs\(\)",
        r"service_role",
        r"HS256",
        r"alg: none",
        r"masked|\*\*\*",
    ],
    "howto/operate.md": [
        r"/healthz",
        r"/readyz",
        r"/metrics",
        r"slow.consumer",
        r"alert",
    ],
    "howto/deploy-one-machine.md": [
        r"\[Unit\]",
        r"\[Service\]",
        r"ExecStart=\S*meshlogs serve",
        r"\[Install\]",
        r"WantedBy=multi-user\.target",
        r"proxy_http_version 1\.1",
        r"proxy_set_header Upgrade \$http_upgrade",
        r"proxy_set_header Connection \$connection_upgrade",
        r"map \$http_upgrade \$connection_upgrade",
        r"MESHLOGS_PUBLIC_URL",
    ],
    "howto/deploy-supabase.md": [
        r"supabase_realtime",
        r"publication",
        r"pg_publication_tables",
        r"alter publication supabase_realtime add table",
        r"Broadcast from the database",
        r"realtime\.broadcast_changes",
        r"realtime\.messages",
    ],
    "howto/scale-out.md": [
        r"load balancer",
        r"sticky sessions",
        r"slot",
        r"MESHLOGS_JWT_SECRET",
        r"partition",
    ],
    "howto/migrate-livelogs.md": [
        r"LiveLogs\.svelte",
        r"subscribe first, then backfill",
        r"seq",
        r"reconnect",
        r"meshlogs migrate",
        r"project_members",
    ],
}


def _text(page: str) -> str:
    path = DOCS / page
    assert path.is_file(), f"docs/{page} is missing"
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("page", sorted(REQUIRED))
def test_required_page_exists_and_covers_its_subject(page: str) -> None:
    text = _text(page)
    assert text.startswith("# "), f"docs/{page} has no title"
    missing = [p for p in REQUIRED[page] if not re.search(p, text, re.I | re.M)]
    assert not missing, f"docs/{page} does not mention {missing}"


def test_required_pages_are_linked_from_the_index() -> None:
    index = _text("README.md")
    unlinked = [page for page in REQUIRED if f"({page})" not in index and f"(./{page})" not in index]
    assert not unlinked, f"docs/README.md does not link {unlinked}"


def test_systemd_unit_is_a_complete_block() -> None:
    text = _text("howto/deploy-one-machine.md")
    blocks = re.findall(r"```ini\n(.*?)```", text, re.S)
    unit = next((b for b in blocks if "[Service]" in b), None)
    assert unit is not None, "no ```ini block with a systemd unit"
    sections = re.findall(r"^\[(\w+)\]$", unit, re.M)
    assert sections == ["Unit", "Service", "Install"]
    for line in unit.splitlines():
        # systemd has no end-of-line comments: a '#' after a value becomes part of it
        if "=" in line and not line.lstrip().startswith("#"):
            assert " #" not in line, f"end-of-line comment in the unit: {line!r}"


def test_reverse_proxy_passes_websocket_upgrades() -> None:
    text = _text("howto/deploy-one-machine.md")
    block = next((b for b in re.findall(r"```nginx\n(.*?)```", text, re.S)), None)
    assert block is not None, "no ```nginx block"
    location = block[block.index("location") :]
    for directive in (
        "proxy_http_version 1.1",
        "proxy_set_header Upgrade $http_upgrade",
        "proxy_set_header Connection $connection_upgrade",
        "proxy_pass http://",
    ):
        assert directive in location, f"the proxied location lacks {directive!r}"
    # the heartbeat must fit in the read timeout (clients send one every 25 s)
    timeout = re.search(r"proxy_read_timeout\s+(\d+)s", location)
    assert timeout is not None and int(timeout.group(1)) > 25


def test_protocol_page_names_the_client_versions_the_tests_use() -> None:
    text = _text("reference/protocol.md")
    pinned = json.loads((ROOT / "tests" / "js" / "package.json").read_text())["dependencies"]
    js_version = pinned["@supabase/supabase-js"]
    assert f"`@supabase/supabase-js` {js_version}" in text, (
        f"protocol.md does not name supabase-js {js_version}, the version tests/js pins"
    )
    for dist in ("realtime", "supabase"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"the test dependency {dist} is not installed")
        assert re.search(rf"`{dist}` {re.escape(version)}\b", text), (
            f"protocol.md does not name {dist} {version}, the installed (tested) version"
        )
