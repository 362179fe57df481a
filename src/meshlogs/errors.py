"""Every error meshlogs raises on purpose, in one tree.

::

    MeshlogsError                 root; never raised directly
    ├── ConfigError               a MESHLOGS_* setting or CLI flag has a bad value
    ├── DatabaseError             Postgres is unreachable, too old, or misconfigured
    │   └── MigrationError        a migration failed or the history does not match the files
    ├── TokenError                a JWT is malformed, forged, expired or has the wrong audience
    └── WriterError               the log writer cannot accept or deliver lines
        ├── WriterClosedError     write() after close()
        └── LineRejectedError     the database refused a batch because of one line (index given)

Client-facing errors carry a stable ``code`` (CamelCase, as Supabase Realtime's ERROR_CODES.md does)
so that a caller can branch on it without parsing English.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseError",
    "LineRejectedError",
    "MeshlogsError",
    "MigrationError",
    "TokenError",
    "WriterClosedError",
    "WriterError",
]


class MeshlogsError(Exception):
    """Root of every meshlogs error."""

    code = "MeshlogsError"


class ConfigError(MeshlogsError):
    """A setting has a value meshlogs cannot use; the message names the setting."""

    code = "InvalidConfig"


class DatabaseError(MeshlogsError):
    """Postgres cannot be reached or is not set up the way meshlogs needs."""

    code = "DatabaseError"


class MigrationError(DatabaseError):
    """A migration failed, or the applied history disagrees with the files shipped."""

    code = "MigrationError"


class TokenError(MeshlogsError):
    """A JWT failed verification. The message is safe to show to the caller."""

    code = "InvalidJWTToken"


class WriterError(MeshlogsError):
    """The log writer could not accept or deliver lines."""

    code = "WriterError"


class WriterClosedError(WriterError):
    """A line was written after the writer was closed."""

    code = "WriterClosed"


class LineRejectedError(WriterError):
    """The database rejected a batch because of one line; nothing of the batch was stored.

    Attributes:
        index: position of the offending line inside the batch that was sent (0-based), when known.
    """

    code = "LineRejected"

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index
