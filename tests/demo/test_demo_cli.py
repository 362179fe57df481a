"""``meshlogs demo`` as a newcomer runs it: a real process, a fresh data dir, the embedded Postgres.

It serves the console and streams simulated runs (in ``run_logs``, over realtime, through ``tail``);
Ctrl-C (SIGINT to the process group, as a terminal sends it) and SIGTERM stop everything, Postgres
included; a second start on the same data dir reuses the data without duplicating the seed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import psycopg
import pytest
from realtime import AsyncRealtimeClient

from meshlogs.auth.tokens import verify_token

TIMEOUT = 120


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOGS_")}
    env["MESHLOGS_DATA_DIR"] = str(data_dir)
    return env


@dataclass
class Demo:
    proc: asyncio.subprocess.Process
    banner: list[str]
    console: str = ""
    database_url: str = ""
    anon_key: str = ""
    tails: list[str] = field(default_factory=list)

    def field(self, name: str) -> str:
        for line in self.banner:
            m = re.match(rf"\s+{name}\s+(\S+)", line)
            if m:
                return m.group(1)
        raise AssertionError(f"no {name!r} in banner:\n" + "\n".join(self.banner))


async def start_demo(data_dir: Path, *extra: str) -> Demo:
    log = data_dir.parent / "demo.log"
    with log.open("ab") as sink:
        proc = await _spawn_demo(data_dir, sink, extra)
    return await _read_banner(proc, log)


async def _spawn_demo(data_dir: Path, sink: Any, extra: tuple[str, ...]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meshlogs",
        "demo",
        "--port",
        "0",
        "--no-browser",
        "--long-run-lines",
        "3000",
        "--long-run-rate",
        "300",
        "--runs",
        "2",
        "--rate",
        "300",
        "--time-scale",
        "0.3",
        *extra,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=sink,
        env=env_for(data_dir),
        start_new_session=True,  # its own process group, like a shell job
    )


async def _read_banner(proc: asyncio.subprocess.Process, log: Path) -> Demo:
    banner: list[str] = []
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                raw = await proc.stdout.readline()
                assert raw, "demo exited before printing its banner:\n" + log.read_text()
                line = raw.decode().rstrip("\n")
                banner.append(line)
                if banner[-1] == "" and any(" tail " in b for b in banner):
                    break
    except BaseException:
        await stop(proc, signal.SIGKILL)
        raise
    demo = Demo(proc, banner)
    demo.console = demo.field("console")
    demo.database_url = demo.field("database URL")
    demo.anon_key = demo.field("anon key")
    demo.tails = [b.strip() for b in banner if " tail " in b]
    return demo


async def stop(proc: asyncio.subprocess.Process, sig: int) -> int:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    try:
        return await asyncio.wait_for(proc.wait(), 60)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise AssertionError("demo did not stop within 60 s") from None


def alive(pid: int) -> bool:
    """Running, not a zombie (a container's init may be slow to reap, or never reap, orphans)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def processes_of(data_dir: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(data_dir) in part for part in p.info["cmdline"] or []) and alive(p.pid):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"select count(*) from {table}").fetchone()[0]  # type: ignore[index]
            for table in ("auth.users", "projects", "project_members", "workflow_definitions")
        }


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def login(http: aiohttp.ClientSession, demo: Demo, email: str, password: str) -> str:
    async with http.post(
        f"{demo.console}/auth/v1/token?grant_type=password",
        json={"email": email, "password": password},
        headers={"apikey": demo.anon_key},
    ) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["access_token"])


