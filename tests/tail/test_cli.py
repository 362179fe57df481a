"""``meshlogs tail`` as a user runs it: a real subprocess against a real server. Exit codes, messages,
JSON, and gap-free following across a restart of a ``meshlogs serve`` process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
import pytest

from meshlogs.auth.tokens import mint_api_key
from meshlogs.writer import AsyncLogWriter
from tests.factories import append
from tests.support.server import SECRET, RunningServer
from tests.tail.conftest import PASSWORD, TailWorld

TIMEOUT = 60


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOGS_") and k != "NO_COLOR"}
    env.update({"MESHLOGS_DATA_DIR": str(data_dir), **extra})
    return env


@dataclass
class Done:
    code: int
    out: str
    err: str

    def seqs(self) -> list[int]:
        return [orjson.loads(line)["seq"] for line in self.out.splitlines()]


async def meshlogs(*args: str, env: dict[str, str], timeout: float = TIMEOUT) -> Done:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meshlogs",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


async def test_exit_codes_json_and_messages(
    server: RunningServer, tw: TailWorld, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    w = tw.world
    env = base_env(tmp_path, MESHLOGS_ACCESS_TOKEN=server.user_token(w.viewer))
    common = ["--url", server.url, "--anon-key", server.anon_key]

    ok = await meshlogs("tail", w.run_a, *common, "--no-follow", "--json", env=env)
    assert (ok.code, ok.seqs()) == (0, [1, 2]), ok.err
    db.execute("update workflow_runs set status = 'failed' where id = %s", (w.run_a,))
    failed = await meshlogs("tail", w.run_a, *common, "--json", "--level", "error", env=env)
    assert (failed.code, failed.seqs()) == (1, [2]), failed.err
    assert f"run {w.run_a} failed (2 lines)" in failed.err

    text = await meshlogs("tail", w.run_a, *common, "--color", "never", "--utc", env=env)
    lines = text.out.splitlines()
    assert text.code == 1 and len(lines) == 2 and lines[1].split()[2:] == ["ERROR", "a2"]
    colored = await meshlogs("tail", w.run_a, *common, "--color", "always", env=env)
    assert "\x1b[1;31mERROR" in colored.out

    # logins: good, bad; no access; usage errors -- all exit 2 with one clear line
    login = [*common, "--email", tw.viewer_email]
    good = await meshlogs("tail", w.run_a, *login, "--password", PASSWORD, "--json", env=base_env(tmp_path))
    assert (good.code, good.seqs()) == (1, [1, 2]), good.err
    cases = [
        (
            [w.run_a, *login, "--password", "nope-nope"],
            f"error: login failed for {tw.viewer_email}: Invalid login credentials",
        ),
        ([w.run_b, *common], f"error: run {w.run_b} not found, or you are not allowed to see it"),
        (["not-a-run", *common], "RUN_ID must be a run's UUID, got 'not-a-run'"),
        ([w.run_a, *common, "--level", "loud"], "unknown level 'loud'"),
        ([w.run_a, *common, "--grep", "("], "not a regular expression"),
        ([w.run_a, "--url", f"http://127.0.0.1:{free_port()}"], "no API key: pass --anon-key"),
        ([w.run_a, "--url", server.url, "--anon-key", "garbage"], "rejected the API key"),
    ]
    for args, message in cases:
        res = await meshlogs("tail", *args, env=env)
        assert res.code == 2 and message in res.err, (args, res)
        assert "Traceback" not in res.err

    # without --anon-key, the key is minted from the local secret (here MESHLOGS_JWT_SECRET)
    minted = await meshlogs(
        "tail", w.run_a, "--url", server.url, "--json", env={**env, "MESHLOGS_JWT_SECRET": SECRET}
    )
    assert (minted.code, minted.seqs()) == (1, [1, 2]), minted.err

    # with neither, the server's own /config.json gives it (as for its console), whatever secret the
    # local data dir holds
    other = tmp_path / "other"
    other.mkdir()
    (other / "jwt_secret").write_text("z" * 40)
    served = await meshlogs("tail", w.run_a, "--url", server.url, "--json", env={**env, **base_env(other)})
    assert (served.code, served.seqs()) == (1, [1, 2]), served.err


ESC = "\x1b"
#: Lines appended after make_world's two (seq 1 "a1", seq 2 "a2", no step): seq 3..8.
STEPPED = [
    {"level": "info", "step": "webhook", "message": "POST /hooks/build"},
    {"level": "info", "step": "http_call", "message": "retry 1"},
    {"level": "warn", "step": "http_call", "message": "\x1b[33mretry 2\x1b[0m of 3"},
    {"level": "info", "step": "transform", "message": "\x1b[32mdeploy\x1b[0m ok"},
    {"level": "info", "step": "http_call", "message": "done after retry 2"},
    {"level": "info", "step": "terminate", "message": "finished"},
]


async def meshlogs_on_a_tty(*args: str, env: dict[str, str], timeout: float = TIMEOUT) -> str:
    """Run meshlogs with its stdout on a pseudo-terminal; what it wrote there."""
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "meshlogs",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=slave,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    finally:
        os.close(slave)

    def read_all() -> bytes:
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        out, (_, err) = await asyncio.wait_for(
            asyncio.gather(asyncio.to_thread(read_all), proc.communicate()), timeout
        )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_filters_and_colour_choices(
    server: RunningServer, tw: TailWorld, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    w = tw.world
    append(db, w.run_a, STEPPED)
    db.execute("update workflow_runs set status = 'succeeded' where id = %s", (w.run_a,))
    env = base_env(tmp_path, MESHLOGS_ACCESS_TOKEN=server.user_token(w.viewer))
    common = [w.run_a, "--url", server.url, "--anon-key", server.anon_key, "--no-follow"]

    async def rows(*extra: str) -> list[dict[str, Any]]:
        res = await meshlogs("tail", *common, "--json", *extra, env=env)
        assert res.code == 0, res.err
        return [orjson.loads(line) for line in res.out.splitlines()]

    everything = await rows()
    assert [r["seq"] for r in everything] == list(range(1, 9))

    http_call = await rows("--step", "http_call")
    assert [r["seq"] for r in http_call] == [4, 5, 7]
    assert {r["step"] for r in http_call} == {"http_call"}
    two_steps = await rows("--step", "webhook", "--step", "terminate")
    assert [r["seq"] for r in two_steps] == [3, 8]

    assert [r["seq"] for r in await rows("--since-seq", "5")] == [6, 7, 8]
    assert [r["seq"] for r in await rows("--since-seq", "8")] == []

    # a regex, matched against the message without its colour codes
    assert [r["seq"] for r in await rows("--grep", r"^retry \d+")] == [4, 5]
    assert [r["seq"] for r in await rows("--grep", "deploy ok")] == [6]
    assert [r["seq"] for r in await rows("--grep", r"(?i)RETRY 2", "--since-seq", "5")] == [7]
    combined = await rows("--step", "http_call", "--grep", "retry 2", "--level", "warn")
    assert [r["seq"] for r in combined] == [5]

    async def text(*extra: str, **more_env: str) -> str:
        res = await meshlogs("tail", *common, *extra, env={**env, **more_env})
        assert res.code == 0, res.err
        assert len(res.out.splitlines()) == 8, res.out
        return res.out

    always = await text("--color", "always")
    assert ESC + "[" in always and "\x1b[33mretry 2\x1b[0m" in always  # the message's own colours too
    never = await text("--color", "never")
    assert ESC not in never and "retry 2 of 3" in never and "deploy ok" in never
    assert ESC not in await text("--color", "auto")  # stdout is a pipe here
    assert ESC not in await text()  # auto is the default
    assert ESC + "[" in await text("--color", "always", NO_COLOR="1")  # an explicit choice wins

    # on a terminal, auto colours unless NO_COLOR is set
    on_tty = await meshlogs_on_a_tty("tail", *common, "--color", "auto", env=env)
    assert "\x1b[33mretry 2\x1b[0m" in on_tty
    no_color = await meshlogs_on_a_tty("tail", *common, "--color", "auto", env={**env, "NO_COLOR": "1"})
    assert ESC not in no_color and "retry 2 of 3" in no_color


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve_process(
    db_url: str, port: int, data_dir: Path, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``meshlogs serve`` on ``port``; SIGTERM (then SIGKILL) when the block ends."""
    with log.open("ab") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "meshlogs",
            "serve",
            "--port",
            str(port),
            "--database-url",
            db_url,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env=base_env(data_dir, MESHLOGS_JWT_SECRET=SECRET),
        )
    try:
        async with aiohttp.ClientSession() as http:
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while True:
                assert proc.returncode is None, log.read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        if resp.status == 200:
                            break
                assert asyncio.get_running_loop().time() < deadline, "server did not become ready"
                await asyncio.sleep(0.1)
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.mark.timeout(240)
async def test_gap_free_across_a_server_restart(tw: TailWorld, db_url: str, tmp_path: Path) -> None:
    """A writer appends all along; the server process is stopped and started again on the same
    database; tail prints exactly seq 1..N once each, says what it restored, and exits 0."""
    w = tw.world
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    token = mint_api_key(SECRET, "service_role")  # any valid token works; RLS is tested elsewhere
    env = base_env(tmp_path, MESHLOGS_ACCESS_TOKEN=token)
    written = 2  # make_world's two lines

    async def write(writer: AsyncLogWriter, seconds: float) -> None:
        nonlocal written
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            await writer.write(w.run_a, f"line {written + 1}", step="http_call")
            written += 1
            await asyncio.sleep(0.004)
        await writer.flush()

    first = serve_process(db_url, port, tmp_path, log)
    await first.__aenter__()
    tail = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meshlogs",
        "tail",
        w.run_a,
        "--url",
        url,
        "--anon-key",
        mint_api_key(SECRET, "anon"),
        "--json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out: list[bytes] = []

    async def read_out() -> None:
        assert tail.stdout is not None
        async for line in tail.stdout:
            out.append(line)

    reader = asyncio.create_task(read_out())
    try:
        async with AsyncLogWriter(db_url) as writer:
            await write(writer, 1.5)
            async with asyncio.timeout(TIMEOUT):
                while len(out) < 10:  # tail is following live before the restart
                    await asyncio.sleep(0.05)
            stopping = asyncio.create_task(first.__aexit__(None, None, None))
            await write(writer, 1.0)  # written while the server is down or going down
            await stopping
            async with serve_process(db_url, port, tmp_path, log):
                await write(writer, 1.5)
                db = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
                async with db:
                    await db.execute(
                        "update workflow_runs set status = 'succeeded' where id = %s", (w.run_a,)
                    )
                code = await asyncio.wait_for(tail.wait(), TIMEOUT)
                await asyncio.wait_for(reader, TIMEOUT)
        assert tail.stderr is not None
        err = (await tail.stderr.read()).decode()
        seqs = [orjson.loads(line)["seq"] for line in out]
        assert code == 0, err
        assert seqs == list(range(1, written + 1)), (len(seqs), written, err)
        assert "connection lost" in err and "reconnected — " in err and "lines restored" in err, err
    finally:
        reader.cancel()
        if tail.returncode is None:
            tail.kill()
            await tail.wait()
        with contextlib.suppress(Exception):
            await first.__aexit__(None, None, None)
