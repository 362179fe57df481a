"""meshlogs works as a normal (non-root) user too: the embedded Postgres runs as that user, in its
data dir, and stops when the command exits.

CI runs as root, where meshlogs drops privileges for Postgres (tests elsewhere cover that path); this
test takes the other one by running the CLI as ``nobody``. The project's interpreter may live where
``nobody`` cannot reach it (pyenv under /root), so the test uses a system Python of the same minor
version with the project's site-packages on the path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python_for(runuser: str, user: str) -> str | None:
    """An interpreter ``user`` may run, with our ABI (site-packages holds compiled extensions)."""
    want = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{want}", f"/usr/local/bin/{want}"):
        probe = subprocess.run(
            [runuser, "-u", user, "--", candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(sys.version_info[:2]):
            return candidate
    return None


@pytest.fixture
def as_nobody() -> Iterator[tuple[list[str], dict[str, str], Path]]:
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if os.geteuid() != 0 or runuser is None:
        pytest.skip("needs root to switch to a normal user (CI runs as root)")
    python = _python_for(runuser, "nobody")
    if python is None:
        pytest.skip("no interpreter of this Python version that 'nobody' may run")
    base = Path(tempfile.mkdtemp(prefix="meshlogs-nobody-"))  # not under /tmp/pytest-of-root (0700)
    base.chmod(0o755)
    home = base / "home"
    home.mkdir()
    shutil.chown(home, "nobody", "nogroup")
    site = sysconfig.get_paths()["purelib"]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "MESHLOGS_DATA_DIR": str(home / "data"),
        "PYTHONPATH": f"{ROOT / 'src'}:{site}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    try:
        yield [runuser, "-u", "nobody", "--", python, "-m", "meshlogs"], env, home / "data"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_migrate_and_keys_as_a_normal_user(as_nobody: tuple[list[str], dict[str, str], Path]) -> None:
    cmd, env, data = as_nobody
    migrated = subprocess.run(
        [*cmd, "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "applied 0001_supabase_base" in migrated.stdout + migrated.stderr
    assert (data / "pgdata").owner() == "nobody"
    # the second run reuses the cluster and the secret, and has nothing left to apply
    keys = subprocess.run(
        [*cmd, "keys", "--json"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert keys.returncode == 0, keys.stderr
    assert set(json.loads(keys.stdout)) >= {"anon_key", "service_role_key"}
    assert (data / "jwt_secret").owner() == "nobody"
    again = subprocess.run(
        [*cmd, "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert again.returncode == 0 and "applied 0001" not in again.stdout + again.stderr, again.stderr
    # and no Postgres is left running on that data dir once the commands have exited
    deadline = time.monotonic() + 30
    while live := [
        p.pid
        for p in psutil.process_iter(["cmdline", "status"])
        if p.info["status"] != psutil.STATUS_ZOMBIE and str(data) in " ".join(p.info["cmdline"] or [])
    ]:
        assert time.monotonic() < deadline, f"postgres still running: {live}"
        time.sleep(0.2)
