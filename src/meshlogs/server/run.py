"""Running the server until a signal: what ``meshlogs serve`` (and ``demo``) call.

SIGINT and SIGTERM both stop it cleanly: the site closes, cleanup contexts run (capture, pool), and
the embedded Postgres is released by the caller's ``open_database`` block, so nothing is left behind.

Garbage collection is tuned for a fan-out server (:func:`tune_gc`): with thousands of connections,
CPython's full collections took 60-75 ms every few seconds at 40k msgs/s and found nothing to free
(the hot path's garbage is acyclic and goes by reference counting), stalling every delivery meanwhile.
Measured (docs/benchmarks.md): p99 at 30k msgs/s 63-67 ms -> 14 ms, at 40k 83-86 ms -> 59 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from meshlogs.config import Settings
from meshlogs.server.app import create_app

__all__ = ["run_until_signal", "serve_app", "tune_gc"]

log = logging.getLogger(__name__)


#: Young-generation threshold and collections between older ones (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (10_000, 20, 100)


def tune_gc() -> None:
    """Collect less often, and never again scan what exists at startup (modules, the app).

    Only for a process that is a server (``serve``, ``demo``): the thresholds are process-wide, and
    ``gc.freeze()`` exempts every object alive now from later collections, which is right for what
    lives as long as the process and wrong for a library to do behind its caller's back.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
            tune_gc()  # after startup, so the pool, the gateway and the hub are frozen as well
            if on_ready is not None:
                result = on_ready(port)
                if result is not None:
                    await result
            await stop.wait()
            log.info("shutting down")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
