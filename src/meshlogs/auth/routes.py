"""``/auth/v1``: the Supabase Auth (GoTrue) subset supabase-js and supabase-py use to log in.

=============================================  ================================================
``POST /auth/v1/signup``                        email + password; only with MESHLOGS_ALLOW_SIGNUP
``POST /auth/v1/token?grant_type=password``     email + password → session
``POST /auth/v1/token?grant_type=refresh_token`` rotate the refresh token → session
``GET  /auth/v1/user``                          the Bearer token's user
``POST /auth/v1/logout?scope=global|local|others``  revoke sessions (204)
``GET  /auth/v1/settings``, ``GET /auth/v1/health``  what the server supports
=============================================  ================================================

Every endpoint requires the ``apikey``. Users are confirmed on signup (there is no mailer). Error
bodies, codes and statuses are GoTrue's (:mod:`meshlogs.auth.gotrue`). Password hashing (argon2id,
about 50 ms) runs in worker threads, at most two at a time, so logins never stall the event loop.
The token endpoint and signup are rate limited per client IP and email, and per IP
(:mod:`meshlogs.auth.ratelimit`); refresh grants per IP.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import orjson
import psycopg
from aiohttp import web
from psycopg_pool import PoolTimeout

from meshlogs.auth import sessions
from meshlogs.auth.gotrue import (
    API_VERSION_HEADER,
    AuthError,
    UserRow,
    error_body,
    session_json,
    user_json,
)
from meshlogs.auth.passwords import hash_password, needs_rehash, verify_password
from meshlogs.auth.ratelimit import RateLimiter
from meshlogs.auth.tokens import mint_access_token, verify_token
from meshlogs.errors import TokenError
from meshlogs.server.apikey import require_apikey
from meshlogs.server.bodies import has_nul
from meshlogs.server.keys import JWT_SECRET, POOL, SETTINGS

__all__ = ["add_routes"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MIN_PASSWORD = 6  # GoTrue's default GOTRUE_PASSWORD_MIN_LENGTH
MAX_PASSWORD = 72  # GoTrue's MaxPasswordLength
MAX_BODY_BYTES = 64 * 1024
MAX_METADATA_BYTES = 16 * 1024
RATE_PERIOD = 300.0  # seconds: limits are "per 5 minutes", as Supabase Auth's
_EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f.]{2,}$")

_UPDATE_LOGIN = (
    "update auth.users set last_sign_in_at = now() where id = %s returning id::text, aud, role, email,"
    " encrypted_password, email_confirmed_at, last_sign_in_at, raw_app_meta_data, raw_user_meta_data,"
    " created_at, updated_at"
)
_REHASH = "update auth.users set encrypted_password = %s where id = %s"
_INSERT_USER = (
    "insert into auth.users (email, encrypted_password, email_confirmed_at, aud, role,"
    " raw_app_meta_data, raw_user_meta_data, last_sign_in_at)"
    " values (%s, %s, now(), 'authenticated', 'authenticated', %s, %s, now())"
    " on conflict (email) do nothing"
    " returning id::text, aud, role, email, encrypted_password, email_confirmed_at, last_sign_in_at,"
    " raw_app_meta_data, raw_user_meta_data, created_at, updated_at"
)


@dataclass
class _Limits:
    per_email: RateLimiter
    per_ip: RateLimiter
    refresh: RateLimiter
    hashing: asyncio.Semaphore


_LIMITS = web.AppKey("meshlogs.auth.limits", _Limits)


# ---------------------------------------------------------------------------------------- plumbing


def _auth_errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AuthError as err:
            body, headers = error_body(err, request.headers.get(API_VERSION_HEADER))
            return web.Response(
                status=err.status, body=orjson.dumps(body), headers=headers, content_type="application/json"
            )
        except (PoolTimeout, psycopg.OperationalError) as exc:
            log.warning("auth: database unavailable: %s", exc)
            unavailable = AuthError(503, "unexpected_failure", "Database unavailable, please retry")
            body, headers = error_body(unavailable, request.headers.get(API_VERSION_HEADER))
            return web.Response(
                status=503, body=orjson.dumps(body), headers=headers, content_type="application/json"
            )

    return wrapped


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object body (GoTrue reads the body as JSON whatever the Content-Type)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise AuthError(
            413, "request_entity_too_large", f"Request body too large (max {MAX_BODY_BYTES} bytes)"
        )
    chunks: list[bytes] = []
    received = 0
    while chunk := await request.content.read(16384):
        received += len(chunk)
        if received > MAX_BODY_BYTES:
            raise AuthError(
                413, "request_entity_too_large", f"Request body too large (max {MAX_BODY_BYTES} bytes)"
            )
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AuthError(400, "bad_json", f"Could not parse request body as JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise AuthError(400, "bad_json", "Could not parse request body as JSON: expected an object")
    return data


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or "\x00" in value:
        raise AuthError(400, "bad_json", f"Could not parse request body as JSON: {name} must be a string")
    return value


def _rate_limit(request: web.Request, email: str | None) -> None:
    limits = request.app[_LIMITS]
    ip = request.remote or "?"
    now = time.monotonic()
    if email is None:
        allowed = limits.refresh.allow(f"refresh:{ip}", now)
    else:
        allowed = limits.per_ip.allow(f"ip:{ip}", now) and limits.per_email.allow(
            f"email:{ip}:{email.strip().lower()}", now
        )
    if not allowed:
        raise AuthError(429, "over_request_rate_limit", "Request rate limit reached")


async def _in_thread(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    async with request.app[_LIMITS].hashing:
        return await asyncio.to_thread(fn, *args)


def _issue(request: web.Request, user: UserRow, session_id: str, refresh_token: str) -> web.Response:
    settings = request.app[SETTINGS]
    now = int(time.time())
    access = mint_access_token(
        request.app[JWT_SECRET],
        user_id=user.id,
        email=user.email,
        ttl=settings.jwt_expiry,
        session_id=session_id,
        now=now,
    )
    return _json(session_json(user, access, refresh_token, settings.jwt_expiry, now))


def _check_password_strength(password: str) -> None:
    if len(password) > MAX_PASSWORD:
        raise AuthError(400, "validation_failed", f"Password cannot be longer than {MAX_PASSWORD} characters")
    if len(password) < MIN_PASSWORD:
        raise AuthError(
            422,
            "weak_password",
            f"Password should be at least {MIN_PASSWORD} characters.",
            {"weak_password": {"reasons": ["length"]}},
        )


def _validate_email(email: str) -> str:
    if not email:
        raise AuthError(400, "validation_failed", "An email address is required")
    if len(email) > 255:
        raise AuthError(400, "validation_failed", "An email address is too long")
    if not _EMAIL.match(email.strip()):
        raise AuthError(400, "validation_failed", "Unable to validate email address: invalid format")
    return email.strip().lower()


# ------------------------------------------------------------------------------------------- handlers


@_auth_errors
async def signup(request: web.Request) -> web.StreamResponse:
    require_apikey(request)
    if not request.app[SETTINGS].allow_signup:
        raise AuthError(422, "signup_disabled", "Signups not allowed for this instance")
    body = await _body(request)
    email, phone, password = _string(body, "email"), _string(body, "phone"), _string(body, "password")
    if not email and not phone:
        raise AuthError(422, "anonymous_provider_disabled", "Anonymous sign-ins are disabled")
    _rate_limit(request, email or phone)
    if not password:
        raise AuthError(400, "validation_failed", "Signup requires a valid password")
    _check_password_strength(password)
    if email and phone:
        raise AuthError(
            400, "validation_failed", "Only an email address or phone number should be provided on signup."
        )
    if phone:
        raise AuthError(400, "phone_provider_disabled", "Phone signups are disabled")
    email = _validate_email(email)
    data = body.get("data") or {}
    if not isinstance(data, dict) or len(orjson.dumps(data)) > MAX_METADATA_BYTES or has_nul(data):
        raise AuthError(
            400, "validation_failed", f"data must be a JSON object of at most {MAX_METADATA_BYTES} bytes"
        )
    hashed = await _in_thread(request, hash_password, password)
    app_meta = orjson.dumps({"provider": "email", "providers": ["email"]}).decode()
    async with request.app[POOL].connection() as conn, conn.transaction():
        row = await (
            await conn.execute(_INSERT_USER, (email, hashed, app_meta, orjson.dumps(data).decode()))
        ).fetchone()
        if row is None:
            raise AuthError(422, "user_already_exists", "User already registered")
        user = UserRow(*row)
        session_id, refresh = await sessions.create_session(
            conn, user.id, user_agent=request.headers.get("User-Agent"), ip=request.remote
        )
    return _issue(request, user, session_id, refresh)


@_auth_errors
async def token(request: web.Request) -> web.StreamResponse:
    require_apikey(request)
    grant = request.query.get("grant_type", "")
    if grant == "password":
        return await _password_grant(request)
    if grant == "refresh_token":
        return await _refresh_grant(request)
    raise AuthError(400, "invalid_credentials", "unsupported_grant_type")


async def _password_grant(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    email, phone, password = _string(body, "email"), _string(body, "phone"), _string(body, "password")
    if email and phone:
        raise AuthError(
            400, "validation_failed", "Only an email address or phone number should be provided on login."
        )
    if phone:
        raise AuthError(422, "phone_provider_disabled", "Phone logins are disabled")
    if not email:
        raise AuthError(400, "validation_failed", "missing email or phone")
    _rate_limit(request, email)
    if len(email) > 255 or len(password) > 1024:
        raise AuthError(400, "invalid_credentials", "Invalid login credentials")
    async with request.app[POOL].connection() as conn, conn.transaction():
        user = await sessions.find_user_by_email(conn, email)
    stored = user.encrypted_password if user is not None else None
    ok = await _in_thread(request, verify_password, stored, password)
    if user is None or not ok:
        raise AuthError(400, "invalid_credentials", "Invalid login credentials")
    if user.email_confirmed_at is None:
        raise AuthError(400, "email_not_confirmed", "Email not confirmed")
    rehashed = None
    if stored and needs_rehash(stored):
        rehashed = await _in_thread(request, hash_password, password)
    async with request.app[POOL].connection() as conn, conn.transaction():
        if rehashed:
            await conn.execute(_REHASH, (rehashed, user.id))
        row = await (await conn.execute(_UPDATE_LOGIN, (user.id,))).fetchone()
        if row is None:  # deleted in between
            raise AuthError(400, "invalid_credentials", "Invalid login credentials")
        user = UserRow(*row)
        session_id, refresh = await sessions.create_session(
            conn, user.id, user_agent=request.headers.get("User-Agent"), ip=request.remote
        )
    return _issue(request, user, session_id, refresh)


async def _refresh_grant(request: web.Request) -> web.StreamResponse:
    _rate_limit(request, None)
    body = await _body(request)
    refresh = _string(body, "refresh_token")
    if len(refresh) < 12 or len(refresh) > 256:
        raise AuthError(400, "validation_failed", "Refresh token is not valid")
    settings = request.app[SETTINGS]
    async with request.app[POOL].connection() as conn, conn.transaction():
        result = await sessions.rotate_refresh_token(
            conn, refresh, reuse_interval=settings.refresh_token_reuse_interval
        )
        user = None
        if result.refresh_token is not None and result.user_id is not None:
            user = await sessions.find_user_by_id(conn, result.user_id)
        # committed: a detected reuse has revoked the session whatever we answer
    outcome = result.outcome
    if outcome in {sessions.RefreshOutcome.REUSED, sessions.RefreshOutcome.SESSION_REVOKED}:
        log.warning("auth: refresh token reuse; session %s revoked", result.session_id)
        raise AuthError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
    if user is None or result.refresh_token is None or result.session_id is None:
        raise AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
    return _issue(request, user, result.session_id, result.refresh_token)


async def _authenticate(
    request: web.Request, conn: psycopg.AsyncConnection[Any]
) -> tuple[dict[str, Any], UserRow]:
    """The Bearer token's claims and user, checked as GoTrue's ``requireAuthentication`` does."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token")
    try:
        claims = verify_token(request.app[JWT_SECRET], raw.strip())
    except TokenError as exc:
        raise AuthError(403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {exc}") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthError(403, "bad_jwt", "invalid claim: missing sub claim")
    try:
        uuid.UUID(sub)
    except ValueError:
        raise AuthError(400, "bad_jwt", "invalid claim: sub claim must be a UUID") from None
    session_id = claims.get("session_id")
    if session_id is not None:
        try:
            uuid.UUID(str(session_id))
        except ValueError:
            raise AuthError(403, "bad_jwt", "invalid claim: session_id claim must be a UUID") from None
    user = await sessions.find_user_by_id(conn, sub)
    if user is None:
        raise AuthError(403, "user_not_found", "User from sub claim in JWT does not exist")
    if session_id is not None and await sessions.session_revoked(conn, str(session_id)):
        raise AuthError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
    return claims, user


@_auth_errors
async def get_user(request: web.Request) -> web.StreamResponse:
    require_apikey(request)
    async with request.app[POOL].connection() as conn, conn.transaction():
        _, user = await _authenticate(request, conn)
    return _json(user_json(user))


@_auth_errors
async def logout(request: web.Request) -> web.StreamResponse:
    require_apikey(request)
    scope = request.query.get("scope", "global") or "global"
    if scope not in {"global", "local", "others"}:
        raise AuthError(400, "validation_failed", f'Unsupported logout scope "{scope[:50]}"')
    async with request.app[POOL].connection() as conn, conn.transaction():
        claims, user = await _authenticate(request, conn)
        session_id = claims.get("session_id")
        await sessions.revoke_sessions(conn, user.id, str(session_id) if session_id else None, scope)
    return web.Response(status=204)


@_auth_errors
async def auth_settings(request: web.Request) -> web.StreamResponse:
    require_apikey(request)
    allow = request.app[SETTINGS].allow_signup
    return _json(
        {
            "external": {"email": True, "phone": False, "anonymous_users": False},
            "disable_signup": not allow,
            "mailer_autoconfirm": True,
            "phone_autoconfirm": False,
            "sms_provider": "",
            "saml_enabled": False,
        }
    )


@_auth_errors
async def health(request: web.Request) -> web.StreamResponse:
    require_apikey(request)
    try:
        version = metadata.version("meshlogs")
    except metadata.PackageNotFoundError:
        version = "dev"
    return _json(
        {
            "version": f"meshlogs-{version}",
            "name": "GoTrue",
            "description": "meshlogs' subset of the Supabase Auth API",
        }
    )


@_auth_errors
async def not_found(request: web.Request) -> web.StreamResponse:
    require_apikey(request)
    raise AuthError(404, "not_found", "Not Found")


def _method_not_allowed(allowed: str) -> Handler:
    @_auth_errors
    async def handler(request: web.Request) -> web.StreamResponse:
        require_apikey(request)
        raise AuthError(405, "method_not_allowed", f"Method {request.method} not allowed; use {allowed}")

    return handler


def add_routes(app: web.Application) -> None:
    """Mount ``/auth/v1`` on ``app`` (before the console's catch-all)."""
    settings = app[SETTINGS]
    n = settings.auth_token_rate_limit
    app[_LIMITS] = _Limits(
        per_email=RateLimiter(n, RATE_PERIOD),
        per_ip=RateLimiter(5 * n, RATE_PERIOD),
        refresh=RateLimiter(5 * n, RATE_PERIOD),
        hashing=asyncio.Semaphore(2),
    )
    routes = [
        ("POST", "/auth/v1/signup", signup),
        ("POST", "/auth/v1/token", token),
        ("GET", "/auth/v1/user", get_user),
        ("POST", "/auth/v1/logout", logout),
        ("GET", "/auth/v1/settings", auth_settings),
        ("GET", "/auth/v1/health", health),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
        app.router.add_route("*", path, _method_not_allowed(method))
    app.router.add_route("*", "/auth/v1/{tail:.*}", not_found)
