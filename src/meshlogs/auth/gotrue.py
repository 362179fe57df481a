"""Supabase Auth (GoTrue) response shapes: errors, users and sessions, as supabase-js parses them.

Errors (``internal/api/errors.go`` in supabase/auth): a request that carries
``X-Supabase-Api-Version: 2024-01-01`` or later (supabase-js and supabase-py always send it) gets
``{"code": "<error_code>", "message": "..."}`` and the header echoed back, which is what makes the
clients read ``code`` as the error code; older callers get the legacy
``{"code": <status>, "error_code": "...", "msg": "..."}``. Both carry ``x-sb-error-code``.

Users and sessions follow ``models.User`` and ``tokens.AccessTokenResponse``: ``access_token``,
``token_type: "bearer"``, ``expires_in``, ``expires_at``, ``refresh_token``, ``user``. meshlogs' users
have one identity (email); its id is derived from the user id, since there is no identities table.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "API_VERSION",
    "API_VERSION_HEADER",
    "AuthError",
    "UserRow",
    "error_body",
    "session_json",
    "user_json",
]

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION = "2024-01-01"
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_IDENTITY_NAMESPACE = uuid.UUID("7d1c5c53-1c6e-4a0e-9e55-6d657368686c")


@dataclass
class AuthError(Exception):
    """An Auth API error: HTTP status, GoTrue ``error_code``, message, optional extra body fields."""

    status: int
    error_code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.error_code}: {self.message}"


def _uses_2024_format(request_version: str | None) -> bool:
    if not request_version or not _DATE.match(request_version.strip()):
        return False
    return request_version.strip() >= API_VERSION


def error_body(err: AuthError, request_version: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON body and headers for ``err``, in the format the caller's API version expects."""
    headers = {"x-sb-error-code": err.error_code}
    if _uses_2024_format(request_version):
        headers[API_VERSION_HEADER] = API_VERSION
        return {"code": err.error_code, "message": err.message, **err.extra}, headers
    return {"code": err.status, "error_code": err.error_code, "msg": err.message, **err.extra}, headers


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class UserRow:
    """A row of ``auth.users`` with the columns the Auth API returns."""

    id: str
    aud: str | None
    role: str | None
    email: str | None
    encrypted_password: str | None
    email_confirmed_at: datetime | None
    last_sign_in_at: datetime | None
    app_metadata: dict[str, Any] | None
    user_metadata: dict[str, Any] | None
    created_at: datetime | None
    updated_at: datetime | None


def user_json(user: UserRow) -> dict[str, Any]:
    """The user object of GoTrue's responses (``omitempty`` timestamps left out when null)."""
    app_metadata = dict(user.app_metadata or {})
    app_metadata.setdefault("provider", "email")
    app_metadata.setdefault("providers", ["email"])
    created = _ts(user.created_at)
    body: dict[str, Any] = {
        "id": user.id,
        "aud": user.aud or "authenticated",
        "role": user.role or "authenticated",
        "email": user.email or "",
        "phone": "",
        "app_metadata": app_metadata,
        "user_metadata": dict(user.user_metadata or {}),
        "identities": [
            {
                "identity_id": str(uuid.uuid5(_IDENTITY_NAMESPACE, user.id)),
                "id": user.id,
                "user_id": user.id,
                "identity_data": {
                    "email": user.email or "",
                    "email_verified": user.email_confirmed_at is not None,
                    "phone_verified": False,
                    "sub": user.id,
                },
                "provider": "email",
                "last_sign_in_at": _ts(user.last_sign_in_at) or created,
                "created_at": created,
                "updated_at": _ts(user.updated_at) or created,
                "email": user.email or "",
            }
        ],
        "created_at": created,
        "updated_at": _ts(user.updated_at) or created,
        "is_anonymous": False,
    }
    for key, value in (
        ("email_confirmed_at", user.email_confirmed_at),
        ("confirmed_at", user.email_confirmed_at),
        ("last_sign_in_at", user.last_sign_in_at),
    ):
        if value is not None:
            body[key] = _ts(value)
    return body


def session_json(
    user: UserRow, access_token: str, refresh_token: str, expires_in: int, issued_at: int
) -> dict[str, Any]:
    """GoTrue's ``AccessTokenResponse``."""
    return {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "expires_at": issued_at + expires_in,
        "refresh_token": refresh_token,
        "user": user_json(user),
    }
