"""``/rest/v1``: PostgREST-compatible reads, RPC and simple writes, executed as the caller.

Every request: the ``apikey`` is checked (:func:`~meshlogs.server.apikey.require_apikey`), the
``Authorization: Bearer`` JWT (else the key) gives the claims, and the query runs in one transaction
on a pool connection that first does ``set_config('role', <claims.role>, true)``,
``set_config('request.jwt.claims', <claims>, true)`` and a ``statement_timeout``, so RLS policies see
exactly what PostgREST would make them see. Reads are read-only; with ``Prefer: count=…`` they are
also ``repeatable read``, so the total in ``Content-Range`` and the rows come from one snapshot.

A page is one query whose rows arrive in chunks (libpq chunked-rows mode), each row as its JSON text
plus the page's row count (``count(*) over ()``). A page that fits in 1 MiB goes out whole with a
``Content-Length``; a larger one is streamed (chunked encoding) as rows arrive, its ``Content-Range``
known from the first row, so memory per request stays bounded whatever a client asks for (``limit``
itself is capped at ``MESHLOGS_REST_MAX_ROWS``). If the database fails mid-stream the connection is
closed before the closing ``]``, so a client never mistakes half a page for a page.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, cast

import orjson
import psycopg
from aiohttp import web
from psycopg_pool import PoolTimeout

from meshlogs.auth.tokens import verify_token
from meshlogs.config import Settings
from meshlogs.errors import TokenError
from meshlogs.rest import sqlbuild
from meshlogs.rest.catalog import SCHEMA, CatalogCache, Function, Table
from meshlogs.rest.errors import RestError, from_pg_error, function_not_found, invalid_body, jwt_error
from meshlogs.rest.errors import not_implemented as not_implemented_error
from meshlogs.rest.query import (
    MediaType,
    Prefer,
    SelectItem,
    Window,
    parse_accept,
    parse_prefer,
    parse_read_query,
    parse_select,
    resolve_window,
)
from meshlogs.server.apikey import require_apikey
from meshlogs.server.bodies import has_nul
from meshlogs.server.keys import JWT_SECRET, POOL, SETTINGS

__all__ = ["CATALOG", "add_routes"]

log = logging.getLogger(__name__)

CATALOG = web.AppKey("meshlogs.rest.catalog", CatalogCache)

_JSON = "application/json; charset=utf-8"
_OBJECT = "application/vnd.pgrst.object+json; charset=utf-8"
#: A page whose JSON fits in this many bytes is sent whole; a larger one is streamed.
BUFFER_BYTES = 1 << 20
#: Rows per chunk received from Postgres (libpq chunked-rows mode), and bytes per streamed write.
STREAM_CHUNK_ROWS = 100
_STREAM_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "content-range, content-location, x-supabase-api-version",
}
WRITE_BYTES = 256 * 1024
#: Largest request body accepted by /rest/v1 writes and RPC (the app allows 16 MiB overall).
MAX_BODY_BYTES = 8 << 20

# Run first in every transaction: the caller's role and claims, a statement timeout, UTC output, and
# (reads) read-only, which may be switched on after the transaction's first snapshot.
_SETUP_SQL = (
    "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
    " set_config('statement_timeout', %s, true), set_config('TimeZone', 'UTC', true),"
    " set_config('transaction_read_only', %s, true), set_config('meshlogs.max_line_bytes', %s, true)"
)
_REPEATABLE_READ_SQL = "set transaction isolation level repeatable read"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# As Postgres answers a JSON NUL character headed for a text column (jsonb rejects it too).
_NUL_ERROR = RestError(
    400, "22P05", "unsupported Unicode escape sequence", "\\u0000 cannot be converted to text."
)


# ------------------------------------------------------------------------------------------ plumbing


def _error_response(err: RestError) -> web.Response:
    return web.Response(
        status=err.status,
        body=orjson.dumps(err.body()),
        content_type="application/json",
        charset="utf-8",
        headers=err.headers,
    )


def _rest_errors(handler: Handler) -> Handler:
    """Turn :class:`RestError`, database errors and surprises into PostgREST-shaped responses."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except RestError as err:
            return _error_response(err)
        except PoolTimeout:
            return _error_response(
                RestError(504, "PGRST003", "Timed out acquiring connection from connection pool.")
            )
        except psycopg.OperationalError as exc:
            if exc.sqlstate:
                raise
            log.warning("REST: database connection error: %s", exc)
            return _error_response(RestError(503, "PGRST000", "Database connection error."))
        except web.HTTPException:
            raise  # the API gateway's own answers (missing or invalid apikey)
        except Exception:
            # Never leak internals: log in full, answer with a generic error in PostgREST's shape.
            log.exception("REST: unexpected failure on %s %s", request.method, request.path)
            return _error_response(RestError(500, "XX000", "Internal server error"))

    return wrapped


