"""The gateway across a Postgres restart: every channel is told (phx_error) as soon as the stream
is lost, rejoins are refused with Supabase's retryable reason while Postgres is away, the stream
comes back by itself, the channels rejoin, and lines written afterwards arrive. It has its own
embedded Postgres, since it restarts it."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meshlogs.db.embedded import start_embedded
from meshlogs.db.migrate import apply_migrations
from meshlogs.realtime.gateway import GATEWAY
from tests.factories import append, make_world
from tests.realtime.helpers import connect, subscribe, wait_for
from tests.support.server import running_server


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    # Not under tmp_path: /tmp/pytest-of-root is 0700 and Postgres runs as another OS user as root.
    path = Path(tempfile.mkdtemp(prefix="meshlogs-gw-restart-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def lines(n: int, prefix: str) -> list[dict[str, Any]]:
    return [{"level": "info", "message": f"{prefix}{i}"} for i in range(n)]


async def test_channels_resync_and_resume_after_postgres_restarts(pg_dir: Path, tmp_path: Path) -> None:
    pg = start_embedded(pg_dir, cleanup="stop")
    try:
        apply_migrations(pg.url)
        with psycopg.connect(pg.url, autocommit=True) as conn:
            world = make_world(conn)
        async with running_server(pg.url, tmp_path) as srv:
            client = await connect(srv.ws_url, srv.anon_key)
            try:
                _ch, rec = await subscribe(
                    client,
                    "pg-restart",
                    token=srv.user_token(world.viewer),
                    filter=f"run_id=eq.{world.run_a}",
                )
                with psycopg.connect(pg.url, autocommit=True) as conn:
                    append(conn, world.run_a, lines(1, "before"))
                await wait_for(lambda: len(rec.changes) == 1, what="the line before the restart")

                await asyncio.to_thread(pg.stop)
                # Told at once, not when Postgres is back; and rejoining is refused meanwhile.
                await wait_for(lambda: "CHANNEL_ERROR" in rec.states, timeout=30, what="the channel erroring")
                await wait_for(
                    lambda: any("UnableToConnectToProject" in e for e in rec.errors),
                    timeout=60,
                    what="a rejoin refused while Postgres is away",
                )
                assert rec.states.count("SUBSCRIBED") == 1
                pg = await asyncio.to_thread(start_embedded, pg_dir, cleanup="stop")

                hub = srv.app[GATEWAY].hub
                await wait_for(lambda: hub.source.status.ready, timeout=90, what="the stream coming back")
                await wait_for(lambda: rec.states.count("SUBSCRIBED") >= 2, timeout=90, what="the rejoin")
                assert hub.stats.resets >= 1
                with psycopg.connect(pg.url, autocommit=True) as conn:
                    append(conn, world.run_a, lines(2, "after"))
                await wait_for(lambda: len(rec.changes) == 3, timeout=60, what="the lines after the restart")
                assert [p["data"]["record"]["seq"] for p in rec.changes] == [3, 4, 5]
            finally:
                await client.close()
    finally:
        pg.stop()
