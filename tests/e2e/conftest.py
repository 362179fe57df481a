"""Browser tests: Debian's Chromium driven by Playwright against a real ``meshlogs serve`` process.

Playwright cannot download browsers here, so the session fixture ``browser_type_launch_args`` points
it at ``/usr/bin/chromium`` (installed by ``scripts/setup --test``) with the flags a closed network and
a root user need. The server runs as a subprocess on a free port against this test's database.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from meshlogs.auth.tokens import mint_api_key
from meshlogs.server.console import console_root

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SECRET = "e2e-secret-" + "y" * 40
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "e2e"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; run scripts/setup --test (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def console_built() -> None:
    if not (console_root() / "index.html").is_file():
        pytest.fail("the console is not built: run scripts/setup (npm ci && npm run build in web/)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    url: str
    port: int
    db_url: str
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def anon_key(self) -> str:
        return mint_api_key(SECRET, "anon")

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOGS_")}
        env.update(
            MESHLOGS_JWT_SECRET=SECRET, MESHLOGS_DATA_DIR=str(self.data_dir), MESHLOGS_LOG_LEVEL="warning"
        )
        with open(self.data_dir / "serve.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "meshlogs",
                    "serve",
                    "--database-url",
                    self.db_url,
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {(self.data_dir / 'serve.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not become ready in 60 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self.proc = None


@pytest.fixture
def serve(db_url: str, tmp_path: Path, console_built: None) -> Iterator[ServeProcess]:
    port = free_port()
    server = ServeProcess(url=f"http://127.0.0.1:{port}", port=port, db_url=db_url, data_dir=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(serve: ServeProcess, page: Page) -> Page:
    """pytest-playwright's page, set up after the server and so closed before it stops.

    A server stopped while a page still holds its realtime websocket waits out its shutdown timeout
    (about 10 s a test); closing the page first lets it stop at once.
    """
    return page
