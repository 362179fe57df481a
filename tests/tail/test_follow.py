"""``run_tail`` against a real server in the test loop: backfill, filters, JSON, following, exit codes,
and the errors a user gets for bad logins, unknown runs and missing access."""

from __future__ import annotations

import asyncio
import io
import re
import time
from typing import Any

import orjson
import psycopg

from meshlogs.tail import AuthFailed, LineFilter, Renderer, TailError, run_tail
from tests.factories import append
from tests.support.server import RunningServer, running_server
from tests.tail.conftest import TailWorld, options, run


def mixed_lines(n: int) -> list[dict[str, Any]]:
    levels = ["debug", "info", "warn", "error"]
    steps = ["webhook", "transform", "http_call"]
    return [
        {"level": levels[i % 4], "step": steps[i % 3], "message": f"line {i} \x1b[32mgreen\x1b[0m"}
        for i in range(n)
    ]


async def test_no_follow_prints_what_exists_and_exits_with_the_status(
    server: RunningServer, tw: TailWorld, db: psycopg.Connection[Any]
) -> None:
    run_a = tw.world.run_a
    res = await run(options(server, run_a, follow=False))
    assert res.error is None and res.code == 0, res
    assert res.seqs() == [1, 2] and "is running (2 lines so far)" in res.err
    first = orjson.loads(res.out.splitlines()[0])
    assert set(first) == {"run_id", "seq", "ts", "level", "step", "message", "attrs"}
    assert (first["run_id"], first["message"], first["level"]) == (run_a, "a1", "info")

    for status, code in (("failed", 1), ("canceled", 1), ("succeeded", 0)):
        db.execute("update workflow_runs set status = %s where id = %s", (status, run_a))
        res = await run(options(server, run_a, follow=False))
        assert (res.code, res.seqs()) == (code, [1, 2]), res
        assert f"{status} (2 lines)" in res.err


async def test_backfill_pages_past_the_servers_row_cap(
    server: RunningServer, tw: TailWorld, db: psycopg.Connection[Any]
) -> None:
    append(db, tw.world.run_a, mixed_lines(1248))  # the server returns at most 100 rows a page
    db.execute("update workflow_runs set status = 'succeeded' where id = %s", (tw.world.run_a,))
    res = await run(options(server, tw.world.run_a))
    assert res.code == 0 and res.seqs() == list(range(1, 1251))


async def test_filters_and_since_seq(
    server: RunningServer, tw: TailWorld, db: psycopg.Connection[Any]
) -> None:
    run_a = tw.world.run_a
    append(db, run_a, mixed_lines(24))  # seqs 3..26: line i has seq i + 3
    db.execute("update workflow_runs set status = 'failed' where id = %s", (run_a,))

    async def seqs(**kw: Any) -> list[int]:
        res = await run(options(server, run_a, **kw))
        assert res.code == 1, res
        return res.seqs()

    assert await seqs(line_filter=LineFilter(levels=frozenset({"error"}))) == [2] + [
        i + 3 for i in range(3, 24, 4)
    ]
    assert await seqs(line_filter=LineFilter(steps=frozenset({"http_call"}))) == [
        i + 3 for i in range(2, 24, 3)
    ]
    assert await seqs(line_filter=LineFilter(grep=re.compile(r"^line 1\d green$"))) == list(range(13, 23))
    both = LineFilter(levels=frozenset({"warn", "error"}), steps=frozenset({"webhook"}))
    assert await seqs(line_filter=both) == [i + 3 for i in range(24) if i % 4 >= 2 and i % 3 == 0]
    assert await seqs(after=20) == list(range(21, 27))


async def test_text_output_colours(server: RunningServer, tw: TailWorld, db: psycopg.Connection[Any]) -> None:
    append(db, tw.world.run_a, [{"level": "warn", "step": "s", "message": "\x1b[32mgreen\x1b[0m"}])
    plain = await run(options(server, tw.world.run_a, follow=False, renderer=Renderer(color=False)))
    assert plain.out.splitlines()[2].endswith("WARN  s green") and "\x1b" not in plain.out
    color = await run(options(server, tw.world.run_a, follow=False, renderer=Renderer(color=True)))
    assert "\x1b[32mgreen\x1b[0m" in color.out.splitlines()[2]


