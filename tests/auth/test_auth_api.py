"""/auth/v1 over HTTP against a real server: flows, GoTrue's error shapes, bad input, rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from meshlogs.auth.tokens import mint_access_token, verify_token
from meshlogs.store.users import create_user
from tests.factories import World
from tests.rest.conftest import Api
from tests.support.server import RunningServer, running_server

V2024 = {"X-Supabase-Api-Version": "2024-01-01"}
PASSWORD = "a fine password"


async def login(api: Api, email: str, password: str = PASSWORD, **kw: Any) -> tuple[int, Any, Any]:
    return await api.post(
        "/auth/v1/token?grant_type=password", json={"email": email, "password": password}, headers=V2024, **kw
    )


async def refresh(api: Api, token: str) -> tuple[int, Any, Any]:
    return await api.post(
        "/auth/v1/token?grant_type=refresh_token", json={"refresh_token": token}, headers=V2024
    )


@pytest.fixture
def user(db: psycopg.Connection[Any]) -> str:
    return create_user(db, "Someone@Example.com", PASSWORD).id


async def test_signup_returns_a_session(api: Api, server: RunningServer, db: psycopg.Connection[Any]) -> None:
    status, headers, body = await api.post(
        "/auth/v1/signup",
        json={
            "email": "  New@Example.COM ",
            "password": PASSWORD,
            "data": {"team": "ops"},
            "gotrue_meta_security": {},
            "code_challenge": None,
            "code_challenge_method": None,
        },
        headers=V2024,
    )
    assert status == 200, body
    assert set(body) == {"access_token", "token_type", "expires_in", "expires_at", "refresh_token", "user"}
    assert body["token_type"] == "bearer" and body["expires_in"] == server.settings.jwt_expiry
    claims = verify_token(server.secret, body["access_token"])
    assert claims["sub"] == body["user"]["id"] and claims["role"] == "authenticated"
    assert claims["aud"] == "authenticated" and claims["email"] == "new@example.com"
    assert claims["exp"] == body["expires_at"]
    assert body["user"]["email"] == "new@example.com" and body["user"]["user_metadata"] == {"team": "ops"}
    row = db.execute("select encrypted_password from auth.users where email = 'new@example.com'").fetchone()
    assert row is not None and row[0].startswith("$argon2id$")

    status, _, body = await api.post(
        "/auth/v1/signup", json={"email": "new@example.com", "password": PASSWORD}, headers=V2024
    )
    assert (status, body) == (422, {"code": "user_already_exists", "message": "User already registered"})


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"email": "a@example.com", "password": "12345"}, 422, "weak_password"),
        ({"email": "a@example.com", "password": "x" * 73}, 400, "validation_failed"),
        ({"email": "a@example.com"}, 400, "validation_failed"),
        ({"email": "not-an-email", "password": PASSWORD}, 400, "validation_failed"),
        ({"email": "a" * 250 + "@example.com", "password": PASSWORD}, 400, "validation_failed"),
        ({"email": "a@example.com", "phone": "+15550100", "password": PASSWORD}, 400, "validation_failed"),
        ({"phone": "+15550100", "password": PASSWORD}, 400, "phone_provider_disabled"),
        ({"data": {}}, 422, "anonymous_provider_disabled"),
        ({"email": "a@example.com", "password": PASSWORD, "data": [1]}, 400, "validation_failed"),
        (
            {"email": "a@example.com", "password": PASSWORD, "data": {"x": "y" * 20000}},
            400,
            "validation_failed",
        ),
        ({"email": ["a@example.com"], "password": PASSWORD}, 400, "bad_json"),
        ({"email": "a\u0000@example.com", "password": PASSWORD}, 400, "bad_json"),
    ],
)
async def test_signup_bad_input(
    api: Api, db: psycopg.Connection[Any], payload: dict[str, Any], status: int, code: str
) -> None:
    got, headers, body = await api.post("/auth/v1/signup", json=payload, headers=V2024)
    assert (got, body["code"]) == (status, code), body
    assert headers["x-sb-error-code"] == code
    if code == "weak_password":
        assert body["weak_password"] == {"reasons": ["length"]}
    assert db.execute("select count(*) from auth.users where email like 'a%%example.com'").fetchone() == (0,)


async def test_signup_disabled(db_url: str, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with running_server(db_url, tmp_path, allow_signup=False) as srv:
        api = Api(http, srv)
        status, _, body = await api.post(
            "/auth/v1/signup", json={"email": "x@example.com", "password": PASSWORD}, headers=V2024
        )
        assert (status, body) == (
            422,
            {"code": "signup_disabled", "message": "Signups not allowed for this instance"},
        )
        status, _, body = await api.get("/auth/v1/settings")
        assert status == 200 and body["disable_signup"] is True and body["external"]["email"] is True


async def test_password_login(
    api: Api, server: RunningServer, user: str, db: psycopg.Connection[Any]
) -> None:
    status, _, body = await login(api, "someone@example.com")
    assert status == 200 and body["user"]["id"] == user and body["user"]["last_sign_in_at"]
    for email, password in (("someone@example.com", "wrong password"), ("nobody@example.com", PASSWORD)):
        status, headers, err = await login(api, email, password)
        assert (status, err) == (400, {"code": "invalid_credentials", "message": "Invalid login credentials"})
        assert headers["X-Supabase-Api-Version"] == "2024-01-01"
    # legacy error format for clients that do not send the API version
    status, _, err = await api.post(
        "/auth/v1/token?grant_type=password", json={"email": "someone@example.com", "password": "nope"}
    )
    assert (status, err) == (
        400,
        {"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"},
    )
    db.execute("update auth.users set email_confirmed_at = null where id = %s", (user,))
    status, _, err = await login(api, "someone@example.com")
    assert (status, err["code"]) == (400, "email_not_confirmed")


@pytest.mark.parametrize(
    ("query", "payload", "status", "code"),
    [
        ("grant_type=password", {"password": PASSWORD}, 400, "validation_failed"),
        ("grant_type=password", {"phone": "+1555", "password": PASSWORD}, 422, "phone_provider_disabled"),
        ("grant_type=password", {"email": 5, "password": PASSWORD}, 400, "bad_json"),
        ("grant_type=pkce", {}, 400, "invalid_credentials"),
        ("", {"email": "someone@example.com", "password": PASSWORD}, 400, "invalid_credentials"),
        ("grant_type=refresh_token", {}, 400, "validation_failed"),
        ("grant_type=refresh_token", {"refresh_token": "short"}, 400, "validation_failed"),
        ("grant_type=refresh_token", {"refresh_token": "x" * 43}, 400, "refresh_token_not_found"),
        ("grant_type=refresh_token", {"refresh_token": "' or 1=1 --" * 5}, 400, "refresh_token_not_found"),
    ],
)
async def test_token_bad_input(
    api: Api, user: str, query: str, payload: dict[str, Any], status: int, code: str
) -> None:
    got, _, body = await api.post(f"/auth/v1/token?{query}", json=payload, headers=V2024)
    assert (got, body["code"]) == (status, code), body


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"\xff\xfe\x00garbage", "application/json", 400, "bad_json"),
        (b"{not json", "application/json", 400, "bad_json"),
        (b"email=someone%40example.com&password=x", "application/x-www-form-urlencoded", 400, "bad_json"),
        (b'["email"]', "application/json", 400, "bad_json"),
        (b'{"email": "' + b"x" * 70000 + b'"}', "application/json", 413, "request_entity_too_large"),
    ],
)
async def test_bad_bodies(
    api: Api, user: str, data: bytes, content_type: str, status: int, code: str
) -> None:
    for path in ("/auth/v1/token?grant_type=password", "/auth/v1/signup"):
        got, _, body = await api.post(path, data=data, headers={**V2024, "Content-Type": content_type})
        assert (got, body["code"]) == (status, code), (path, body)


async def test_refresh_rotation_and_reuse(api: Api, server: RunningServer, user: str) -> None:
    _, _, first = await login(api, "someone@example.com")
    status, _, second = await refresh(api, first["refresh_token"])
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    session = verify_token(server.secret, first["access_token"])["session_id"]
    assert verify_token(server.secret, second["access_token"])["session_id"] == session
    # a retry of the same refresh within the reuse interval gets the very same successor
    status, _, again = await refresh(api, first["refresh_token"])
    assert (status, again["refresh_token"]) == (200, second["refresh_token"])
    status, _, third = await refresh(api, second["refresh_token"])
    assert status == 200
    # the first token is now two rotations old: reuse is theft, the whole session is revoked
    status, _, body = await refresh(api, first["refresh_token"])
    assert (status, body["code"]) == (400, "refresh_token_already_used")
    assert body["message"] == "Invalid Refresh Token: Already Used"
    status, _, body = await refresh(api, third["refresh_token"])
    assert (status, body["code"]) == (400, "refresh_token_already_used")
    status, _, body = await api.get("/auth/v1/user", token=third["access_token"], headers=V2024)
    assert (status, body["code"]) == (403, "session_not_found")
    # other sessions of the same user are unaffected
    _, _, other = await login(api, "someone@example.com")
    status, _, _ = await refresh(api, other["refresh_token"])
    assert status == 200


@pytest.fixture
async def strict_server(db_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(
        db_url, tmp_path, refresh_token_reuse_interval=0, auth_token_rate_limit=4
    ) as srv:
        yield srv


async def test_reuse_outside_interval_revokes(
    strict_server: RunningServer, http: aiohttp.ClientSession, user: str
) -> None:
    api = Api(http, strict_server)
    _, _, first = await login(api, "someone@example.com")
    status, _, second = await refresh(api, first["refresh_token"])
    assert status == 200
    status, _, body = await refresh(api, first["refresh_token"])
    assert (status, body["code"]) == (400, "refresh_token_already_used")
    status, _, body = await refresh(api, second["refresh_token"])
    assert (status, body["code"]) == (400, "refresh_token_already_used")


async def test_rate_limits(strict_server: RunningServer, http: aiohttp.ClientSession, user: str) -> None:
    api = Api(http, strict_server)
    results = [(await login(api, "someone@example.com", "wrong"))[0] for _ in range(5)]
    assert results == [400, 400, 400, 400, 429]
    status, headers, body = await login(api, "someone@example.com")
    assert (status, body) == (
        429,
        {"code": "over_request_rate_limit", "message": "Request rate limit reached"},
    )
    # another email from the same IP has its own budget, until the IP's (5x) budget runs out
    results = [(await login(api, f"x{i}@example.com", "wrong"))[0] for i in range(16)]
    assert results.count(429) >= 1 and results[0] == 400
    # refresh grants are limited per IP
    results = [(await refresh(api, "y" * 43))[0] for _ in range(21)]
    assert results[:20] == [400] * 20 and results[20] == 429


async def test_get_user_and_token_checks(
    api: Api, server: RunningServer, world: World, user: str, db: psycopg.Connection[Any]
) -> None:
    _, _, session = await login(api, "someone@example.com")
    status, _, body = await api.get("/auth/v1/user", token=session["access_token"], headers=V2024)
    assert status == 200 and body["id"] == user and body["email"] == "someone@example.com"
    # a token minted by `meshlogs token` (no server-side session) is accepted
    status, _, body = await api.get("/auth/v1/user", token=server.user_token(world.viewer), headers=V2024)
    assert status == 200 and body["email"] == "viewer@example.com"
    cases: list[tuple[str | None, dict[str, str], int, str]] = [
        (None, {}, 401, "no_authorization"),
        (None, {"Authorization": "Basic abc"}, 401, "no_authorization"),
        ("garbage", {}, 403, "bad_jwt"),
        (server.anon_key, {}, 403, "bad_jwt"),
        (server.service_key, {}, 403, "bad_jwt"),
        (mint_access_token(server.secret, user_id=user, email="e", ttl=1, now=0), {}, 403, "bad_jwt"),
        (mint_access_token("z" * 40, user_id=user, email="e", ttl=60), {}, 403, "bad_jwt"),
        (mint_access_token(server.secret, user_id="not-a-uuid", email="e", ttl=60), {}, 400, "bad_jwt"),
        (server.user_token("00000000-0000-0000-0000-000000000000"), {}, 403, "user_not_found"),
        (
            mint_access_token(server.secret, user_id=user, email="e", ttl=60, session_id="x"),
            {},
            403,
            "bad_jwt",
        ),
    ]
    for token, headers, status, code in cases:
        got, _, body = await api.get("/auth/v1/user", token=token, headers={**V2024, **headers})
        assert (got, body["code"]) == (status, code), (token, body)


@pytest.mark.parametrize("scope", ["global", "local", "others"])
async def test_logout_scopes(api: Api, user: str, scope: str) -> None:
    _, _, a = await login(api, "someone@example.com")
    _, _, b = await login(api, "someone@example.com")
    status, _, body = await api.post(f"/auth/v1/logout?scope={scope}", token=a["access_token"], headers=V2024)
    assert (status, body) == (204, None)
    a_status = (await refresh(api, a["refresh_token"]))[0]
    b_status = (await refresh(api, b["refresh_token"]))[0]
    assert (a_status == 200) == (scope == "others")
    assert (b_status == 200) == (scope == "local")
    if scope != "others":
        status, _, body = await refresh(api, a["refresh_token"])
        assert (status, body["code"]) == (400, "refresh_token_not_found")


async def test_logout_bad_input(api: Api, server: RunningServer, user: str) -> None:
    _, _, a = await login(api, "someone@example.com")
    status, _, body = await api.post(
        "/auth/v1/logout?scope=everywhere", token=a["access_token"], headers=V2024
    )
    assert (status, body["code"]) == (400, "validation_failed")
    status, _, body = await api.post("/auth/v1/logout", headers=V2024)
    assert (status, body["code"]) == (401, "no_authorization")
    status, _, body = await api.post("/auth/v1/logout", token=server.anon_key, headers=V2024)
    assert (status, body["code"]) == (403, "bad_jwt")


async def test_api_key_methods_and_misc(api: Api, user: str) -> None:
    status, _, body = await api.post(
        "/auth/v1/token?grant_type=password",
        key=None,
        json={"email": "someone@example.com", "password": PASSWORD},
    )
    assert status == 401 and body["message"] == "No API key found in request"
    status, _, body = await api.get("/auth/v1/user", key="forged.key.value")
    assert status == 401 and body["message"] == "Invalid API key"
    status, _, body = await api.get("/auth/v1/token", headers=V2024)
    assert (status, body["code"]) == (405, "method_not_allowed")
    status, _, body = await api.get("/auth/v1/nothing/here", headers=V2024)
    assert (status, body["code"]) == (404, "not_found")
    status, _, body = await api.get("/auth/v1/health")
    assert status == 200 and body["name"] == "GoTrue"
    status, _, body = await api.get("/auth/v1/settings")
    assert status == 200 and body["disable_signup"] is False and body["mailer_autoconfirm"] is True


async def test_chunked_body_is_bounded(api: Api, user: str) -> None:
    async def body() -> Any:
        for _ in range(20):
            yield b" " * 8192  # no Content-Length: the server must count as it reads

    status, _, reply = await api.post(
        "/auth/v1/token?grant_type=password",
        data=body(),
        headers={**V2024, "Content-Type": "application/json"},
    )
    assert (status, reply["code"]) == (413, "request_entity_too_large")
