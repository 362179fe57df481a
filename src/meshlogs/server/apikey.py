"""The ``apikey`` every request must carry, checked the way Supabase's API gateway checks it.

supabase-js sends the key as the ``apikey`` header on HTTP and as the ``apikey`` query parameter on
the WebSocket URL; the user's own token (if logged in) rides in ``Authorization: Bearer``. A missing
or invalid key is refused before any route runs, with the JSON bodies Supabase returns, so clients
surface the same errors.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from meshlogs.auth.tokens import verify_token
from meshlogs.errors import TokenError
from meshlogs.server.keys import JWT_SECRET

__all__ = ["bearer_claims", "request_apikey", "require_apikey"]


def request_apikey(request: web.Request) -> str | None:
    """The API key from the ``apikey`` header or query parameter, if any."""
    return request.headers.get("apikey") or request.query.get("apikey")


def require_apikey(request: web.Request) -> dict[str, Any]:
    """Verify the request's API key and return its claims.

    Raises:
        web.HTTPUnauthorized: no key, or a key that does not verify (JSON body as Supabase sends).
    """
    key = request_apikey(request)
    if not key:
        raise _unauthorized(
            "No API key found in request", "No `apikey` request header or url param was found."
        )
    try:
        return verify_token(request.app[JWT_SECRET], key)
    except TokenError as exc:
        raise _unauthorized("Invalid API key", str(exc)) from None


def bearer_claims(request: web.Request) -> dict[str, Any]:
    """Claims of whoever makes the request: the Bearer token if present, else the API key's.

    Raises:
        web.HTTPUnauthorized: the API key does not verify.
        TokenError: the Bearer token does not verify; each API maps it to its own error shape
            (PostgREST's ``PGRST301``, Auth's ``bad_jwt``...).
    """
    key_claims = require_apikey(request)
    header = request.headers.get("Authorization", "")
    if not header:
        return key_claims
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Invalid authorization header", "expected `Authorization: Bearer <jwt>`")
    return verify_token(request.app[JWT_SECRET], token.strip())


def _unauthorized(message: str, hint: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=web.json_response({"message": message, "hint": hint}).text,
        content_type="application/json",
    )
