"""How Supabase Realtime words a token it refuses, at connect time and on a channel join.

The official clients show these strings to users, and some apps match on them (an expired token
makes supabase-js refresh and retry; "Fields `role` and `exp` are required in JWT" does not), so
meshlogs uses Supabase's exact texts, taken from the Realtime server's socket and channel code,
rather than its own :class:`~meshlogs.errors.TokenError` messages.
"""

from __future__ import annotations

import time

from meshlogs.errors import TokenError

__all__ = ["connect_error", "expired_message", "join_error", "refresh_error"]

_CONNECT = {
    "expired": "Token has expired",
    "missing_claims": "Fields `role` and `exp` are required in JWT",
    "signature": "Failed to validate JWT signature",
}
_MALFORMED = "The token provided is not a valid JWT"


def connect_error(exc: TokenError) -> str:
    """The ``error`` of the HTTP 401 body that refuses the WebSocket upgrade."""
    return _CONNECT.get(exc.reason, _MALFORMED)


def expired_message(seconds_ago: float) -> str:
    """Supabase's words for a token that expired (a refused join, or a channel closed by expiry)."""
    return f"Token has expired {max(0, int(seconds_ago))} seconds ago"


def join_error(exc: TokenError, now: float | None = None) -> str:
    """The ``reason`` of a refused ``phx_join`` (or a ``system`` error on a token refresh)."""
    if exc.reason == "expired":
        if exc.expired_at is None:
            return "InvalidJWTToken: Token has expired"
        return "InvalidJWTToken: " + expired_message((time.time() if now is None else now) - exc.expired_at)
    if exc.reason == "missing_claims":
        return "InvalidJWTToken: Fields `role` and `exp` are required in JWT"
    if exc.reason == "signature":
        return "JwtSignatureError: Failed to validate JWT signature"
    return f"MalformedJWT: {_MALFORMED}"


def refresh_error(exc: TokenError, now: float | None = None) -> str:
    """The ``message`` of the ``system`` error that closes a channel refreshed with a bad token:
    the join wording without its ``Code:`` prefix, as Supabase sends it."""
    return join_error(exc, now).split(": ", 1)[1]
