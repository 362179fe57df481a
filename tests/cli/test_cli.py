"""The CLI as a user runs it: a real subprocess, a real data dir, the embedded Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import psycopg
import pytest

from meshlogs.auth.tokens import verify_token
from tests.support.server import running_server


def meshlogs(
    *args: str, data_dir: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLOGS_")}
    full_env.update({"MESHLOGS_DATA_DIR": str(data_dir), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "meshlogs", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


def test_migrate_twice_then_keys_and_token(data_dir: Path) -> None:
    first = meshlogs("migrate", data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_supabase_base" in first.stdout
    again = meshlogs("migrate", data_dir=data_dir)
    assert (again.returncode, again.stdout.strip()) == (0, "database is up to date")

    keys = meshlogs("keys", "--json", data_dir=data_dir)
    assert keys.returncode == 0, keys.stderr
    info = json.loads(keys.stdout)
    assert set(info) == {"url", "anon_key", "service_role_key", "database_url"}
    secret = (data_dir / "jwt_secret").read_text().strip()
    assert verify_token(secret, info["anon_key"])["role"] == "anon"
    assert verify_token(secret, info["service_role_key"])["role"] == "service_role"
    assert json.loads(meshlogs("keys", "--json", data_dir=data_dir).stdout) == info  # stable keys

    added = meshlogs("users", "add", "Dev@Example.com", data_dir=data_dir, stdin="hunter22\n")
    assert added.returncode == 0, added.stderr
    token = meshlogs("token", "--user", "dev@example.com", "--ttl", "120", data_dir=data_dir)
    assert token.returncode == 0, token.stderr
    claims = verify_token(secret, token.stdout.strip())
    assert claims["email"] == "dev@example.com" and claims["exp"] - claims["iat"] == 120

    # The embedded Postgres the commands started is stopped again when they exit.
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_usage_errors_exit_2_with_a_clear_message(data_dir: Path) -> None:
    missing = meshlogs("token", "--user", "nobody@example.com", data_dir=data_dir)
    assert missing.returncode == 2 and "no user with email 'nobody@example.com'" in missing.stderr
    bad_env = meshlogs("keys", data_dir=data_dir, env={"MESHLOGS_PORT": "abc"})
    assert bad_env.returncode == 2 and "MESHLOGS_PORT: expected int" in bad_env.stderr
    short = meshlogs("users", "add", "x@example.com", "--password", "123", data_dir=data_dir)
    assert short.returncode == 2 and "at least 6 characters" in short.stderr
    dup = meshlogs("users", "add", "dev@example.com", "--password", "hunter22", data_dir=data_dir)
    assert dup.returncode == 2 and "already exists" in dup.stderr


def test_database_url_flag_uses_that_server(data_dir: Path, db_url: str) -> None:
    result = meshlogs("migrate", "--database-url", db_url, data_dir=data_dir)
    assert (result.returncode, result.stdout.strip()) == (0, "database is up to date")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select count(*) > 0 from meshlogs.schema_migrations").fetchone() == (True,)


def test_unreachable_database_url_is_a_failure(data_dir: Path) -> None:
    result = meshlogs("migrate", "--database-url", "postgresql://x@/y?host=/nonexistent", data_dir=data_dir)
    assert result.returncode == 1 and "error: cannot connect" in result.stderr


async def test_users_add_then_password_login_over_http(data_dir: Path, db_url: str, tmp_path: Path) -> None:
    added = meshlogs(
        "users",
        "add",
        "Ops@Example.com",
        "--password",
        "s3cret-pass",
        "--database-url",
        db_url,
        data_dir=data_dir,
    )
    assert added.returncode == 0, added.stderr
    line = added.stdout.strip()
    assert line.startswith("created user ops@example.com (") and line.endswith(")"), line
    user_id = line.rsplit("(", 1)[1].rstrip(")")
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "select id::text, email from auth.users where email = 'ops@example.com'"
        ).fetchone()
    assert row == (user_id, "ops@example.com")

    async with (
        running_server(db_url, tmp_path / "server") as srv,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
    ):

        async def login(email: str, password: str, **headers: str) -> tuple[int, dict[str, object]]:
            async with http.post(
                f"{srv.url}/auth/v1/token?grant_type=password",
                json={"email": email, "password": password},
                headers={"apikey": srv.anon_key, **headers},
            ) as resp:
                return resp.status, await resp.json()

        for email in ("ops@example.com", "Ops@Example.com"):
            status, body = await login(email, "s3cret-pass")
            assert status == 200, body
            assert body["token_type"] == "bearer" and body["refresh_token"]
            assert body["user"]["id"] == user_id  # type: ignore[index]
            claims = verify_token(srv.secret, str(body["access_token"]))
            assert (claims["sub"], claims["email"], claims["role"]) == (
                user_id,
                "ops@example.com",
                "authenticated",
            )

        # a wrong password: Supabase Auth's error body, in both API-version formats
        status, body = await login(
            "ops@example.com", "s3cret-pasS", **{"X-Supabase-Api-Version": "2024-01-01"}
        )
        assert (status, body) == (
            400,
            {"code": "invalid_credentials", "message": "Invalid login credentials"},
        )
        status, body = await login("ops@example.com", "wrong")
        assert (status, body) == (
            400,
            {"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"},
        )
