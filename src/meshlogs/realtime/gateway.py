"""The realtime gateway inside the aiohttp app: WebSocket upgrades, the hub, timers, stats.

``/realtime/v1/websocket`` (what supabase-js builds) and ``/socket/websocket`` (the Elixir server's
own path) both land here. The connect-time ``apikey`` (query parameter or ``x-api-key``/``apikey``
header) must be a valid JWT; failures are refused before the upgrade with Supabase's HTTP JSON bodies,
and clients then back off and reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from meshlogs.auth.tokens import verify_token
from meshlogs.capture.source import ChangeSource, ReplicationSource
from meshlogs.config import Settings
from meshlogs.errors import TokenError, UnsupportedVersionError
from meshlogs.protocol.connection import RealtimeConnection
from meshlogs.protocol.limits import Limits
from meshlogs.protocol.phoenix import negotiate_vsn
from meshlogs.realtime.authorizer import Authorizer
from meshlogs.realtime.catalog import Catalog
from meshlogs.realtime.claims import Claims
from meshlogs.realtime.hub import Hub
from meshlogs.realtime.session import Session
from meshlogs.realtime.token_errors import connect_error
from meshlogs.realtime.topics import TopicRegistry
from meshlogs.server.app import READINESS_PROBES
from meshlogs.server.keys import DATABASE_URL, JWT_SECRET, POOL, SETTINGS
from meshlogs.server.metrics import METRICS

__all__ = ["GATEWAY", "Gateway", "add_routes"]

log = logging.getLogger(__name__)


class Gateway:
    """Everything realtime for one process."""

    def __init__(self, settings: Settings, jwt_secret: str, hub: Hub, catalog: Catalog) -> None:
        self.settings = settings
        self.jwt_secret = jwt_secret
        self.hub = hub
        self.catalog = catalog
        self.topics = TopicRegistry()
        self.sessions: set[Session] = set()
        self.limits = Limits(
            max_frame_bytes=settings.realtime_max_frame_bytes,
            max_channels=settings.realtime_max_channels,
            max_joins_per_second=settings.realtime_max_joins_per_second,
        )
        self.stats_joins = 0
        self.stats_slow_consumers = 0
        self.stats_connections = 0
        self.stats_bytes_closed = 0  # bytes sent by connections that are gone
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.catalog.load()
        await self.hub.start()
        self._ticker = asyncio.create_task(self._tick_forever(), name="meshlogs-gateway-ticker")

    async def close_sessions(self) -> None:
        """Tell every client the server is going away (1001), all at once: at shutdown, before the
        HTTP server waits for its handlers, so an open WebSocket never holds the shutdown up."""
        await asyncio.gather(
            *(s.close(1001, "server shutting down", timeout=2.0) for s in list(self.sessions)),
            return_exceptions=True,
        )

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.close_sessions()
        await self.hub.close()

    async def _tick_forever(self) -> None:
        """Once a second: expire tokens (Supabase's 'Token has expired' shutdown), drop idle sockets,
        and tell every channel when the change stream is lost, at once rather than once it is back:
        while Postgres is away nobody may believe they are live (joins are refused meanwhile)."""
        loop = asyncio.get_running_loop()
        was_ready = True
        while True:
            await asyncio.sleep(1.0)
            ready = self.hub.source.status.ready
            if was_ready and not ready:
                log.warning("change stream lost; every channel resyncs and joins wait for it")
                self.hub.resync_all("change stream lost; resubscribe and backfill")
            was_ready = ready
            now_wall, now = time.time(), loop.time()
            for session in list(self.sessions):
                session.expire_tokens(now_wall)
                if session.conn.idle(now):
                    loop.create_task(session.close(1000, "heartbeat timeout"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("x-api-key") or request.headers.get("apikey") or request.query.get("apikey")
        if not key:
            return _refuse(401, "API key is missing")
        try:
            claims = Claims.from_jwt(verify_token(self.jwt_secret, key.strip()))
        except TokenError as exc:
            return _refuse(401, connect_error(exc))
        try:
            vsn = negotiate_vsn(request.query.get("vsn"))
        except UnsupportedVersionError as exc:
            return _refuse(403, str(exc))
        if len(self.sessions) >= self.settings.realtime_max_connections:
            return _refuse(429, "Too many connected users")

        ws = web.WebSocketResponse(
            compress=False, max_msg_size=self.limits.max_frame_bytes, autoping=True, heartbeat=None
        )
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        conn = RealtimeConnection(vsn, now=loop.time(), limits=self.limits, default_token=key.strip())
        peer = request.remote or "?"
        session = Session(
            self, ws, conn, claims, max_pending_bytes=self.settings.realtime_max_pending_bytes, peer=peer
        )
        self.sessions.add(session)
        self.stats_connections += 1
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self.stats_bytes_closed += session.bytes_sent
        return ws


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


GATEWAY = web.AppKey("meshlogs.gateway", Gateway)


def add_routes(app: web.Application, *, source: ChangeSource | None = None) -> None:
    """Mount the WebSocket endpoints; the gateway starts with the app (after the pool)."""

    async def gateway_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        pool = app[POOL]
        change_source = source or ReplicationSource(app[DATABASE_URL])
        catalog = Catalog(pool)
        authorizer = Authorizer(
            pool,
            cache_ttl=settings.realtime_authz_cache_ttl,
            visibility_timeout=settings.realtime_authz_visibility_timeout,
        )
        hub = Hub(
            change_source,
            authorizer,
            catalog,
            observe_lag=app[METRICS].commit_lag.observe,
            max_record_bytes=settings.realtime_max_record_bytes,
        )
        gateway = Gateway(settings, app[JWT_SECRET], hub, catalog)
        await gateway.start()
        app[GATEWAY] = gateway

        def capture_ready() -> str:
            status = change_source.status
            return "ok" if status.ready else f"capture {status.state.value}"

        app[READINESS_PROBES]["capture"] = capture_ready
        yield
        await gateway.close()

    async def websocket(request: web.Request) -> web.StreamResponse:
        return await request.app[GATEWAY].handle(request)

    async def close_sessions(app: web.Application) -> None:
        gateway = app.get(GATEWAY)
        if gateway is not None:
            await gateway.close_sessions()

    app.cleanup_ctx.append(gateway_ctx)
    app.on_shutdown.append(close_sessions)
    app.router.add_get("/realtime/v1/websocket", websocket)
    app.router.add_get("/socket/websocket", websocket)
