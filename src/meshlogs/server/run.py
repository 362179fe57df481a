"""Running the server until a signal: what ``meshlogs serve`` (and ``demo``) call.

SIGINT and SIGTERM both stop it cleanly: the site closes, cleanup contexts run (capture, pool), and
the embedded Postgres is released by the caller's ``open_database`` block, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from meshlogs.config import Settings
from meshlogs.server.app import create_app

__all__ = ["run_until_signal", "serve_app"]

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` for the duration of the block; yields the bound port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    try:
        await site.start()
        bound = port
        # aiohttp has no public accessor for the port chosen for port 0; read it off the server.
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            bound = int(sockets[0].getsockname()[1])
        yield bound
    finally:
        await runner.cleanup()


async def run_until_signal(
    settings: Settings,
    database_url: str,
    jwt_secret: str,
    *,
    on_ready: Callable[[int], Awaitable[None] | None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; ``on_ready(port)`` runs once the port is bound."""
    app = create_app(settings, database_url, jwt_secret)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serve_app(app, settings.host, settings.port) as port:
            log.info("meshlogs listening on http://%s:%s", settings.host, port)
            if on_ready is not None:
                result = on_ready(port)
                if result is not None:
                    await result
            await stop.wait()
            log.info("shutting down")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
