"""A real meshlogs server on a free port, in the test's event loop, against a test database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from meshlogs.auth.tokens import mint_access_token, mint_api_key
from meshlogs.config import Settings
from meshlogs.server.app import create_app
from meshlogs.server.run import serve_app

SECRET = "test-secret-" + "x" * 40


@dataclass
class RunningServer:
    url: str
    app: web.Application
    settings: Settings
    secret: str
    anon_key: str
    service_key: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/realtime/v1"

    def user_token(self, user_id: str, *, ttl: int = 3600, email: str = "user@example.com", **kw: Any) -> str:
        return mint_access_token(self.secret, user_id=user_id, email=email, ttl=ttl, **kw)


@contextlib.asynccontextmanager
async def running_server(db_url: str, data_dir: Path, **overrides: Any) -> AsyncIterator[RunningServer]:
    overrides.setdefault("port", 0)
    settings = Settings.load({}, data_dir=str(data_dir), jwt_secret=SECRET, **overrides)
    app = create_app(settings, db_url, SECRET)
    async with serve_app(app, "127.0.0.1", settings.port) as port:
        yield RunningServer(
            url=f"http://127.0.0.1:{port}",
            app=app,
            settings=settings,
            secret=SECRET,
            anon_key=mint_api_key(SECRET, "anon"),
            service_key=mint_api_key(SECRET, "service_role"),
        )
