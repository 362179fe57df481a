"""Bad input to /rest/v1: each gets a clear 4xx in PostgREST's shape, and nothing leaks or changes."""

from __future__ import annotations

import base64
import json
import time
import warnings
from typing import Any

import jwt
import psycopg
import pytest

from meshlogs.auth.tokens import mint_access_token
from tests.factories import World
from tests.rest.conftest import Api
from tests.support.server import RunningServer

PGRST_KEYS = {"code", "message", "details", "hint"}


def assert_pgrst(status: int, body: Any, want_status: int, want_code: str) -> None:
    assert status == want_status, body
    assert isinstance(body, dict) and set(body) == PGRST_KEYS, body
    assert body["code"] == want_code, body


def table_intact(db: psycopg.Connection[Any], world: World) -> None:
    counts = db.execute("select run_id::text, count(*) from run_logs group by 1").fetchall()
    assert dict(counts) == {world.run_a: 2, world.run_b: 1}
    assert db.execute("select count(*) from projects").fetchone() == (2,)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/rest/v1/no_such_table", 404, "PGRST205"),
        ("/rest/v1/run_logs;drop%20table%20run_logs", 404, "PGRST205"),
        ("/rest/v1/pg_authid", 404, "PGRST205"),
        ("/rest/v1/run_log_batches", 404, "PGRST205"),  # schema meshlogs is not exposed
        ("/rest/v1/run_logs?select=nope", 400, "42703"),
        ("/rest/v1/run_logs?nope=eq.1", 400, "42703"),
        ("/rest/v1/run_logs?order=nope.desc", 400, "42703"),
        ("/rest/v1/run_logs?or=(nope.eq.1)", 400, "42703"),
        ("/rest/v1/run_logs?seq=noop.1", 400, "PGRST100"),
        ("/rest/v1/run_logs?seq=1", 400, "PGRST100"),
        ("/rest/v1/run_logs?seq=eq", 400, "PGRST100"),
        ("/rest/v1/run_logs?seq=in.1,2", 400, "PGRST100"),
        ("/rest/v1/run_logs?seq=is.maybe", 400, "PGRST100"),
        ("/rest/v1/run_logs?seq=cs.{1}", 400, "PGRST127"),
        ("/rest/v1/run_logs?or=(seq.eq.1", 400, "PGRST100"),
        ("/rest/v1/run_logs?order=seq.sideways", 400, "PGRST100"),
        ("/rest/v1/run_logs?limit=ten", 400, "PGRST100"),
        ("/rest/v1/run_logs?limit=-1", 416, "PGRST103"),
        ("/rest/v1/run_logs?offset=-1", 400, "PGRST100"),
        ("/rest/v1/run_logs?seq=gt.abc", 400, "22P02"),
        ("/rest/v1/run_logs?run_id=eq.not-a-uuid", 400, "22P02"),
        ("/rest/v1/run_logs?ts=lt.yesterday-ish", 400, "22007"),
        ("/rest/v1/run_logs?message=eq.a%00b", 400, "PGRST100"),
        ("/rest/v1/run_logs?select=seq,(select%201)", 400, "PGRST127"),
        ("/rest/v1/run_logs?select=seq;drop%20table%20run_logs", 400, "PGRST100"),
        ("/rest/v1/run_logs?select=pg_sleep(5)", 400, "PGRST127"),
        ("/rest/v1/run_logs?select=seq::regclass", 400, "PGRST127"),
        ("/rest/v1/run_logs?order=seq;drop%20table%20run_logs", 400, "PGRST100"),
        ("/rest/v1/run_logs?order=seq%20desc,(select%201)", 400, "PGRST127"),
        ("/rest/v1/run_logs?%22seq%22%20%3D%201%20or%201%3D1%20--=eq.1", 400, "PGRST100"),
        ("/rest/v1/run_logs?%22seq%20or%201%3D1%22=eq.1", 400, "42703"),
        ("/rest/v1/run_logs?select=workflow_runs(*)", 400, "PGRST127"),
        ("/rest/v1/run_logs?workflow_runs.status=eq.x", 400, "PGRST127"),
        ("/rest/v1/run_logs?attrs->>k=eq.1", 400, "PGRST127"),
    ],
)
async def test_bad_queries(
    api: Api,
    world: World,
    server: RunningServer,
    db: psycopg.Connection[Any],
    path: str,
    status: int,
    code: str,
) -> None:
    got_status, _, body = await api.get(path, token=server.user_token(world.owner))
    assert_pgrst(got_status, body, status, code)
    table_intact(db, world)


