"""The aiohttp application: one process, one port, every endpoint.

Route modules register themselves here in a fixed order (the console's catch-all last). Shared state
lives on the app under the typed keys of :mod:`meshlogs.server.keys`: settings, the database URL, the
JWT secret and a pool of connections used for REST, Auth and authorization queries.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from meshlogs.config import Settings
from meshlogs.server.console import add_console_routes
from meshlogs.server.keys import DATABASE_URL, JWT_SECRET, POOL, SETTINGS
from meshlogs.server.metrics import add_metrics_route
from meshlogs.server.search_index import add_search_indexer

__all__ = ["READINESS_PROBES", "create_app"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Extra readiness checks registered by subsystems (e.g. the change capture): name -> "ok" | reason.
READINESS_PROBES = web.AppKey("meshlogs.readiness", dict[str, Callable[[], str]])

#: Headers supabase-js sends; allowed cross-origin so a console on another origin can call us.
_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD",
    "Access-Control-Allow-Headers": "authorization, apikey, content-type, prefer, range, range-unit, "
    "accept-profile, content-profile, x-client-info, x-supabase-api-version",
    "Access-Control-Expose-Headers": "content-range, content-location, x-supabase-api-version",
    "Access-Control-Max-Age": "86400",
}


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return web.Response(status=204, headers=_CORS_HEADERS)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(_CORS_HEADERS)
        raise
    if not response.prepared:
        response.headers.update(_CORS_HEADERS)
    return response


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with request.app[POOL].connection(timeout=2) as conn:
            await conn.execute("select 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"error: {type(exc).__name__}"
    for name, probe in request.app.get(READINESS_PROBES, {}).items():
        checks[name] = probe()
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


def create_app(
    settings: Settings,
    database_url: str,
    jwt_secret: str,
    *,
    pool_size: int = 10,
) -> web.Application:
    """Build the application; the pool opens on startup and closes on cleanup."""
    app = web.Application(middlewares=[cors_middleware], client_max_size=16 * 1024 * 1024)
    app[SETTINGS] = settings
    app[DATABASE_URL] = database_url
    app[JWT_SECRET] = jwt_secret
    app[READINESS_PROBES] = {}

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            database_url,
            min_size=2,
            max_size=pool_size,
            open=False,
            timeout=10,
            kwargs={"autocommit": False},
            name="meshlogs",
        )
        await pool.open(wait=True, timeout=30)
        app[POOL] = pool
        yield
        await pool.close()

    app.cleanup_ctx.append(pool_ctx)
    add_search_indexer(app)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    add_metrics_route(app)
    _add_optional_routes(app)
    add_console_routes(app)
    return app


def _add_optional_routes(app: web.Application) -> None:
    """Mount the subsystems that exist in this build (REST, Auth, realtime, metrics)."""
    import importlib

    for module_name in ("meshlogs.auth.routes", "meshlogs.rest.routes", "meshlogs.realtime.routes"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            continue
        module.add_routes(app)
