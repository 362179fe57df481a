"""Every error meshlogs raises on purpose, in one tree.

::

    MeshlogsError                 root; never raised directly
    ├── ConfigError               a MESHLOGS_* setting or CLI flag has a bad value
    ├── DatabaseError             Postgres is unreachable, too old, or misconfigured
    │   ├── MigrationError        a migration failed or the history does not match the files
    │   └── ReplicationError      the change stream could not be started (bad slot, publication...)
    ├── DecodeError               bytes from the replication stream do not follow the protocol
    ├── ProtocolError             a Realtime client sent something the wire protocol does not allow
    │   ├── FrameError            a WebSocket frame cannot be decoded (meshlogs.protocol.phoenix)
    │   │   ├── MalformedFrameError   not JSON, wrong shape, bad binary layout, bad UTF-8
    │   │   └── FrameTooLargeError    larger than the configured maximum frame size
    │   ├── UnsupportedVersionError   the ``vsn`` query parameter names no serializer we speak
    │   ├── InvalidJoinPayloadError   a ``phx_join`` payload fails validation
    │   └── InvalidFilterError        a postgres_changes filter cannot be parsed or cast
    ├── TokenError                a JWT is malformed, forged, expired or has the wrong audience
    └── WriterError               the log writer cannot accept or deliver lines
        ├── WriterClosedError     write() after close()
        ├── WriterFullError       write_nowait() while the writer's buffer is full
        ├── LineRejectedError     the database refused a batch because of one line (index given)
        └── DeliveryError         lines were given up on (retries exhausted, or a non-retryable error)

Client-facing errors carry a stable ``code`` (CamelCase, as Supabase Realtime's ERROR_CODES.md does)
so that a caller can branch on it without parsing English.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseError",
    "DecodeError",
    "FrameError",
    "FrameTooLargeError",
    "InvalidFilterError",
    "InvalidJoinPayloadError",
    "LineRejectedError",
    "MalformedFrameError",
    "MeshlogsError",
    "MigrationError",
    "ProtocolError",
    "ReplicationError",
    "TokenError",
    "UnsupportedVersionError",
    "DeliveryError",
    "WriterClosedError",
    "WriterError",
    "WriterFullError",
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
    """A JWT failed verification. The message is safe to show to the caller.

    ``reason`` says which way it failed, for protocols that word each case their own way (Supabase
    Realtime does): ``malformed``, ``signature``, ``expired``, ``missing_claims`` or ``invalid``.
    ``expired_at`` is the token's ``exp`` when it has expired.
    """

    code = "InvalidJWTToken"

    def __init__(self, message: str, reason: str = "invalid", *, expired_at: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.expired_at = expired_at


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


class ReplicationError(DatabaseError):
    """The logical replication stream could not be started: no wal_level=logical, no free slot or
    wal sender, a missing publication, or no REPLICATION privilege. The message says which."""

    code = "ReplicationError"


class DecodeError(MeshlogsError):
    """Bytes from the replication stream (CopyData, XLogData, pgoutput) are malformed or too large.

    The only exception the pure decoders in :mod:`meshlogs.capture` raise on bad input; the message
    names the message type and what was wrong, never echoes the payload.
    """

    code = "ReplicationDecodeError"


class ProtocolError(MeshlogsError):
    """A Realtime client broke the wire protocol; raised only by :mod:`meshlogs.protocol` parsers.

    The message is safe to send back to that client: it names what was wrong, never echoes more than a
    short excerpt of the input. :attr:`reason` is the ``"Code: message"`` form Supabase Realtime puts
    in ``{"status": "error", "response": {"reason": ...}}``.
    """

    code = "ProtocolError"

    @property
    def reason(self) -> str:
        """``"<code>: <message>"``, the shape of Supabase's error reasons."""
        return f"{self.code}: {self}"


class FrameError(ProtocolError):
    """A WebSocket frame could not be decoded into a Phoenix message. The only exception
    ``meshlogs.protocol.phoenix`` decoders raise on bad input."""

    code = "MalformedFrame"


class MalformedFrameError(FrameError):
    """The frame is not valid JSON, not the V1 object or V2 array shape, or a bad binary layout."""

    code = "MalformedFrame"


class FrameTooLargeError(FrameError):
    """The frame is larger than the configured maximum; it was not parsed."""

    code = "FrameTooLarge"


class UnsupportedVersionError(ProtocolError):
    """The ``vsn`` query parameter asks for a serializer version we do not speak (only 1.0.x, 2.0.x)."""

    code = "UnsupportedVersion"


class InvalidJoinPayloadError(ProtocolError):
    """A ``phx_join`` payload failed validation; the message names the field (``config.broadcast.ack``)."""

    code = "InvalidJoinPayload"


class InvalidFilterError(ProtocolError):
    """A postgres_changes ``filter`` has a bad grammar, column, operator or value for the column type."""

    code = "InvalidFilter"


class WriterFullError(WriterError):
    """``write_nowait()`` found the writer's bounded buffer full; nothing was buffered."""

    code = "WriterFull"


class DeliveryError(WriterError):
    """The writer gave up on lines: its retries were exhausted or the database refused the batch.

    Attributes:
        run_id: the run whose lines were lost, when one run is concerned.
        lines: how many lines were given up on.
    """

    code = "DeliveryFailed"

    def __init__(self, message: str, *, run_id: str | None = None, lines: int = 0) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.lines = lines