async def test_unknown_table_hint(api: Api, world: World) -> None:
    status, _, body = await api.get("/rest/v1/run_log")
    assert_pgrst(status, body, 404, "PGRST205")
    assert body["message"] == "Could not find the table 'public.run_log' in the schema cache"
    assert body["hint"] == "Perhaps you meant the table 'public.run_logs'"


async def test_unknown_column_hint(api: Api, world: World) -> None:
    status, _, body = await api.get("/rest/v1/run_logs?select=sequ")
    assert_pgrst(status, body, 400, "42703")
    assert body["message"] == "column run_logs.sequ does not exist"
    assert body["hint"] == 'Perhaps you meant to reference the column "run_logs.seq".'


@pytest.mark.parametrize(
    "value",
    [
        "'; delete from run_logs; --",
        "1' or '1'='1",
        "$$; drop table run_logs; $$",
        "\\x27 or 1=1",
        'a") or true or ("',
    ],
)
async def test_injection_in_filter_values_is_just_data(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any], value: str
) -> None:
    token = server.user_token(world.outsider)
    for query in (
        {"message": f"eq.{value}"},
        {"message": f"in.({json.dumps(value)},x)"},
        {"or": f"(message.eq.{json.dumps(value)},message.ilike.*{value.replace(',', '')}*)"},
        {"step": f"like.{value}"},
    ):
        async with api.http.get(
            api.server.url + "/rest/v1/run_logs",
            params=query,
            headers=api.headers(token, server.anon_key, None),
        ) as r:
            body = await r.json()
        assert r.status in (200, 400), body
        if r.status == 200:
            assert body == [], (query, body)
        else:
            assert set(body) == PGRST_KEYS
    table_intact(db, world)


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Accept-Profile": "meshlogs"}, 406, "PGRST106"),
        ({"Accept-Profile": "public; drop table run_logs"}, 406, "PGRST106"),
        ({"Accept": "text/csv"}, 406, "PGRST107"),
        ({"Accept": "application/xml;q=1, text/html"}, 406, "PGRST107"),
        ({"Range": "9-3"}, 416, "PGRST103"),
    ],
)
async def test_bad_headers(
    api: Api,
    world: World,
    server: RunningServer,
    db: psycopg.Connection[Any],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    got, _, body = await api.get("/rest/v1/run_logs", token=server.user_token(world.owner), headers=headers)
    assert_pgrst(got, body, status, code)
    table_intact(db, world)


async def test_harmless_header_garbage_is_ignored(api: Api, world: World, server: RunningServer) -> None:
    status, headers, body = await api.get(
        "/rest/v1/run_logs?select=seq&order=seq",
        token=server.user_token(world.owner),
        headers={"Prefer": "count=exact; drop table run_logs, return=lots", "Range": "x-y; select 1"},
    )
    assert status == 200 and [r["seq"] for r in body] == [1, 2]
    assert "Preference-Applied" not in headers
    assert headers["Content-Range"] == "0-1/*"


def _forge(claims: dict[str, Any], *, secret: str, alg: str = "HS256") -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about short HS512 keys: that is the point here
        return jwt.encode(claims, secret, algorithm=alg)


def _alg_none(claims: dict[str, Any]) -> str:
    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


async def test_bad_tokens(api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any]) -> None:
    now = int(time.time())
    owner_claims = {
        "sub": world.owner,
        "role": "authenticated",
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
    }
    cases: dict[str, tuple[str, str]] = {
        "expired": (
            mint_access_token(server.secret, user_id=world.owner, email="o@x", ttl=60, now=now - 3600),
            "PGRST303",
        ),
        "other secret": (_forge(owner_claims, secret="another-secret-" + "y" * 40), "PGRST301"),
        "alg none": (_alg_none(owner_claims), "PGRST301"),
        "HS512": (_forge(owner_claims, secret=server.secret, alg="HS512"), "PGRST301"),
        "garbage": ("not.a.jwt", "PGRST301"),
        "two parts": ("abc.def", "PGRST301"),
        "forged role": (_forge({**owner_claims, "role": "postgres"}, secret=server.secret), "PGRST303"),
        "no sub": (_forge({**owner_claims, "sub": ""}, secret=server.secret), "PGRST303"),
        "no exp": (
            _forge({k: v for k, v in owner_claims.items() if k != "exp"}, secret=server.secret),
            "PGRST303",
        ),
    }
    for name, (token, code) in cases.items():
        status, headers, body = await api.get("/rest/v1/run_logs", token=token)
        assert_pgrst(status, body, 401, code)
        assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"'), name
    status, _, body = await api.get("/rest/v1/run_logs", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_pgrst(status, body, 401, "PGRST301")
    table_intact(db, world)


async def test_api_key_is_required(api: Api, world: World, server: RunningServer) -> None:
    status, _, body = await api.get("/rest/v1/run_logs", key=None, token=server.user_token(world.owner))
    assert status == 401 and body["message"] == "No API key found in request"
    status, _, body = await api.get("/rest/v1/run_logs", key="bogus", token=server.user_token(world.owner))
    assert status == 401 and body["message"] == "Invalid API key"
    user_token_as_key = server.user_token(world.owner)
    status, _, body = await api.get("/rest/v1/run_logs?select=seq", key=user_token_as_key)
    assert status == 200  # a user's JWT is also a valid key (Supabase accepts any project JWT)
    status, _, body = await api.get(f"/rest/v1/run_logs?apikey={server.anon_key}", key=None)
    assert (status, body) == (200, [])


@pytest.mark.parametrize("case", ["other secret", "alg none", "alg none, no signature dot", "HS512"])
async def test_forged_api_keys_are_refused(
    api: Api, world: World, server: RunningServer, db: psycopg.Connection[Any], case: str
) -> None:
    """A key that looks like the anon or service key but is not signed with the project's secret
    (HS256) is refused before any route runs, with the gateway's body, whatever Bearer comes along."""
    now = int(time.time())
    claims = {"iss": "supabase", "role": "service_role", "iat": now, "exp": now + 3600}
    forged = {
        "other secret": _forge(claims, secret="another-secret-" + "y" * 40),
        "alg none": _alg_none(claims),
        "alg none, no signature dot": _alg_none(claims).rstrip("."),
        "HS512": _forge(claims, secret=server.secret, alg="HS512"),
    }[case]
    requests = [
        ("GET", "/rest/v1/run_logs?select=seq", None),
        ("GET", "/rest/v1/run_log_seq", None),
        ("POST", "/rest/v1/run_logs", {"run_id": world.run_a, "seq": 99, "level": "info", "message": "x"}),
        ("GET", "/auth/v1/settings", None),
    ]
    for token in (None, server.user_token(world.owner), server.service_key):
        for method, path, body in requests:
            status, headers, got = await api.request(method, path, key=forged, token=token, json=body)
            assert status == 401, (case, path, got)
            assert headers["Content-Type"].startswith("application/json"), (case, path)
            assert isinstance(got, dict) and set(got) == {"message", "hint"}, (case, path, got)
            assert got["message"] == "Invalid API key", (case, path, got)
    # the same key as the apikey query parameter (how supabase-js sends it on WebSockets)
    status, _, got = await api.get(f"/rest/v1/run_logs?apikey={forged}", key=None)
    assert status == 401 and got["message"] == "Invalid API key", (case, got)
    table_intact(db, world)


async def test_unsupported_methods(api: Api, world: World) -> None:
    status, _, body = await api.request("PUT", "/rest/v1/run_logs", json={})
    assert_pgrst(status, body, 405, "PGRST117")
    status, _, body = await api.get("/rest/v1/")
    assert_pgrst(status, body, 404, "PGRST126")
