"""``meshlogs demo``: the embedded Postgres, migrations, seed, server and simulator in one process.

Order of events: start (or reuse) the embedded Postgres in the data dir, apply migrations, seed the
demo rows (idempotent), cancel runs a killed demo left 'running', seed history on a fresh database,
then serve (``run_until_signal``) while the simulator writes runs in the same event loop. SIGINT or
SIGTERM stops the server, then the simulator (live runs are marked canceled), then the embedded
Postgres (``open_database`` releases it), so nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shlex
import shutil
import signal
import sys
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from meshlogs.auth.tokens import load_jwt_secret, mint_api_key
from meshlogs.config import Settings, default_data_dir
from meshlogs.db.database import open_database
from meshlogs.db.migrate import apply_migrations
from meshlogs.demo.seed import ALICE, BOB, PROJECTS, DemoWorld, cancel_interrupted_runs, seed_demo
from meshlogs.demo.simulator import Simulator, SimulatorConfig
from meshlogs.errors import ConfigError
from meshlogs.server.run import run_until_signal

__all__ = ["DemoOptions", "run_demo"]

Echo = Callable[[str], None]


@dataclass(frozen=True)
class DemoOptions:
    open_browser: bool = True
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)


def run_demo(settings: Settings, options: DemoOptions, echo: Echo, note: Echo) -> int:
    """Run the demo until SIGINT/SIGTERM; ``echo`` prints the banner, ``note`` progress (stderr).

    Returns:
        0 after a clean stop, 130 when interrupted before the server was up.
    """
    secret = load_jwt_secret(settings)
    with open_database(settings) as url:
        note("applying migrations")
        apply_migrations(url)
        with psycopg.connect(url) as conn:
            world = seed_demo(conn)
            canceled = cancel_interrupted_runs(conn, world)
        if canceled:
            note(f"canceled {canceled} run(s) left running by an earlier demo")
        return asyncio.run(_serve(settings, url, secret, world, options, echo, note))


async def _serve(
    settings: Settings, url: str, secret: str, world: DemoWorld, options: DemoOptions, echo: Echo, note: Echo
) -> int:
    simulator = Simulator(url, world, options.simulator)
    await simulator.open()
    try:
        if not world.had_runs and options.simulator.history:
            note(
                "seeding demo history (finished runs, one with {} lines)".format(
                    f"{options.simulator.long_run_lines:,}"
                )
            )
            with _cancel_on_signal() as interrupted, contextlib.suppress(asyncio.CancelledError):
                await simulator.seed_history()
            if interrupted():
                return 130

        async def ready(port: int) -> None:
            await simulator.start()
            # The first webhook run and the long run, for those that are on.
            cfg = options.simulator
            want = min(cfg.runs, 1) + (1 if cfg.long_run_lines > 0 else 0)
            await simulator.wait_for_runs(want, timeout=10)
            console = f"http://{settings.host}:{port}"
            echo(_banner(settings, console, url, secret, simulator))
            if options.open_browser and _has_gui():
                asyncio.get_running_loop().run_in_executor(None, webbrowser.open, console)

        try:
            await run_until_signal(settings, url, secret, on_ready=ready)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ConfigError(
                f"cannot listen on {settings.host}:{settings.port}: the address is in use"
                " (another meshlogs?); choose another --port"
            ) from None
        note("stopping: canceling live runs, then the embedded Postgres")
        return 0
    finally:
        await simulator.stop()


@contextlib.contextmanager
def _cancel_on_signal() -> Iterator[Callable[[], bool]]:
    """While the block runs, SIGINT/SIGTERM cancel the current task (before the server's handlers)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    hit = False

    def cancel() -> None:
        nonlocal hit
        hit = True
        if task is not None:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, cancel)
    try:
        yield lambda: hit
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if hit and task is not None:
            task.uncancel()


def _has_gui() -> bool:
    """Whether opening a browser makes sense: without a display, ``webbrowser`` would start a text
    browser (lynx, w3m) that takes over the terminal the demo is printing to."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _program() -> str:
    if shutil.which("meshlogs"):
        return "meshlogs"
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "meshlogs":
        return shlex.quote(argv0)
    return f"{shlex.quote(sys.executable)} -m meshlogs"


def _tail_command(
    settings: Settings, console: str, run_id: str, email: str, password: str, extra: str = ""
) -> str:
    parts = [_program()]
    data_dir = Path(settings.data_dir).expanduser()
    if "MESHLOGS_DATA_DIR" not in os.environ and data_dir.resolve() != default_data_dir().resolve():
        parts += ["--data-dir", shlex.quote(str(data_dir))]
    parts += ["tail", run_id]
    if console != "http://127.0.0.1:54321":
        parts += ["--url", console]
    parts += ["--email", email, "--password", password]
    if extra:
        parts.append(extra)
    return " ".join(parts)


def _banner(settings: Settings, console: str, url: str, secret: str, simulator: Simulator) -> str:
    cfg = simulator.config
    acme = next(p for p in PROJECTS if p.key == "acme")
    bob = next(p for p in PROJECTS if p.key == "bob")
    width = max(len(ALICE.email), len(BOB.email))
    lines = [
        "",
        "meshlogs demo is running. Ctrl-C stops it (and the embedded Postgres).",
        "",
        f"  console       {console}",
        f"  logins        {ALICE.email.ljust(width)}  password {ALICE.password}   owns {acme.name!r}",
        f"                {BOB.email.ljust(width)}  password {BOB.password}     owns {bob.name!r},"
        f" viewer in {acme.name!r}",
        f"  anon key      {mint_api_key(secret, 'anon')}",
        f"  service key   {mint_api_key(secret, 'service_role')}",
        f"  database URL  {url}",
        f"  simulating    {cfg.runs} webhook runs at a time (up to {cfg.rate:g} lines/s)"
        + (
            f", plus a {cfg.long_run_lines:,}-line export at {cfg.long_run_rate:g} lines/s"
            if cfg.long_run_lines
            else ""
        ),
    ]
    acme_id = simulator.world.projects.get("acme")
    live = [r for r, w in simulator.active.items() if r != simulator.long_run_id and w.project_id == acme_id]
    tries = []
    if simulator.long_run_id:
        tries.append(_tail_command(settings, console, simulator.long_run_id, BOB.email, BOB.password))
    if live:
        tries.append(
            _tail_command(settings, console, live[0], ALICE.email, ALICE.password, "--level warn,error")
        )
    if tries:
        lines += ["", "Follow a run in another terminal:"] + [f"  {t}" for t in tries]
    lines.append("")
    return "\n".join(lines)