def _claims(request: web.Request) -> dict[str, Any]:
    """The caller's claims: the Bearer token when present, else the API key's.

    Raises:
        web.HTTPUnauthorized: no or invalid ``apikey`` (the API gateway's answer, before PostgREST).
        RestError: PGRST301/PGRST303 for a bad Bearer token.
    """
    key_claims = require_apikey(request)
    header = request.headers.get("Authorization")
    if header is None:
        return key_claims
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise jwt_error("invalid JWT: expected an `Authorization: Bearer <jwt>` header")
    try:
        return verify_token(request.app[JWT_SECRET], token.strip())
    except TokenError as exc:
        raise jwt_error(str(exc)) from None


def _params(request: web.Request) -> list[tuple[str, str]]:
    """The query parameters, minus ``apikey`` (a credential, never a filter)."""
    return [(k, v) for k, v in request.query.items() if k != "apikey"]


def _check_profile(request: web.Request, header: str) -> None:
    profile = request.headers.get(header)
    if profile is not None and profile != SCHEMA:
        raise RestError(
            406,
            "PGRST106",
            f"Invalid schema: {profile[:100]}",
            None,
            f"Only the following schemas are exposed: {SCHEMA}",
        )


def _pg_error(exc: psycopg.Error, claims: dict[str, Any]) -> RestError:
    diag = exc.diag
    return from_pg_error(
        exc.sqlstate,
        diag.message_primary,
        diag.message_detail,
        diag.message_hint,
        authenticated=claims.get("role") != "anon",
    )


async def _begin(
    conn: psycopg.AsyncConnection[Any], claims: dict[str, Any], settings: Settings, *, read_only: bool
) -> None:
    role = claims["role"]  # one of anon/authenticated/service_role: verify_token guarantees it
    await conn.execute(
        _SETUP_SQL,
        (
            role,
            orjson.dumps(claims).decode(),
            str(settings.rest_statement_timeout_ms),
            "on" if read_only else "off",
            str(settings.max_line_bytes),  # what append_run_logs() truncates to
        ),
    )


def _cache(request: web.Request) -> CatalogCache:
    return request.app[CATALOG]


def _prefer_headers(prefer: Prefer) -> dict[str, str]:
    return {"Preference-Applied": ", ".join(prefer.applied)} if prefer.applied else {}


def _content_range(lower: int, returned: int, total: int | None) -> str:
    upper = lower + returned - 1
    span = f"{lower}-{upper}" if total != 0 and lower <= upper else "*"
    return f"{span}/{'*' if total is None else total}"


def _range_status(lower: int, returned: int, total: int | None) -> int:
    if total is None:
        return 200
    if lower > total:
        return 416
    return 206 if returned < total else 200


async def _read_json_body(request: web.Request) -> Any:
    """The request body as JSON (PostgREST: PGRST102 for a wrong content type or bad JSON)."""
    ctype = request.headers.get("Content-Type", "application/json")
    mime = ctype.split(";", 1)[0].strip().lower()
    if mime not in {"application/json", "application/vnd.pgrst.object+json"}:
        raise invalid_body(f"Content-Type not acceptable: {mime[:100]}")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RestError(413, "PGRST102", f"Request body too large (max {MAX_BODY_BYTES} bytes)")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RestError(413, "PGRST102", "Request body too large") from None
    if len(raw) > MAX_BODY_BYTES:
        raise RestError(413, "PGRST102", f"Request body too large (max {MAX_BODY_BYTES} bytes)")
    try:
        return orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        raise invalid_body("Empty or invalid json") from None


# ---------------------------------------------------------------------------------------------- reads


