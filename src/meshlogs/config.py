"""The one settings object, loaded from ``MESHLOGS_*`` environment variables.

Settings are data (as datasette's ``SETTINGS`` and Supabase Realtime's ``ENVS.md``): each field carries
its environment variable, its default and a help text, so ``docs/reference/settings.md`` can be checked
against this module by a test. Casting is strict: ``MESHLOGS_PORT=abc`` or ``MESHLOGS_ALLOW_SIGNUP=maybe``
is a :class:`~meshlogs.errors.ConfigError` naming the variable, never a silent default.
CLI flags override the environment by passing keyword overrides to :meth:`Settings.load`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from meshlogs.errors import ConfigError

__all__ = ["ENV_PREFIX", "Settings", "default_data_dir"]

ENV_PREFIX = "MESHLOGS_"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def default_data_dir() -> Path:
    """The platform's per-user data directory for meshlogs (``~/.local/share/meshlogs`` on Linux)."""
    return Path(platformdirs.user_data_dir("meshlogs", appauthor=False))


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Everything meshlogs can be configured with. Field ``foo_bar`` reads ``MESHLOGS_FOO_BAR``."""

    database_url: str = _setting(
        "",
        "Postgres connection URL (>= 15, wal_level=logical). Empty: start or reuse the embedded "
        "Postgres in the data dir, and stop it when the command that started it exits.",
    )
    data_dir: Path = _setting(
        default_data_dir(),
        "Directory holding the embedded Postgres cluster (pgdata/) and the generated JWT secret.",
    )
    host: str = _setting("127.0.0.1", "Address `meshlogs serve` listens on.")
    port: int = _setting(54321, "Port `meshlogs serve` listens on (54321 is a local Supabase's).")
    public_url: str = _setting(
        "",
        "URL clients use to reach this server (printed by `keys`, given to the console). Empty: "
        "http://HOST:PORT.",
    )
    jwt_secret: str = _setting(
        "",
        "HS256 secret that signs and verifies every JWT (anon/service keys, user tokens). Empty: "
        "generated once and kept in DATA_DIR/jwt_secret (mode 0600). At least 32 characters.",
    )
    jwt_expiry: int = _setting(3600, "Lifetime in seconds of user access tokens.")
    allow_signup: bool = _setting(False, "Allow POST /auth/v1/signup. Off for `serve`, on for `demo`.")
    max_line_bytes: int = _setting(
        65536,
        "Longest log message stored, in UTF-8 bytes; longer messages are truncated with a visible "
        "'[truncated N bytes]' marker. Enforced by the writer SDK and by append_run_logs() called "
        "through /rest/v1/rpc; direct SQL callers get the database setting meshlogs.max_line_bytes "
        "(default 65536; ALTER DATABASE ... SET meshlogs.max_line_bytes = N).",
    )
    writer_batch_lines: int = _setting(
        2000, "Writer SDK: flush a run's buffer once it holds this many lines."
    )
    writer_batch_bytes: int = _setting(
        1048576, "Writer SDK: flush a run's buffer once its messages reach this many bytes."
    )
    writer_flush_interval: float = _setting(
        0.05, "Writer SDK: seconds a line may wait in the buffer before it is flushed."
    )
    writer_max_buffer_lines: int = _setting(
        100000,
        "Writer SDK: lines buffered across all runs before write() blocks (backpressure).",
    )
    log_level: str = _setting("info", "Server log level: debug, info, warning or error.")
    realtime_max_connections: int = _setting(
        10000, "Realtime: most concurrent WebSocket connections; more are refused with HTTP 429."
    )
    realtime_max_channels: int = _setting(
        100, "Realtime: channels per connection (the 101st join gets ChannelRateLimitReached)."
    )
    realtime_max_joins_per_second: int = _setting(
        100, "Realtime: joins per connection per second; a flood closes the connection."
    )
    realtime_max_frame_bytes: int = _setting(
        1048576, "Realtime: largest inbound WebSocket frame; larger ones close the socket (1009)."
    )
    realtime_max_pending_bytes: int = _setting(
        8388608,
        "Realtime: outgoing bytes queued for one connection before it counts as a slow consumer and "
        "is closed (code 1013, 'slow consumer'); its client reconnects and backfills by seq.",
    )
    realtime_max_record_bytes: int = _setting(
        1048576,
        "Realtime: a change whose JSON is larger is sent as Supabase sends it: only the values of "
        "64 bytes or less, with errors ['Error 413: Payload Too Large'] (clients then read the row "
        "over REST).",
    )
    realtime_authz_cache_ttl: float = _setting(
        10.0,
        "Realtime: seconds an RLS decision per (user, run) is reused without re-checking; membership "
        "changes invalidate it at once. 0 checks every change (needed if run_logs' policy reads more "
        "than run_id).",
    )
    realtime_authz_visibility_timeout: float = _setting(
        5.0,
        "Realtime: longest wait, in seconds, for a streamed commit to become visible to new snapshots before "
        "an RLS check of its rows gives up and makes the affected channels resync (Postgres streams "
        "a commit a moment before other sessions can see it; a synchronous standby that does not "
        "answer makes that moment last).",
    )
    search_index_interval: float = _setting(
        1.0,
        "Seconds between runs of the background whole-log search indexer (meshlogs.index_run_logs(): "
        "trigrams of complete 200-line chunks, kept off the append path). 0 turns it off; search "
        "still works, scanning the lines not indexed.",
    )
    rest_max_rows: int = _setting(
        1000,
        "Most rows one GET /rest/v1 request returns (PostgREST's db-max-rows); a larger limit or "
        "Range is capped and Content-Range shows what was returned, so clients page.",
    )
    rest_statement_timeout_ms: int = _setting(
        10000, "statement_timeout for each /rest/v1 query, in milliseconds."
    )
    auth_token_rate_limit: int = _setting(
        30,
        "POST /auth/v1/token?grant_type=password and /signup attempts allowed per 5 minutes per "
        "client IP and email (429 beyond); refresh_token grants get 5 times this per IP.",
    )
    refresh_token_reuse_interval: int = _setting(
        10,
        "Seconds during which an already-rotated refresh token may be presented again and gets the "
        "same successor (a retry after a lost response); later reuse revokes the whole session.",
    )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``), then apply non-None overrides.

        Raises:
            ConfigError: a variable or override cannot be cast to the field's type.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = ENV_PREFIX + f.name.upper()
            if var in env:
                values[f.name] = _cast(var, env[var], f.default)
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in {f.name for f in dataclasses.fields(cls)}:
                raise ConfigError(f"unknown setting {name!r}")
            default = next(f.default for f in dataclasses.fields(cls) if f.name == name)
            values[name] = _cast(f"--{name.replace('_', '-')}", value, default)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject values that parse but cannot work (ports out of range, tiny secrets...)."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"MESHLOGS_PORT must be 0..65535, got {self.port}")
        if self.jwt_secret and len(self.jwt_secret) < 32:
            raise ConfigError("MESHLOGS_JWT_SECRET must be at least 32 characters")
        if self.max_line_bytes < 1024:
            raise ConfigError("MESHLOGS_MAX_LINE_BYTES must be at least 1024")
        for name in ("writer_batch_lines", "writer_batch_bytes", "writer_max_buffer_lines"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MESHLOGS_{name.upper()} must be positive")
        if self.writer_max_buffer_lines < self.writer_batch_lines:
            raise ConfigError("MESHLOGS_WRITER_MAX_BUFFER_LINES must be >= MESHLOGS_WRITER_BATCH_LINES")
        if self.writer_flush_interval <= 0:
            raise ConfigError("MESHLOGS_WRITER_FLUSH_INTERVAL must be > 0")
        if self.rest_max_rows < 1:
            raise ConfigError("MESHLOGS_REST_MAX_ROWS must be positive")
        if self.rest_statement_timeout_ms < 1:
            raise ConfigError("MESHLOGS_REST_STATEMENT_TIMEOUT_MS must be positive")
        if self.auth_token_rate_limit < 1:
            raise ConfigError("MESHLOGS_AUTH_TOKEN_RATE_LIMIT must be positive")
        if self.refresh_token_reuse_interval < 0:
            raise ConfigError("MESHLOGS_REFRESH_TOKEN_REUSE_INTERVAL must be >= 0")
        if self.realtime_max_record_bytes < 1024:
            raise ConfigError("MESHLOGS_REALTIME_MAX_RECORD_BYTES must be at least 1024")
        if self.realtime_authz_visibility_timeout <= 0:
            raise ConfigError("MESHLOGS_REALTIME_AUTHZ_VISIBILITY_TIMEOUT must be > 0")
        if self.log_level not in {"debug", "info", "warning", "error"}:
            raise ConfigError("MESHLOGS_LOG_LEVEL must be debug, info, warning or error")

    @property
    def url(self) -> str:
        """The URL clients reach this server at."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @classmethod
    def documented(cls) -> list[tuple[str, Any, str]]:
        """``(ENV_VAR, default, help)`` for every setting, for generated docs."""
        return [
            (ENV_PREFIX + f.name.upper(), f.default, str(f.metadata["help"])) for f in dataclasses.fields(cls)
        ]


def _cast(var: str, raw: Any, default: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if isinstance(default, bool):
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw).expanduser()
    except ValueError:
        kind = type(default).__name__
        raise ConfigError(f"{var}: expected {kind}, got {raw!r}") from None
    return raw
