"""A running meshlogs server plus an HTTP client for the /rest/v1 and /auth/v1 tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
import pytest

from tests.factories import World, make_world
from tests.support.server import RunningServer, running_server


@pytest.fixture
def world(db: psycopg.Connection[Any]) -> World:
    return make_world(db)


@pytest.fixture
async def server(db_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_url, tmp_path, allow_signup=True) as srv:
        yield srv


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


class Api:
    """Small helper: requests against one server with an API key and optional Bearer token."""

    def __init__(self, http: aiohttp.ClientSession, server: RunningServer) -> None:
        self.http = http
        self.server = server

    def headers(self, token: str | None, key: str | None, extra: dict[str, str] | None) -> dict[str, str]:
        h: dict[str, str] = {}
        if key is not None:
            h["apikey"] = key
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        h.update(extra or {})
        return h

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        key: str | None = "anon",
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: Any = None,
    ) -> tuple[int, Any, Any]:
        """(status, response headers, parsed JSON body or text or None)."""
        api_key = {"anon": self.server.anon_key, "service": self.server.service_key}.get(key or "", key)
        async with self.http.request(
            method,
            self.server.url + path,
            headers=self.headers(token, api_key, headers),
            json=json,
            data=data,
        ) as r:
            raw = await r.read()
            body: Any = None
            if raw:
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    body = raw.decode(errors="replace")
            return r.status, r.headers, body

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("POST", path, **kw)


@pytest.fixture
def api(http: aiohttp.ClientSession, server: RunningServer) -> Api:
    return Api(http, server)