@_rest_errors
async def read_table(request: web.Request) -> web.StreamResponse:
    """``GET|HEAD /rest/v1/<table>``."""
    settings = request.app[SETTINGS]
    claims = _claims(request)
    _check_profile(request, "Accept-Profile")
    media, strip_nulls = parse_accept(request.headers.get("Accept"))
    query = parse_read_query(_params(request))
    prefer = parse_prefer(request.headers.getall("Prefer", []))
    window = resolve_window(query.limit, query.offset, request.headers.get("Range"), settings.rest_max_rows)
    table = await _cache(request).table(request.match_info["table"])
    # Build every statement first: unknown columns fail here, before any database work.
    if request.method == "HEAD":
        page_sql = sqlbuild.page_count_sql(table, query.conditions, query.order, window.limit, window.offset)
    else:
        page_sql = sqlbuild.read_sql(
            table,
            query.select,
            query.conditions,
            query.order,
            window.limit,
            window.offset,
            strip_nulls=strip_nulls,
        )
    count_stmt = None
    if prefer.count == "exact":
        count_stmt = sqlbuild.count_sql(table, query.conditions)
    elif prefer.count in {"planned", "estimated"}:
        count_stmt = sqlbuild.explain_count_sql(table, query.conditions)
    headers = {"Content-Location": f"/{table.name}", **_prefer_headers(prefer)}

    async with request.app[POOL].connection() as conn:
        try:
            async with conn.transaction():
                if count_stmt is not None:
                    # the total and the page must come from one snapshot
                    await conn.execute(_REPEATABLE_READ_SQL)
                await _begin(conn, claims, settings, read_only=True)
                total = await _total(conn, prefer, count_stmt)
                if request.method == "HEAD":
                    n = await _scalar_int(conn, page_sql)
                    return _head_response(window, n, total, media, headers)
                return await _send_page(request, conn, page_sql, window, total, media, headers)
        except psycopg.Error as exc:
            if exc.sqlstate is None:
                raise
            raise _pg_error(exc, claims) from None


async def _scalar_int(conn: psycopg.AsyncConnection[Any], stmt: sqlbuild.Statement) -> int:
    row = await (await conn.execute(stmt[0], stmt[1])).fetchone()
    assert row is not None
    return int(row[0])


async def _total(
    conn: psycopg.AsyncConnection[Any], prefer: Prefer, stmt: sqlbuild.Statement | None
) -> int | None:
    if stmt is None:
        return None
    if prefer.count == "exact":
        return await _scalar_int(conn, stmt)
    row = await (await conn.execute(stmt[0], stmt[1])).fetchone()
    assert row is not None
    return int(row[0][0]["Plan"]["Plan Rows"])


def _head_response(
    window: Window, n: int, total: int | None, media: MediaType, headers: dict[str, str]
) -> web.Response:
    status = _range_status(window.offset, n, total)
    headers = {**headers, "Content-Range": _content_range(window.offset, n, total)}
    ctype = _OBJECT if media is MediaType.OBJECT else _JSON
    return web.Response(status=status, headers={**headers, "Content-Type": ctype})


def _out_of_range(window: Window, total: int | None, headers: dict[str, str]) -> web.Response:
    err = RestError(
        416,
        "PGRST103",
        "Requested range not satisfiable",
        f"An offset of {window.offset} was requested, but there are only {total} rows.",
    )
    response = _error_response(err)
    response.headers.update(headers)
    response.headers["Content-Range"] = f"*/{total}"
    return response


