"""JWT keys and tokens: what verifies, and every way a forged or broken token is refused."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshlogs.auth.tokens import load_jwt_secret, mint_access_token, mint_api_key, verify_token
from meshlogs.config import Settings
from meshlogs.errors import TokenError
from meshlogs.realtime.token_errors import connect_error, join_error, refresh_error

SECRET = "s" * 40
OTHER = "o" * 40


def test_api_keys_are_stable_and_verify() -> None:
    assert mint_api_key(SECRET, "anon") == mint_api_key(SECRET, "anon")
    assert verify_token(SECRET, mint_api_key(SECRET, "anon"))["role"] == "anon"
    assert verify_token(SECRET, mint_api_key(SECRET, "service_role"))["role"] == "service_role"
    with pytest.raises(ValueError):
        mint_api_key(SECRET, "authenticated")


def test_access_token_claims() -> None:
    token = mint_access_token(SECRET, user_id="u1", email="a@b.c", ttl=60)
    claims = verify_token(SECRET, token)
    assert (claims["sub"], claims["role"], claims["aud"], claims["email"]) == (
        "u1",
        "authenticated",
        "authenticated",
        "a@b.c",
    )
    assert claims["exp"] - claims["iat"] == 60


def _forge(claims: dict[str, object], header: dict[str, object]) -> str:
    def b64(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(claims)}."


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda: mint_access_token(OTHER, user_id="u", email=None, ttl=60), "signature does not match"),
        (lambda: mint_access_token(SECRET, user_id="u", email=None, ttl=1, now=time.time() - 100), "expired"),
        (
            lambda: _forge({"role": "service_role", "exp": 2**40}, {"alg": "none", "typ": "JWT"}),
            "invalid JWT",
        ),
        (lambda: jwt.encode({"role": "postgres", "exp": 2**40}, SECRET, algorithm="HS256"), "role claim"),
        (lambda: jwt.encode({"role": "anon"}, SECRET, algorithm="HS256"), "missing claim 'exp'"),
        (
            lambda: jwt.encode(
                {"role": "authenticated", "exp": 2**40, "aud": "authenticated"}, SECRET, algorithm="HS256"
            ),
            "need a sub",
        ),
        (
            lambda: jwt.encode(
                {"role": "authenticated", "sub": "u", "exp": 2**40, "aud": "other"}, SECRET, algorithm="HS256"
            ),
            "audience",
        ),
        (lambda: jwt.encode({"role": "anon", "exp": 2**40}, SECRET * 2, algorithm="HS512"), "only HS256"),
        (lambda: "not-a-jwt", "invalid JWT"),
        (lambda: "", "empty or oversized"),
        (lambda: "a." * 5000, "empty or oversized"),
    ],
)
def test_bad_tokens_are_refused(token: object, message: str) -> None:
    assert callable(token)
    with pytest.raises(TokenError, match=message):
        verify_token(SECRET, token())


def test_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings.load({}, data_dir=str(tmp_path))
    first = load_jwt_secret(settings)
    assert len(first) >= 32
    assert load_jwt_secret(settings) == first
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o777 == 0o600
    assert load_jwt_secret(Settings.load({}, data_dir=str(tmp_path), jwt_secret=SECRET)) == SECRET


@pytest.mark.parametrize(
    ("token", "reason", "connect", "join"),
    [
        (
            lambda: mint_access_token(OTHER, user_id="u", email=None, ttl=60),
            "signature",
            "Failed to validate JWT signature",
            "JwtSignatureError: Failed to validate JWT signature",
        ),
        (
            lambda: mint_access_token(SECRET, user_id="u", email=None, ttl=1, now=1_000.0),
            "expired",
            "Token has expired",
            "InvalidJWTToken: Token has expired 499 seconds ago",
        ),
        (
            lambda: jwt.encode({"exp": 2**40}, SECRET, algorithm="HS256"),
            "missing_claims",
            "Fields `role` and `exp` are required in JWT",
            "InvalidJWTToken: Fields `role` and `exp` are required in JWT",
        ),
        (
            lambda: jwt.encode({"role": "anon"}, SECRET, algorithm="HS256"),
            "missing_claims",
            "Fields `role` and `exp` are required in JWT",
            "InvalidJWTToken: Fields `role` and `exp` are required in JWT",
        ),
        (
            lambda: _forge({"role": "service_role", "exp": 2**40}, {"alg": "none", "typ": "JWT"}),
            "malformed",
            "The token provided is not a valid JWT",
            "MalformedJWT: The token provided is not a valid JWT",
        ),
        (
            lambda: "not-a-jwt",
            "malformed",
            "The token provided is not a valid JWT",
            "MalformedJWT: The token provided is not a valid JWT",
        ),
    ],
)
def test_realtime_words_each_refusal_as_supabase_does(
    token: object, reason: str, connect: str, join: str
) -> None:
    assert callable(token)
    with pytest.raises(TokenError) as info:
        verify_token(SECRET, token())
    assert info.value.reason == reason
    assert connect_error(info.value) == connect
    assert join_error(info.value, now=1_500.0) == join
    assert refresh_error(info.value, now=1_500.0) == join.split(": ", 1)[1]


@given(
    st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda h, c, sig: f"{h}.{c}.{sig}",
            st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=60),
            st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=80),
            st.text(max_size=40),
        ),
        st.dictionaries(
            st.sampled_from(["role", "exp", "sub", "aud", "iat"]), st.from_type(object).map(str)
        ).map(lambda claims: _forge(claims, {"alg": "HS256", "typ": "JWT"})),
    )
)
def test_any_token_is_claims_or_a_token_error(token: str) -> None:
    """Fuzzing verify_token: any string either verifies or raises TokenError with a reason."""
    try:
        claims = verify_token(SECRET, token)
    except TokenError as exc:
        assert exc.reason in {"malformed", "signature", "expired", "missing_claims", "invalid"}
        assert connect_error(exc) and join_error(exc)
    else:
        assert claims["role"] in {"anon", "authenticated", "service_role"}
