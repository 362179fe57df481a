"""Pure parts of the Auth subset: GoTrue error formats, user JSON, rate limiting, token sealing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meshlogs.auth import sessions
from meshlogs.auth.gotrue import AuthError, UserRow, error_body, session_json, user_json
from meshlogs.auth.ratelimit import RateLimiter


def test_error_body_2024_format() -> None:
    err = AuthError(400, "invalid_credentials", "Invalid login credentials")
    body, headers = error_body(err, "2024-01-01")
    assert body == {"code": "invalid_credentials", "message": "Invalid login credentials"}
    assert headers == {"x-sb-error-code": "invalid_credentials", "X-Supabase-Api-Version": "2024-01-01"}
    assert error_body(err, "2025-06-30")[0]["code"] == "invalid_credentials"


@pytest.mark.parametrize("version", [None, "", "2023-12-31", "garbage", "2024-1-1"])
def test_error_body_legacy_format(version: str | None) -> None:
    err = AuthError(
        422,
        "weak_password",
        "Password should be at least 6 characters.",
        {"weak_password": {"reasons": ["length"]}},
    )
    body, headers = error_body(err, version)
    assert body == {
        "code": 422,
        "error_code": "weak_password",
        "msg": "Password should be at least 6 characters.",
        "weak_password": {"reasons": ["length"]},
    }
    assert headers == {"x-sb-error-code": "weak_password"}


def _user(**kw: object) -> UserRow:
    t = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    base = dict(
        id="0b2d5f4e-8a2b-4c55-9f0e-3f7a1d2c9b10",
        aud=None,
        role=None,
        email="a@b.co",
        encrypted_password="x",
        email_confirmed_at=t,
        last_sign_in_at=None,
        app_metadata={},
        user_metadata={"name": "A"},
        created_at=t,
        updated_at=t,
    )
    base.update(kw)
    return UserRow(**base)  # type: ignore[arg-type]


def test_user_json_shape() -> None:
    body = user_json(_user())
    assert body["aud"] == "authenticated" and body["role"] == "authenticated"
    assert body["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert body["user_metadata"] == {"name": "A"}
    assert body["email_confirmed_at"] == "2026-01-02T03:04:05.678901Z"
    assert "last_sign_in_at" not in body and "encrypted_password" not in str(body)
    identity = body["identities"][0]
    assert identity["provider"] == "email" and identity["user_id"] == body["id"]
    assert identity["identity_data"]["email_verified"] is True


def test_session_json_shape() -> None:
    s = session_json(_user(), "access", "refresh", 3600, 1_000_000)
    assert {k: s[k] for k in ("access_token", "token_type", "expires_in", "expires_at", "refresh_token")} == {
        "access_token": "access",
        "token_type": "bearer",
        "expires_in": 3600,
        "expires_at": 1_003_600,
        "refresh_token": "refresh",
    }


def test_rate_limiter_refills() -> None:
    rl = RateLimiter(3, 30.0)
    assert [rl.allow("k", 0.0) for _ in range(4)] == [True, True, True, False]
    assert rl.allow("other", 0.0)
    assert not rl.allow("k", 5.0)  # 5 s refill half a token
    assert rl.allow("k", 10.0)  # one token after 10 s
    assert not rl.allow("k", 10.0)


def test_rate_limiter_memory_is_bounded() -> None:
    rl = RateLimiter(1, 60.0, max_keys=100)
    for i in range(10_000):
        rl.allow(f"key-{i}", 0.0)
    assert len(rl) == 100
    assert rl.allow("key-0", 0.0)  # evicted long ago, so it starts full again (documented policy)


def test_refresh_token_sealing_round_trip() -> None:
    parent, _ = sessions.new_refresh_token()
    child, child_raw = sessions.new_refresh_token()
    sealed = sessions._seal(parent, child_raw)
    assert sealed != child_raw and len(sealed) == 32
    assert sessions._unseal(parent, sealed) == child
    other, _ = sessions.new_refresh_token()
    assert sessions._unseal(other, sealed) != child
    assert len(child) == 43 and sessions.hash_token(child) != sessions.hash_token(parent)