async def _send_page(
    request: web.Request,
    conn: psycopg.AsyncConnection[Any],
    page_sql: sqlbuild.Statement,
    window: Window,
    total: int | None,
    media: MediaType,
    headers: dict[str, str],
) -> web.StreamResponse:
    """Run the page query (rows stream in chunks) and answer whole or streamed.

    Each row carries the page's row count (``count(*) over ()``), so ``Content-Range`` is known from
    the first row even when the rest of the page is still to come.
    """
    if total is not None and window.offset > total:
        return _out_of_range(window, total, headers)
    async with conn.cursor() as cursor:
        # stream() is an async generator (typed as an iterator): close it to end the query early.
        rows_iter = cast(
            AsyncGenerator[tuple[str, int], None],
            cursor.stream(page_sql[0], page_sql[1], size=STREAM_CHUNK_ROWS),
        )
        try:
            rows: list[str] = []
            n = 0
            size = 0
            exhausted = True
            async for text, page_rows in rows_iter:
                rows.append(text)
                n = page_rows
                size += len(text) + 1
                if size > BUFFER_BYTES:
                    exhausted = False
                    break
            if media is MediaType.OBJECT:
                if n != 1:
                    raise RestError(
                        406,
                        "PGRST116",
                        "Cannot coerce the result to a single JSON object",
                        f"The result contains {n} rows",
                    )
                headers["Content-Range"] = _content_range(window.offset, 1, total)
                obj_headers = {**headers, "Content-Type": _OBJECT}
                return web.Response(status=200, body=rows[0].encode(), headers=obj_headers)
            headers["Content-Range"] = _content_range(window.offset, n, total)
            status = _range_status(window.offset, n, total)
            if exhausted:
                body = ("[" + ",".join(rows) + "]").encode()
                return web.Response(status=status, body=body, headers={**headers, "Content-Type": _JSON})
            return await _stream_rest(request, rows, rows_iter, status, headers)
        finally:
            await rows_iter.aclose()


async def _stream_rest(
    request: web.Request,
    rows: list[str],
    rows_iter: AsyncIterator[tuple[str, int]],
    status: int,
    headers: dict[str, str],
) -> web.StreamResponse:
    """Send a page bigger than the buffer: what was buffered, then the rest as it arrives."""
    # The app's CORS middleware only decorates responses it sees before they are sent; a streamed
    # one is sent from here, so it carries the CORS headers a cross-origin console needs itself.
    response = web.StreamResponse(status=status, headers={**headers, **_STREAM_CORS, "Content-Type": _JSON})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        await response.write(("[" + ",".join(rows)).encode())
        pending: list[str] = []
        pending_size = 0
        async for text, _ in rows_iter:
            pending.append(text)
            pending_size += len(text) + 1
            if pending_size >= WRITE_BYTES:
                await response.write(("," + ",".join(pending)).encode())
                pending, pending_size = [], 0
        if pending:
            await response.write(("," + ",".join(pending)).encode())
        await response.write(b"]")
    except ConnectionError:  # aiohttp's ClientConnectionResetError is one too
        log.info("REST: client left while a page was streamed")
        return response
    except Exception:
        # Headers are gone: the only honest signal left is to cut the connection before the end.
        log.exception("REST: failure while streaming a page; closing the connection")
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


# --------------------------------------------------------------------------------------------- writes


def _representation(request: web.Request, prefer: Prefer) -> tuple[tuple[SelectItem, ...] | None, bool]:
    if prefer.return_ != "representation":
        return None, False
    _, strip = parse_accept(request.headers.get("Accept"))
    return parse_select(request.query.get("select", "*")), strip


def _reject_upsert(request: web.Request) -> None:
    for header in request.headers.getall("Prefer", []):
        if "resolution=" in header:
            raise not_implemented_error("upserts (Prefer: resolution=…) are not supported by meshlogs")
    if "on_conflict" in request.query:
        raise not_implemented_error("upserts (on_conflict) are not supported by meshlogs")


def _columns_param(request: web.Request, table: Table) -> list[str] | None:
    raw = request.query.get("columns")
    if raw is None:
        return None
    names = [c.strip().strip('"') for c in raw.split(",") if c.strip()]
    for name in names:
        if name not in table.by_name:
            raise RestError(
                400,
                "PGRST204",
                f"Could not find the '{name[:100]}' column of '{table.name}' in the schema cache",
            )
    return names


def _check_keys(table: Table, keys: list[str]) -> None:
    for key in keys:
        if key not in table.by_name:
            raise RestError(
                400,
                "PGRST204",
                f"Could not find the '{key[:100]}' column of '{table.name}' in the schema cache",
            )


async def _run_write(
    request: web.Request,
    claims: dict[str, Any],
    stmt: sqlbuild.Statement,
    returning: bool,
    prefer: Prefer,
) -> tuple[list[str], int]:
    settings = request.app[SETTINGS]
    async with request.app[POOL].connection() as conn:
        try:
            async with conn.transaction() as tx:
                await _begin(conn, claims, settings, read_only=False)
                cur = await conn.execute(stmt[0], stmt[1])
                if returning:
                    rows = [r[0] for r in await cur.fetchall()]
                    affected = len(rows)
                else:
                    rows, affected = [], max(cur.rowcount, 0)
                if prefer.tx_rollback:
                    raise psycopg.Rollback(tx)
        except psycopg.Error as exc:
            if exc.sqlstate is None:
                raise
            raise _pg_error(exc, claims) from None
    return rows, affected