async def assert_serves_and_streams(http: aiohttp.ClientSession, demo: Demo) -> None:
    async with http.get(demo.console + "/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
    async with http.get(demo.console + "/config.json") as resp:
        assert resp.status == 200
        assert await resp.json() == {"url": demo.console, "anon_key": demo.anon_key}

    # the printed logins work; bob (a viewer in Acme) receives its lines over realtime
    assert "password bob-demo-password" in "\n".join(demo.banner)
    token = await login(http, demo, "bob@example.com", "bob-demo-password")
    received: list[dict[str, Any]] = []
    client = AsyncRealtimeClient(demo.console + "/realtime/v1", demo.anon_key)
    await client.connect()
    try:
        await client.set_auth(token)
        channel = client.channel("demo-all")
        channel.on_postgres_changes("INSERT", received.append, table="run_logs", schema="public")  # type: ignore[arg-type]
        states: list[str] = []
        await channel.subscribe(lambda s, e: states.append(str(getattr(s, "value", s))))
        assert states == ["SUBSCRIBED"], states
        async with asyncio.timeout(30):
            while len(received) < 20:
                await asyncio.sleep(0.05)
    finally:
        await client.close()
    messages = [p["data"]["record"]["message"] for p in received]
    assert all("crm_live_" not in m and "whsec_" not in m for m in messages)
    with psycopg.connect(demo.database_url) as conn:
        (coloured,) = conn.execute(
            "select count(*) from run_logs where strpos(message, chr(27) || '[') > 0"
        ).fetchone()  # type: ignore[misc]
    assert coloured > 0, "simulated runs print ANSI colours, as real tools do"

    # lines keep arriving in the table
    with psycopg.connect(demo.database_url) as conn:
        (before,) = conn.execute("select count(*) from run_logs").fetchone()  # type: ignore[misc]
        await asyncio.sleep(1.0)
        (after,) = conn.execute("select count(*) from run_logs").fetchone()  # type: ignore[misc]
    assert after > before

    # the printed tail command works (here without following, so it returns)
    args = shlex.split(demo.tails[0])
    index = args.index("tail")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meshlogs",
        *args[index:],
        "--no-follow",
        "--color",
        "never",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env_for(Path(demo.database_url.split("host=")[1]).parent),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert args[index + 1] and out.decode().count("\n") > 0 and "is running" in err.decode()


def assert_banner_keys(demo: Demo, data_dir: Path) -> None:
    """The banner prints both keys, each a valid JWT of the demo's secret with the right role."""
    text = "\n".join(demo.banner)
    assert re.search(r"^\s+anon key\s+\S+$", text, re.M) and re.search(r"^\s+service key\s+\S+$", text, re.M)
    secret = (data_dir / "jwt_secret").read_text().strip()
    service_key = demo.field("service key")
    assert verify_token(secret, demo.anon_key)["role"] == "anon"
    assert verify_token(secret, service_key)["role"] == "service_role"
    assert service_key != demo.anon_key


async def assert_signup_is_allowed(http: aiohttp.ClientSession, demo: Demo) -> None:
    headers = {"apikey": demo.anon_key, "X-Supabase-Api-Version": "2024-01-01"}
    async with http.get(f"{demo.console}/auth/v1/settings", headers=headers) as resp:
        assert resp.status == 200 and (await resp.json())["disable_signup"] is False
    email, password = "newcomer@example.com", "newcomer-password-1"
    async with http.post(
        f"{demo.console}/auth/v1/signup", json={"email": email, "password": password}, headers=headers
    ) as resp:
        body = await resp.json()
        assert resp.status == 200, body
    assert body["user"]["email"] == email and body["access_token"]
    assert await login(http, demo, email, password)


@pytest.mark.timeout(400)
async def test_demo_fresh_then_reused_and_stops_cleanly(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    data_dir = tmp_path / "data"
    first_started = time.time()
    demo = await start_demo(data_dir)
    try:
        await assert_serves_and_streams(http, demo)
        seeded = counts(demo.database_url)
        assert seeded == {"auth.users": 2, "projects": 2, "project_members": 3, "workflow_definitions": 5}
        with psycopg.connect(demo.database_url) as conn:
            (history,) = conn.execute(
                "select count(*) from workflow_runs where started_at < to_timestamp(%s)", (first_started,)
            ).fetchone()  # type: ignore[misc]
        assert history == 17  # 4 finished runs per webhook workflow, plus one long run
        assert_banner_keys(demo, data_dir)
        pgdata_pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        family = psutil.Process(demo.proc.pid).children(recursive=True)
    finally:
        code = await stop(demo.proc, signal.SIGINT)  # Ctrl-C
    assert code == 0
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()
    assert not alive(pgdata_pid)
    assert not [p for p in family if alive(p.pid)]
    assert processes_of(data_dir) == []

    demo = await start_demo(data_dir)
    try:
        await assert_serves_and_streams(http, demo)
        assert counts(demo.database_url) == seeded
        with psycopg.connect(demo.database_url) as conn:
            (history_again,) = conn.execute(
                "select count(*) from workflow_runs where started_at < to_timestamp(%s)", (first_started,)
            ).fetchone()  # type: ignore[misc]
            stale = conn.execute(
                "select count(*) from workflow_runs"
                " where status = 'running' and started_at < now() - interval '40 s'"
            ).fetchone()
        assert history_again == history  # history is not seeded twice
        assert stale == (0,)  # the first demo's live runs were canceled when it stopped
        await assert_signup_is_allowed(http, demo)  # after the counts check: it adds a user
    finally:
        code = await stop(demo.proc, signal.SIGTERM)
    assert code == 0
    assert processes_of(data_dir) == []
