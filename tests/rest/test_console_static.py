"""The Run Console served at ``/``: cache headers, the SPA fallback, real 404s for assets, config.json.

Against the console built into the package (scripts/setup builds it), over a real server and socket.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from meshlogs.server.console import console_root
from tests.support.server import RunningServer, running_server

IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def built() -> Path:
    root = console_root()
    if not (root / "index.html").is_file():
        pytest.fail("the console is not built: run scripts/setup (npm ci && npm run build in web/)")
    return root


def _an_immutable_asset(root: Path, suffix: str) -> str:
    found = sorted((root / "_app" / "immutable").rglob(f"*{suffix}"))
    assert found, f"no {suffix} under _app/immutable in the built console"
    return "/" + found[0].relative_to(root).as_posix()


async def test_immutable_assets_are_cached_forever(
    built: Path, server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for suffix, content_type in ((".js", "javascript"), (".css", "text/css")):
        path = _an_immutable_asset(built, suffix)
        async with http.get(server.url + path) as r:
            body = await r.read()
            assert r.status == 200, path
            assert r.headers["Cache-Control"] == IMMUTABLE, path
            assert content_type in r.headers["Content-Type"], (path, r.headers["Content-Type"])
        assert body == (built / path.lstrip("/")).read_bytes()


async def test_index_and_other_files_are_revalidated(
    built: Path, server: RunningServer, http: aiohttp.ClientSession
) -> None:
    index = (built / "index.html").read_bytes()
    for path in ("/", "/index.html"):
        async with http.get(server.url + path) as r:
            assert r.status == 200, path
            assert r.content_type == "text/html"
            assert r.headers["Cache-Control"] == "no-cache", path
            assert await r.read() == index
    # not hashed, so not immutable, even though it is under _app/
    for path in ("/_app/version.json", "/favicon.svg"):
        async with http.get(server.url + path) as r:
            assert r.status == 200, path
            assert r.headers["Cache-Control"] == "no-cache", path


@pytest.mark.parametrize("path", ["/runs/123", "/runs/6f1c6f4e-3b9a-4a4f-9d1e-1d2a3b4c5d6e", "/login"])
async def test_unknown_routes_get_the_spa_shell(
    built: Path, server: RunningServer, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(server.url + path) as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        assert r.headers["Cache-Control"] == "no-cache"
        assert await r.read() == (built / "index.html").read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/_app/immutable/chunks/does-not-exist.js",
        "/_app/immutable/assets/nope.css",
        "/_app/nothing.json",
    ],
)
async def test_missing_assets_are_404_not_the_spa(
    built: Path, server: RunningServer, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(server.url + path) as r:
        body = await r.text()
        assert r.status == 404, path
        assert "<html" not in body.lower(), path


@pytest.mark.parametrize("path", ["/auth/v1/no-such-endpoint", "/rest/nope", "/realtime/nope"])
async def test_api_paths_never_get_the_spa(
    built: Path, server: RunningServer, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(server.url + path) as r:
        body = await r.text()
        assert r.status in (401, 404), (path, r.status)
        assert r.content_type != "text/html" and "<html" not in body.lower(), path


async def test_files_outside_the_console_are_not_served(
    built: Path, server: RunningServer, http: aiohttp.ClientSession
) -> None:
    outside = (built.parent / "__init__.py").read_text()
    for raw in ("/..%2F__init__.py", "/_app/..%2F..%2F__init__.py", "/%2E%2E/__init__.py"):
        async with http.get(URL(server.url + raw, encoded=True)) as r:
            body = await r.text()
        assert r.status in (200, 404), raw
        assert outside not in body and "__all__" not in body, raw


async def test_config_json_gives_url_and_anon_key(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(server.url + "/config.json") as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-cache"
        assert await r.json() == {"url": server.url, "anon_key": server.anon_key}


async def test_config_json_uses_the_public_url(
    db_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    public = "https://logs.example.com"
    async with (
        running_server(db_url, tmp_path, public_url=public) as srv,
        http.get(srv.url + "/config.json", headers={"Host": "127.0.0.1:1"}) as r,
    ):
        assert r.status == 200
        body = await r.json()
    assert body == {"url": public, "anon_key": srv.anon_key}


async def test_config_json_without_public_url_follows_the_host_header(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(server.url + "/config.json", headers={"Host": "logs.internal:8080"}) as r:
        assert r.status == 200
        assert (await r.json())["url"] == "http://logs.internal:8080"
