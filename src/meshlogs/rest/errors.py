"""PostgREST's error body (``code``, ``message``, ``details``, ``hint``) and its HTTP statuses.

supabase-js and postgrest-py turn any non-2xx JSON body into their ``PostgrestError``/``APIError`` by
reading exactly these four keys, so every failure of ``/rest/v1`` is a :class:`RestError`. Codes follow
PostgREST 12-14 (``docs/references/errors.rst`` and ``src/library/PostgREST/Error.hs``):

=========  ======  ===================================================================
code       status  meaning
=========  ======  ===================================================================
PGRST100   400     the query string does not parse (filter, order, select, limit...)
PGRST102   400     the body is not JSON (or not UTF-8), or has a content type we refuse
PGRST103   416     the requested range cannot be satisfied
PGRST106   406     ``Accept-Profile``/``Content-Profile`` names a schema that is not exposed
PGRST107   406     ``Accept`` asks for a media type we do not produce
PGRST116   406     a single object was requested but 0 or more than 1 rows matched
PGRST117   405     the HTTP method is not supported on this resource
PGRST127   400     valid PostgREST syntax that this subset does not implement
PGRST202   404     no such function in the schema cache
PGRST203   300     the function name is overloaded ambiguously
PGRST205   404     no such table or view in the schema cache
PGRST301   401     the JWT cannot be decoded or verified
PGRST303   401     the JWT's claims are invalid (expired...)
42703      400     unknown column
(SQLSTATE) varies  errors raised by Postgres, mapped as PostgREST maps them (:func:`pg_status`)
=========  ======  ===================================================================
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "RestError",
    "column_not_found",
    "from_pg_error",
    "function_not_found",
    "invalid_body",
    "jwt_error",
    "not_implemented",
    "parse_error",
    "pg_status",
    "table_not_found",
]


class RestError(Exception):
    """A request failure, rendered as PostgREST renders it.

    Attributes:
        status: HTTP status.
        code: PostgREST (``PGRSTxxx``) or Postgres (SQLSTATE) code.
        message, details, hint: the body's fields (``details``/``hint`` may be None, sent as null).
        headers: extra response headers (``WWW-Authenticate`` for JWT errors).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}


def parse_error(what: str, value: str, details: str) -> RestError:
    """PGRST100: e.g. ``failed to parse filter (noop.1)``."""
    shown = value if len(value) <= 200 else value[:200] + "…"
    return RestError(400, "PGRST100", f'"failed to parse {what} ({shown})"', details)


def not_implemented(details: str) -> RestError:
    """PGRST127: PostgREST syntax that meshlogs' subset does not support."""
    return RestError(400, "PGRST127", "Feature not implemented", details)


def invalid_body(message: str) -> RestError:
    return RestError(400, "PGRST102", message)


def _suggest(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def table_not_found(schema: str, name: str, candidates: Iterable[str]) -> RestError:
    best = _suggest(name, candidates)
    hint = f"Perhaps you meant the table '{schema}.{best}'" if best else None
    return RestError(
        404, "PGRST205", f"Could not find the table '{schema}.{name}' in the schema cache", None, hint
    )


def column_not_found(table: str, column: str, candidates: Iterable[str]) -> RestError:
    best = _suggest(column, candidates)
    hint = f'Perhaps you meant to reference the column "{table}.{best}".' if best else None
    return RestError(400, "42703", f"column {table}.{column} does not exist", None, hint)


def function_not_found(schema: str, name: str, arg_names: Iterable[str]) -> RestError:
    args = ", ".join(sorted(arg_names))
    return RestError(
        404,
        "PGRST202",
        f"Could not find the function {schema}.{name}({args}) in the schema cache",
        f"Searched for the function {schema}.{name} with parameters {args or '(none)'}, "
        "but no matches were found in the schema cache.",
        None,
    )


def jwt_error(reason: str) -> RestError:
    """PGRST301 (cannot decode/verify) or PGRST303 (claims invalid), 401 with ``WWW-Authenticate``.

    Args:
        reason: the :class:`~meshlogs.errors.TokenError` message (safe to show).
    """
    if "expired" in reason:
        code, message = "PGRST303", "JWT expired"
    elif "role" in reason or "audience" in reason or "sub claim" in reason or "missing claim" in reason:
        code, message = "PGRST303", "Parsing claims failed"
    elif "HS256" in reason:
        code, message = "PGRST301", "Wrong or unsupported encoding algorithm"
    elif "signature" in reason:
        code, message = "PGRST301", "JWT cryptographic operation failed"
    else:
        code, message = "PGRST301", "JWT couldn't be decoded"
    quoted = message.replace('"', "'")
    return RestError(
        401,
        code,
        message,
        reason,
        None,
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{quoted}"'},
    )


def pg_status(sqlstate: str, message: str, authenticated: bool) -> int:
    """The HTTP status PostgREST answers a Postgres error with (``mapSQLtoHTTP``)."""
    s = sqlstate
    exact = {
        "23503": 409,
        "23505": 409,
        "25006": 405,
        "53400": 500,
        "57P01": 503,
        "P0001": 400,
        "42883": 404,
        "42P01": 404,
        "42P17": 500,
    }
    if s == "42501":
        return 403 if authenticated else 401
    if s == "22023":
        return 401 if message.startswith("role") and message.endswith("does not exist") else 400
    if s == "21000":
        return 400 if message.endswith("requires a WHERE clause") else 500
    if s in exact:
        return exact[s]
    prefixes = {
        "08": 503,
        "09": 500,
        "0L": 403,
        "0P": 403,
        "25": 500,
        "28": 403,
        "2D": 500,
        "38": 500,
        "39": 500,
        "3B": 500,
        "40": 500,
        "53": 503,
        "54": 500,
        "55": 500,
        "57": 500,
        "58": 500,
        "F0": 500,
        "HV": 500,
        "P0": 500,
        "XX": 500,
    }
    if s[:2] == "PT" and s[2:].isdigit():
        code = int(s[2:])
        return code if 100 <= code <= 599 else 500
    return prefixes.get(s[:2], 400)


def from_pg_error(
    sqlstate: str | None,
    message: str | None,
    details: str | None,
    hint: str | None,
    *,
    authenticated: bool,
) -> RestError:
    """A Postgres error as PostgREST forwards it (same fields, mapped status)."""
    state = sqlstate or "XX000"
    text = message or "database error"
    return RestError(pg_status(state, text, authenticated), state, text, details, hint)