async def test_follow_until_the_run_finishes(
    server: RunningServer, tw: TailWorld, db: psycopg.Connection[Any]
) -> None:
    run_a = tw.world.run_a
    task = asyncio.create_task(run(options(server, run_a)))
    try:
        await asyncio.sleep(0.5)
        for i in range(30):
            append(db, run_a, [{"level": "info", "message": f"live {i}.{j}"} for j in range(i % 4 + 1)])
            await asyncio.sleep(0.01)
        assert not task.done()
        db.execute("update workflow_runs set status = 'succeeded' where id = %s", (run_a,))
        res = await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
    n = 2 + sum(i % 4 + 1 for i in range(30))
    assert res.code == 0 and res.seqs() == list(range(1, n + 1)), res
    assert f"succeeded ({n} lines)" in res.err and "reconnected" not in res.err


async def test_follow_exits_1_when_the_run_fails(
    server: RunningServer, tw: TailWorld, db: psycopg.Connection[Any]
) -> None:
    task = asyncio.create_task(
        run(options(server, tw.world.run_a, access_token=server.service_key, email=None))
    )
    try:
        await asyncio.sleep(0.5)
        append(db, tw.world.run_a, [{"level": "error", "message": "boom"}])
        db.execute("update workflow_runs set status = 'failed' where id = %s", (tw.world.run_a,))
        res = await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
    assert res.code == 1 and res.seqs() == [1, 2, 3], res


async def test_login_and_access_errors(
    server: RunningServer, tw: TailWorld, db: psycopg.Connection[Any]
) -> None:
    w = tw.world
    bad = await run(options(server, w.run_a, password="wrong-password"))
    assert isinstance(bad.error, AuthFailed)
    assert str(bad.error) == "login failed for tail-viewer@example.com: Invalid login credentials"

    hidden = await run(options(server, w.run_b))  # project B: not a member
    assert isinstance(hidden.error, TailError) and not isinstance(hidden.error, AuthFailed)
    assert f"run {w.run_b} not found, or you are not allowed to see it" == str(hidden.error)

    unknown = await run(options(server, "00000000-0000-0000-0000-000000000000"))
    assert "not found, or you are not allowed" in str(unknown.error)

    anon = await run(options(server, w.run_a, email=None))
    assert "not logged in: use --email/--password or set MESHLOGS_ACCESS_TOKEN" in str(anon.error)

    bad_key = await run(options(server, w.run_a, anon_key="not-a-key"))
    assert isinstance(bad_key.error, AuthFailed) and "rejected the API key" in str(bad_key.error)

    expired = server.user_token(w.viewer, ttl=1, now=time.time() - 120)
    old = await run(options(server, w.run_a, email=None, access_token=expired))
    assert isinstance(old.error, AuthFailed)
    assert "rejected the access token" in str(old.error) and "expired" in str(old.error).lower()

    good = await run(
        options(server, w.run_a, email=None, access_token=server.user_token(w.viewer), follow=False)
    )
    assert good.error is None and good.seqs() == [1, 2]

    gone = await run(options(server, w.run_a, url="http://127.0.0.1:9"))
    assert isinstance(gone.error, TailError) and "cannot reach http://127.0.0.1:9" in str(gone.error)


async def test_secret_free_output_stream_is_flushed_per_batch(server: RunningServer, tw: TailWorld) -> None:
    """Lines reach the terminal as they arrive (a flush per merge), not when the command ends."""

    class Recording(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            Recording.flushes += 1

    out = Recording()
    code = await run_tail(options(server, tw.world.run_a, follow=False), out, io.StringIO())
    assert code == 0 and Recording.flushes >= 1 and len(out.getvalue().splitlines()) == 2


async def test_login_session_is_refreshed_before_the_token_expires(
    db_url: str, tmp_path: Any, tw: TailWorld, db: psycopg.Connection[Any]
) -> None:
    """Access tokens live 4 s here; following for longer works because tail refreshes the session
    (Auth refresh_token grant) and hands the new token to the channel. Without that, the gateway would
    close the channel ("Token has expired") and REST would refuse the old token: exit code 2."""
    async with running_server(db_url, tmp_path, jwt_expiry=4) as short:
        task = asyncio.create_task(run(options(short, tw.world.run_a)))
        try:
            for i in range(40):  # 8 s: two refreshes
                append(db, tw.world.run_a, [{"level": "info", "message": f"x{i}"}])
                await asyncio.sleep(0.2)
            db.execute("update workflow_runs set status = 'succeeded' where id = %s", (tw.world.run_a,))
            res = await asyncio.wait_for(task, 30)
        finally:
            task.cancel()
    assert res.error is None and res.code == 0, res
    assert res.seqs() == list(range(1, 43)) and "connection lost" not in res.err, res.err