def _write_response(
    request: web.Request,
    status: int,
    rows: list[str],
    affected: int,
    returning: bool,
    prefer: Prefer,
    *,
    content_range: str,
) -> web.Response:
    headers = {"Content-Range": content_range, **_prefer_headers(prefer)}
    if not returning:
        return web.Response(status=204 if status == 200 else status, headers=headers)
    media, _ = parse_accept(request.headers.get("Accept"))
    if media is MediaType.OBJECT:
        if len(rows) != 1:
            raise RestError(
                406,
                "PGRST116",
                "Cannot coerce the result to a single JSON object",
                f"The result contains {len(rows)} rows",
            )
        return web.Response(
            status=status, body=rows[0].encode(), headers={**headers, "Content-Type": _OBJECT}
        )
    return web.Response(
        status=status, body=("[" + ",".join(rows) + "]").encode(), headers={**headers, "Content-Type": _JSON}
    )


@_rest_errors
async def insert_rows(request: web.Request) -> web.StreamResponse:
    """``POST /rest/v1/<table>``: insert one object or an array of objects."""
    claims = _claims(request)
    _check_profile(request, "Content-Profile")
    _reject_upsert(request)
    prefer = parse_prefer(request.headers.getall("Prefer", []))
    table = await _cache(request).table(request.match_info["table"])
    items, strip = _representation(request, prefer)
    payload = await _read_json_body(request)
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
        raise invalid_body("Empty or invalid json")
    if has_nul(payload):
        raise _NUL_ERROR
    columns = _columns_param(request, table)
    if columns is None:
        keys = list(payload[0].keys()) if payload else []
        if any(set(r.keys()) != set(keys) for r in payload):
            raise invalid_body("All object keys must match")
        _check_keys(table, keys)
        columns = keys
    if not payload:
        return _write_response(request, 201, [], 0, items is not None, prefer, content_range="*/0")
    stmt = sqlbuild.insert_sql(table, columns, orjson.dumps(payload).decode(), items, strip_nulls=strip)
    rows, affected = await _run_write(request, claims, stmt, items is not None, prefer)
    total = f"/{affected}" if prefer.count else "/*"
    return _write_response(request, 201, rows, affected, items is not None, prefer, content_range="*" + total)


@_rest_errors
async def update_rows(request: web.Request) -> web.StreamResponse:
    """``PATCH /rest/v1/<table>?<filters>``: set the body's columns on every matching row."""
    claims = _claims(request)
    _check_profile(request, "Content-Profile")
    prefer = parse_prefer(request.headers.getall("Prefer", []))
    table = await _cache(request).table(request.match_info["table"])
    query = parse_read_query(_params(request))
    items, strip = _representation(request, prefer)
    payload = await _read_json_body(request)
    if not isinstance(payload, dict):
        raise invalid_body("Empty or invalid json")
    if has_nul(payload):
        raise _NUL_ERROR
    columns = _columns_param(request, table) or list(payload.keys())
    _check_keys(table, columns)
    if not columns:
        return _write_response(request, 200, [], 0, items is not None, prefer, content_range="*/*")
    stmt = sqlbuild.update_sql(
        table, columns, orjson.dumps(payload).decode(), query.conditions, items, strip_nulls=strip
    )
    rows, affected = await _run_write(request, claims, stmt, items is not None, prefer)
    return _affected_response(request, rows, affected, items is not None, prefer)


@_rest_errors
async def delete_rows(request: web.Request) -> web.StreamResponse:
    """``DELETE /rest/v1/<table>?<filters>``."""
    claims = _claims(request)
    _check_profile(request, "Content-Profile")
    prefer = parse_prefer(request.headers.getall("Prefer", []))
    table = await _cache(request).table(request.match_info["table"])
    query = parse_read_query(_params(request))
    items, strip = _representation(request, prefer)
    stmt = sqlbuild.delete_sql(table, query.conditions, items, strip_nulls=strip)
    rows, affected = await _run_write(request, claims, stmt, items is not None, prefer)
    return _affected_response(request, rows, affected, items is not None, prefer)


