"""Auth sessions and rotating refresh tokens in ``meshlogs.auth_sessions`` / ``meshlogs.refresh_tokens``.

A refresh token is 32 random bytes, base64url (43 characters); the database keeps only its SHA-256.
Rotation (:func:`rotate_refresh_token`) follows Supabase Auth:

- a live token is revoked and a successor issued;
- a revoked token whose successor is still live, presented within ``reuse_interval`` seconds of its
  rotation, gets that same successor back (the client retried after losing the response). To give
  the same token string back without storing it, the successor is sealed with
  ``HMAC-SHA256(parent_token, …)`` as a one-time pad: only the parent's holder can unseal it;
- any other reuse means two parties hold the chain: the whole session (every token) is revoked.

Every function runs inside the caller's transaction (the caller commits), and rows are locked
``FOR UPDATE`` so concurrent refreshes of one token serialize.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg

from meshlogs.auth.gotrue import UserRow

__all__ = [
    "RefreshOutcome",
    "RotateResult",
    "create_session",
    "find_user_by_email",
    "find_user_by_id",
    "hash_token",
    "new_refresh_token",
    "revoke_sessions",
    "rotate_refresh_token",
    "session_revoked",
]

_USER_COLUMNS = (
    "id::text, aud, role, email, encrypted_password, email_confirmed_at, last_sign_in_at,"
    " raw_app_meta_data, raw_user_meta_data, created_at, updated_at"
)
_FIND_BY_EMAIL = f"select {_USER_COLUMNS} from auth.users where lower(email) = %s"
_FIND_BY_ID = f"select {_USER_COLUMNS} from auth.users where id = %s"
_INSERT_SESSION = (
    "insert into meshlogs.auth_sessions (user_id, user_agent, ip) values (%s, %s, %s) returning id::text"
)
_INSERT_TOKEN = (
    "insert into meshlogs.refresh_tokens (token_hash, session_id, parent_id) values (%s, %s, %s) returning id"
)
_LOCK_TOKEN = """
select rt.id, rt.session_id::text, rt.revoked, rt.successor_sealed,
       coalesce(now() - rt.revoked_at <= make_interval(secs => %s), false),
       s.user_id::text, s.revoked_at is not null, s.revoked_reason
from meshlogs.refresh_tokens rt
join meshlogs.auth_sessions s on s.id = rt.session_id
where rt.token_hash = %s
for update of rt, s
"""
_LIVE_CHILD = "select token_hash from meshlogs.refresh_tokens where parent_id = %s and not revoked"
_REVOKE_TOKEN = (
    "update meshlogs.refresh_tokens set revoked = true, revoked_at = now(), successor_sealed = %s"
    " where id = %s"
)
_TOUCH_SESSION = "update meshlogs.auth_sessions set refreshed_at = now() where id = %s"
_REVOKE_SESSION_TOKENS = (
    "update meshlogs.refresh_tokens set revoked = true, revoked_at = coalesce(revoked_at, now()),"
    " successor_sealed = null where session_id = any(%s::uuid[])"
)
_REVOKE_SESSION = (
    "update meshlogs.auth_sessions set revoked_at = now(), revoked_reason = %s"
    " where id = %s and revoked_at is null"
)
_USER_SESSIONS = (
    "select id from meshlogs.auth_sessions where user_id = %s and revoked_at is null"
    " and (%s::uuid is null or id <> %s::uuid)"
)
_REVOKE_USER_SESSIONS = (
    "update meshlogs.auth_sessions set revoked_at = now(), revoked_reason = 'logout'"
    " where id = any(%s::uuid[])"
)
_SESSION_REVOKED = "select revoked_at is not null from meshlogs.auth_sessions where id = %s"
# Old rotated tokens of a session are only needed for the reuse check; keep a day of them.
_PRUNE_TOKENS = (
    "delete from meshlogs.refresh_tokens where session_id = %s and revoked"
    " and revoked_at < now() - interval '1 day'"
)
_PRUNE_SESSIONS = (
    "delete from meshlogs.auth_sessions where user_id = %s and revoked_at < now() - interval '30 days'"
)

_SEAL_INFO = b"meshlogs refresh-token successor v1"


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh token: (token string, its 32 random bytes)."""
    raw = secrets.token_bytes(32)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), raw


def _pad(parent_token: str) -> bytes:
    return hmac.new(parent_token.encode(), _SEAL_INFO, hashlib.sha256).digest()


def _seal(parent_token: str, child_raw: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(child_raw, _pad(parent_token), strict=True))


def _unseal(parent_token: str, sealed: bytes) -> str:
    raw = bytes(a ^ b for a, b in zip(sealed, _pad(parent_token), strict=True))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _user(row: tuple[Any, ...] | None) -> UserRow | None:
    return None if row is None else UserRow(*row)


