"""Serving the built Run Console (SvelteKit, adapter-static) and its ``config.json``.

The console is a single-page app: a path that is not a file gets ``index.html`` (SPA fallback) so deep
links such as ``/runs/<id>#L120`` work on reload; hashed assets under ``_app/immutable/`` are cached
forever, everything else is revalidated. A missing asset is a real 404, never the HTML shell.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

from meshlogs.auth.tokens import mint_api_key
from meshlogs.server.keys import JWT_SECRET, SETTINGS

__all__ = ["add_console_routes", "console_root"]


def console_root() -> Path:
    """Where the built console lives inside the installed package."""
    return Path(str(resources.files("meshlogs"))) / "web"


async def _config(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    url = settings.public_url or f"{request.scheme}://{request.host}"
    body = {"url": url, "anon_key": mint_api_key(request.app[JWT_SECRET], "anon")}
    return web.json_response(body, headers={"Cache-Control": "no-cache"})


def add_console_routes(app: web.Application, root: Path | None = None) -> None:
    """Add ``/config.json`` and the console (catch-all, so add it last)."""
    base = (root or console_root()).resolve()
    index = base / "index.html"

    async def spa(request: web.Request) -> web.StreamResponse:
        rel = request.match_info.get("path", "")
        candidate = (base / rel).resolve()
        if rel and candidate.is_relative_to(base) and candidate.is_file():
            response = web.FileResponse(candidate)
            if rel.startswith("_app/immutable/"):
                response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            else:
                response.headers["Cache-Control"] = "no-cache"
            return response
        if rel.startswith("_app/") or rel.startswith(("rest/", "auth/", "realtime/")):
            raise web.HTTPNotFound()
        if not index.is_file():
            return web.Response(
                status=503,
                text="The console is not built. Run `npm ci && npm run build` in web/ "
                "(scripts/setup does this).\n",
            )
        response = web.FileResponse(index)
        response.headers["Cache-Control"] = "no-cache"
        return response

    app.router.add_get("/config.json", _config)
    app.router.add_get("/{path:.*}", spa)