def _affected_response(
    request: web.Request, rows: list[str], affected: int, represent: bool, prefer: Prefer
) -> web.StreamResponse:
    """PATCH/DELETE answer: 200 with ``Content-Range: 0-(n-1)/(n or *)``, as PostgREST sends it."""
    span = f"0-{affected - 1}" if affected else "*"
    return _write_response(
        request,
        200,
        rows,
        affected,
        represent,
        prefer,
        content_range=f"{span}/{affected if prefer.count else '*'}",
    )


@_rest_errors
async def unsupported_method(request: web.Request) -> web.StreamResponse:
    _claims(request)
    raise RestError(405, "PGRST117", f"Unsupported HTTP method: {request.method}")


@_rest_errors
async def root(request: web.Request) -> web.StreamResponse:
    _claims(request)
    raise RestError(404, "PGRST126", "Root endpoint metadata is disabled")


# ------------------------------------------------------------------------------------------------ RPC


def _choose_function(candidates: tuple[Function, ...], name: str, keys: set[str]) -> Function:
    matching = [
        f
        for f in candidates
        if keys <= {a.name for a in f.args}
        and all(a.has_default or a.name in keys for a in f.args)
        and all(a.name for a in f.args if a.name in keys)
    ]
    if not matching:
        raise function_not_found(SCHEMA, name, keys)
    if len(matching) > 1:
        listed = ", ".join(f"{SCHEMA}.{f.name}({', '.join(a.name for a in f.args)})" for f in matching)
        raise RestError(
            300,
            "PGRST203",
            f"Could not choose the best candidate function between: {listed}",
            None,
            "Try renaming the parameters or the function itself in the database so function "
            "overloading can be resolved",
        )
    return matching[0]


@_rest_errors
async def call_function(request: web.Request) -> web.StreamResponse:
    """``POST /rest/v1/rpc/<function>`` with a JSON object of named arguments."""
    settings = request.app[SETTINGS]
    claims = _claims(request)
    _check_profile(request, "Content-Profile")
    if request.method != "POST":
        if request.method in {"GET", "HEAD"}:
            raise not_implemented_error("calling functions with GET is not supported by meshlogs")
        raise RestError(405, "PGRST101", f"Cannot use the {request.method} method on RPC")
    for key, _ in _params(request):
        if key != "select":
            raise not_implemented_error(f"query parameter {key[:100]!r} on RPC is not supported")
    name = request.match_info["function"]
    payload = await _read_json_body(request)
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise not_implemented_error("RPC bodies must be a JSON object of named arguments")
    if has_nul(payload):
        raise _NUL_ERROR
    function = _choose_function(await _cache(request).functions(name), name, set(payload))
    stmt = sqlbuild.rpc_sql(function, payload)
    prefer = parse_prefer(request.headers.getall("Prefer", []))
    async with request.app[POOL].connection() as conn:
        try:
            async with conn.transaction() as tx:
                await _begin(conn, claims, settings, read_only=function.volatility in {"s", "i"})
                cur = await conn.execute(stmt[0], stmt[1])
                row = await cur.fetchone()
                if prefer.tx_rollback:
                    raise psycopg.Rollback(tx)
        except psycopg.Error as exc:
            if exc.sqlstate is None:
                raise
            raise _pg_error(exc, claims) from None
    headers = _prefer_headers(prefer)
    if function.returns_void:
        return web.Response(status=204, headers=headers)
    body = row[0] if row is not None and row[0] is not None else "null"
    return web.Response(status=200, body=body.encode(), headers={**headers, "Content-Type": _JSON})


def add_routes(app: web.Application) -> None:
    """Mount ``/rest/v1`` on ``app`` (before the console's catch-all)."""
    app[CATALOG] = CatalogCache(lambda: app[POOL])
    app.router.add_route("*", "/rest/v1/rpc/{function}", call_function)
    app.router.add_get("/rest/v1/{table}", read_table, allow_head=True)
    app.router.add_post("/rest/v1/{table}", insert_rows)
    app.router.add_patch("/rest/v1/{table}", update_rows)
    app.router.add_delete("/rest/v1/{table}", delete_rows)
    app.router.add_route("*", "/rest/v1/{table}", unsupported_method)
    app.router.add_route("*", "/rest/v1/", root)
    app.router.add_route("*", "/rest/v1", root)