async def find_user_by_email(conn: psycopg.AsyncConnection[Any], email: str) -> UserRow | None:
    cur = await conn.execute(_FIND_BY_EMAIL, (email.strip().lower(),))
    return _user(await cur.fetchone())


async def find_user_by_id(conn: psycopg.AsyncConnection[Any], user_id: str) -> UserRow | None:
    cur = await conn.execute(_FIND_BY_ID, (user_id,))
    return _user(await cur.fetchone())


async def create_session(
    conn: psycopg.AsyncConnection[Any], user_id: str, *, user_agent: str | None, ip: str | None
) -> tuple[str, str]:
    """Open a session for ``user_id``; returns (session id, first refresh token)."""
    await conn.execute(_PRUNE_SESSIONS, (user_id,))
    row = await (await conn.execute(_INSERT_SESSION, (user_id, (user_agent or "")[:500], ip))).fetchone()
    assert row is not None
    session_id = str(row[0])
    token, _ = new_refresh_token()
    await conn.execute(_INSERT_TOKEN, (hash_token(token), session_id, None))
    return session_id, token


class RefreshOutcome(enum.Enum):
    ROTATED = "rotated"  # a new token was issued
    REISSUED = "reissued"  # a retry within the reuse interval: the same successor again
    NOT_FOUND = "not_found"  # unknown token, or its session was logged out
    REUSED = "reused"  # reuse outside the interval: the session has just been revoked
    SESSION_REVOKED = "session_revoked"  # the session was revoked earlier for reuse


@dataclass(frozen=True)
class RotateResult:
    outcome: RefreshOutcome
    user_id: str | None = None
    session_id: str | None = None
    refresh_token: str | None = None


async def rotate_refresh_token(
    conn: psycopg.AsyncConnection[Any], token: str, *, reuse_interval: int
) -> RotateResult:
    """Exchange ``token`` for its successor (see the module docstring for the rules).

    A :attr:`RefreshOutcome.REUSED` result has revoked the session: the caller must still commit.
    """
    row = await (await conn.execute(_LOCK_TOKEN, (reuse_interval, hash_token(token)))).fetchone()
    if row is None:
        return RotateResult(RefreshOutcome.NOT_FOUND)
    token_id, session_id, revoked, sealed, within_window, user_id, session_revoked, reason = row
    if session_revoked:
        if reason == "refresh_token_reuse":
            return RotateResult(RefreshOutcome.SESSION_REVOKED, user_id, session_id)
        return RotateResult(RefreshOutcome.NOT_FOUND, user_id, session_id)
    if not revoked:
        child, child_raw = new_refresh_token()
        await conn.execute(_INSERT_TOKEN, (hash_token(child), session_id, token_id))
        await conn.execute(_REVOKE_TOKEN, (_seal(token, child_raw), token_id))
        await conn.execute(_TOUCH_SESSION, (session_id,))
        await conn.execute(_PRUNE_TOKENS, (session_id,))
        return RotateResult(RefreshOutcome.ROTATED, user_id, session_id, child)
    if within_window and sealed is not None:
        live = await (await conn.execute(_LIVE_CHILD, (token_id,))).fetchone()
        if live is not None:
            child = _unseal(token, bytes(sealed))
            if hmac.compare_digest(hash_token(child), bytes(live[0])):
                return RotateResult(RefreshOutcome.REISSUED, user_id, session_id, child)
    await _revoke_session(conn, session_id, "refresh_token_reuse")
    return RotateResult(RefreshOutcome.REUSED, user_id, session_id)


async def _revoke_session(conn: psycopg.AsyncConnection[Any], session_id: str, reason: str) -> None:
    await conn.execute(_REVOKE_SESSION, (reason, session_id))
    await conn.execute(_REVOKE_SESSION_TOKENS, ([session_id],))


async def revoke_sessions(
    conn: psycopg.AsyncConnection[Any], user_id: str, session_id: str | None, scope: str
) -> int:
    """Log out: ``local`` revokes ``session_id``; ``others`` every other session of the user;
    ``global`` all of them. Returns how many sessions were revoked."""
    if scope == "local":
        if session_id is None:
            return 0
        ids = [session_id]
        await conn.execute(_REVOKE_SESSION, ("logout", session_id))
    else:
        keep = session_id if scope == "others" else None
        rows = await (await conn.execute(_USER_SESSIONS, (user_id, keep, keep))).fetchall()
        ids = [str(r[0]) for r in rows]
        if not ids:
            return 0
        await conn.execute(_REVOKE_USER_SESSIONS, (ids,))
    await conn.execute(_REVOKE_SESSION_TOKENS, (ids,))
    return len(ids)


async def session_revoked(conn: psycopg.AsyncConnection[Any], session_id: str) -> bool | None:
    """True if revoked, False if live, None if unknown (tokens minted by ``meshlogs token``)."""
    row = await (await conn.execute(_SESSION_REVOKED, (session_id,))).fetchone()
    return None if row is None else bool(row[0])
