"""The HTTP half of ``meshlogs tail``: Supabase Auth login/refresh and PostgREST reads, over aiohttp.

Only the public contracts are used (``POST /auth/v1/token?grant_type=password|refresh_token``,
``GET /rest/v1/workflow_runs`` and ``GET /rest/v1/run_logs`` with PostgREST filters), so the same code
talks to ``meshlogs serve`` and to a hosted Supabase project. Pages are read until an *empty* page:
servers cap page sizes (PostgREST's ``db-max-rows``), so a short page does not mean the end.

Errors are split by what the caller should do: :class:`AuthFailed` and :class:`TailError` end the
command with exit code 2; :class:`Unavailable` (connection refused, timeouts, 5xx) is retried while
following a run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from meshlogs.errors import MeshlogsError

__all__ = ["LOG_COLUMNS", "AuthFailed", "LoginSession", "SupabaseApi", "TailError", "Unavailable"]

#: Columns tail reads (explicit rather than ``*``: stable output whatever else a table grows).
LOG_COLUMNS: Final = "run_id,seq,ts,level,step,message,attrs"
PAGE_SIZE: Final = 1000


class TailError(MeshlogsError):
    """``meshlogs tail`` cannot go on: bad usage, no access, unknown run. Exit code 2."""

    code = "TailError"


class AuthFailed(TailError):
    """Login failed, or the server refused the API key or the access token."""

    code = "TailAuthFailed"


class Unavailable(MeshlogsError):
    """The server could not be reached or answered 5xx; worth retrying."""

    code = "TailUnavailable"


@dataclass(frozen=True)
class LoginSession:
    """Tokens from a password login or a refresh."""

    access_token: str
    refresh_token: str | None
    expires_at: float  # unix time


def _message(body: Any, fallback: str) -> str:
    if isinstance(body, dict):
        for key in ("msg", "message", "error_description", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return fallback


class SupabaseApi:
    """Auth and REST calls against one server.

    Args:
        url: the server's base URL (``http://127.0.0.1:54321`` or ``https://<ref>.supabase.co``).
        anon_key: the project's anon (or service_role) API key.
        session: the aiohttp session to use (the caller owns it).
        timeout: seconds for one request.
    """

    def __init__(self, url: str, anon_key: str, session: aiohttp.ClientSession, *, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.anon_key = anon_key
        self.access_token = anon_key
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def _headers(self) -> dict[str, str]:
        return {
            "apikey": self.anon_key,
            "Authorization": f"Bearer {self.access_token}",
            "Accept": "application/json",
            "X-Client-Info": "meshlogs-tail",
        }

    async def _request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> tuple[int, Any]:
        try:
            async with self._session.request(
                method,
                self.url + path,
                params=params,
                data=orjson.dumps(json) if json is not None else None,
                headers={**self._headers(), **({"Content-Type": "application/json"} if json else {})},
                timeout=self._timeout,
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from exc
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")[:200]
        if status >= 500:
            raise Unavailable(f"{self.url} answered {status}: {_message(body, 'server error')}")
        return status, body

    def _check_rest(self, status: int, body: Any) -> None:
        if status < 400:
            return
        if status == 401:
            code = body.get("code") if isinstance(body, dict) else None
            if isinstance(code, str) and code.startswith("PGRST"):
                raise AuthFailed(f"the server rejected the access token: {_message(body, 'invalid JWT')}")
            raise AuthFailed(
                f"the server rejected the API key ({_message(body, 'invalid API key')}); "
                "pass the project's anon key with --anon-key"
            )
        if status == 404:
            raise TailError(
                f"{self.url} has no run_logs table ({_message(body, 'not found')}); "
                "are the meshlogs migrations applied there?"
            )
        raise TailError(f"{self.url} answered {status}: {_message(body, 'request failed')}")

    # -- auth ---------------------------------------------------------------------------------------

    async def login(self, email: str, password: str) -> LoginSession:
        """Password login (Supabase Auth); the session's token is used from now on.

        Raises:
            AuthFailed: wrong email or password, unconfirmed email, rate limited, bad API key.
            Unavailable: the server cannot be reached.
        """
        status, body = await self._request(
            "POST",
            "/auth/v1/token",
            params={"grant_type": "password"},
            json={"email": email, "password": password},
        )
        if status == 429:
            raise AuthFailed("too many login attempts; wait a few minutes and try again")
        if status == 401 and isinstance(body, dict) and "error_code" not in body:
            self._check_rest(status, body)
        if status >= 400:
            raise AuthFailed(f"login failed for {email}: {_message(body, f'HTTP {status}')}")
        return self._adopt(body)

    async def refresh(self, refresh_token: str) -> LoginSession:
        """Exchange a refresh token for a new session (the token rotates).

        Raises:
            AuthFailed: the session was revoked or the refresh token is no longer valid.
            Unavailable: the server cannot be reached.
        """
        status, body = await self._request(
            "POST",
            "/auth/v1/token",
            params={"grant_type": "refresh_token"},
            json={"refresh_token": refresh_token},
        )
        if status >= 400:
            raise AuthFailed(f"the login session ended ({_message(body, f'HTTP {status}')}); log in again")
        return self._adopt(body)

    def _adopt(self, body: Any) -> LoginSession:
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise AuthFailed("the auth server answered without an access token")
        expires_in = body.get("expires_in")
        expires_at = body.get("expires_at")
        if isinstance(expires_at, int | float):
            at = float(expires_at)
        else:
            at = time.time() + (float(expires_in) if isinstance(expires_in, int | float) else 3600.0)
        self.access_token = body["access_token"]
        refresh = body.get("refresh_token")
        return LoginSession(body["access_token"], refresh if isinstance(refresh, str) else None, at)

    # -- rest ---------------------------------------------------------------------------------------

    async def run_status(self, run_id: str) -> str | None:
        """The run's status, or None when the run does not exist or RLS hides it from us."""
        status, body = await self._request(
            "GET", "/rest/v1/workflow_runs", params={"select": "id,status", "id": f"eq.{run_id}"}
        )
        self._check_rest(status, body)
        if not isinstance(body, list) or not body:
            return None
        value = body[0].get("status") if isinstance(body[0], dict) else None
        return str(value) if value is not None else None

    async def last_seq(self, run_id: str) -> int:
        """The run's highest stored seq (0 when it has no lines)."""
        status, body = await self._request(
            "GET",
            "/rest/v1/run_logs",
            params={"select": "seq", "run_id": f"eq.{run_id}", "order": "seq.desc", "limit": "1"},
        )
        self._check_rest(status, body)
        if isinstance(body, list) and body and isinstance(body[0], dict):
            return int(body[0].get("seq") or 0)
        return 0

    async def log_page(self, run_id: str, after: int, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
        """Up to ``limit`` rows with ``seq > after``, ascending (the server may return fewer)."""
        status, body = await self._request(
            "GET",
            "/rest/v1/run_logs",
            params={
                "select": LOG_COLUMNS,
                "run_id": f"eq.{run_id}",
                "seq": f"gt.{after}",
                "order": "seq.asc",
                "limit": str(limit),
            },
        )
        self._check_rest(status, body)
        if not isinstance(body, list):
            raise Unavailable(f"{self.url} answered a run_logs read with something that is not a list")
        return [row for row in body if isinstance(row, dict)]
