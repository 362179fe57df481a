"""A running server, a world with users who can log in, and helpers to run ``tail`` in the test loop."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meshlogs.tail import LineFilter, Renderer, TailOptions, run_tail
from tests.factories import World, add_member, make_user, make_world
from tests.support.server import RunningServer, running_server

PASSWORD = "viewer-password-1"


@dataclass(frozen=True)
class TailWorld:
    world: World
    viewer_email: str  # a viewer in project A with a password


@pytest.fixture
def tw(db: psycopg.Connection[Any]) -> TailWorld:
    world = make_world(db)
    user = make_user(db, "tail-viewer@example.com", PASSWORD)
    add_member(db, world.project_a, user, "viewer")
    return TailWorld(world, "tail-viewer@example.com")


@pytest.fixture
async def server(db_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    # A small page cap, as a hosted PostgREST may have: tail must page until an empty page.
    async with running_server(db_url, tmp_path, rest_max_rows=100) as srv:
        yield srv


@dataclass
class TailResult:
    code: int | None
    out: str
    err: str
    error: Exception | None = None

    def seqs(self) -> list[int]:
        import orjson

        return [orjson.loads(line)["seq"] for line in self.out.splitlines()]


def options(server: RunningServer, run: str, **kw: Any) -> TailOptions:
    base: dict[str, Any] = {
        "url": server.url,
        "anon_key": server.anon_key,
        "run_id": run,
        "email": "tail-viewer@example.com",
        "password": PASSWORD,
        "renderer": Renderer(color=False, as_json=True),
        "line_filter": LineFilter(),
    }
    base.update(kw)
    return TailOptions(**base)


async def run(opts: TailOptions) -> TailResult:
    out, err = io.StringIO(), io.StringIO()
    try:
        code = await run_tail(opts, out, err)
    except Exception as exc:
        return TailResult(None, out.getvalue(), err.getvalue(), exc)
    return TailResult(code, out.getvalue(), err.getvalue())
