"""When the writer tries a batch again, and when it gives up: pure policy, no I/O.

Failures fall in three kinds (:func:`classify`):

- ``RETRY``: the connection broke, the server is shutting down or starting, a deadlock or
  serialization failure, too many connections, a timeout. The outcome may be *ambiguous* (the
  connection died during COMMIT), which is safe because the batch keeps its idempotency key: the
  database applies a key once and answers a repeat with the seq it already gave.
- ``REJECTED_LINE``: ``append_run_logs()`` refused one line (SQLSTATE 22023/22007 with
  ``append_run_logs: line N: ...``); nothing of the batch was stored. The writer drops that line,
  reports it as a :class:`~meshlogs.errors.LineRejectedError`, and sends the rest at once.
- ``FATAL``: anything else (missing function, permission denied, unknown run...). Retrying cannot
  help; the batch is given up on and reported as a :class:`~meshlogs.errors.DeliveryError`.

Retries use exponential backoff with "equal jitter" (half the delay fixed, half random, so a fleet of
workers that lost the same database does not reconnect in lockstep) and are bounded twice: by
attempts per batch, and by the length of the *outage* — the time since the writer's last successful
batch. Once the database has been unreachable for ``max_elapsed`` seconds, each further batch gets a
single attempt, so a dead database drains the buffer as reported errors in bounded time instead of
holding callers hostage to one long retry loop per batch; the first success ends the outage.
"""

from __future__ import annotations

import enum
import random
import re
from dataclasses import dataclass

import psycopg

__all__ = ["Failure", "RetryPolicy", "classify"]

_LINE = re.compile(r"^append_run_logs: line (\d+): ")

# SQLSTATEs worth another attempt (besides class 08, connection exceptions).
_RETRY_STATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "53000",  # insufficient_resources
        "53100",  # disk_full: may be freed
        "53200",  # out_of_memory
        "53300",  # too_many_connections
        "55P03",  # lock_not_available
        "57014",  # query_canceled (statement_timeout, pg_cancel_backend)
        "57P01",  # admin_shutdown (pg_terminate_backend, fast shutdown)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, recovering)
        "57P05",  # idle_session_timeout
        "58000",  # system_error
        "58030",  # io_error
    }
)


class Failure(enum.Enum):
    """What to do about a failed attempt."""

    RETRY = "retry"
    REJECTED_LINE = "rejected_line"
    FATAL = "fatal"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying a batch.

    Attributes:
        max_attempts: attempts per batch, the first included.
        initial_delay: seconds before the second attempt (before jitter).
        max_delay: cap on one delay.
        multiplier: growth of the delay per attempt.
        max_elapsed: seconds of continuous failure (since the last delivered batch) after which
            batches stop being retried.
        attempt_timeout: seconds one attempt (connect + append) may take before it is abandoned as
            ambiguous and the connection closed; bounds a hung network, which sends no error.
    """

    max_attempts: int = 100
    initial_delay: float = 0.05
    max_delay: float = 2.0
    multiplier: float = 2.0
    max_elapsed: float = 60.0
    attempt_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < self.initial_delay or self.multiplier < 1:
            raise ValueError("need 0 <= initial_delay <= max_delay and multiplier >= 1")
        if self.max_elapsed < 0 or self.attempt_timeout <= 0:
            raise ValueError("max_elapsed must be >= 0 and attempt_timeout > 0")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, attempt - 1))
        return base / 2 + rng.uniform(0, base / 2)

    def gives_up(self, attempts: int, outage: float) -> bool:
        """Whether a batch that failed ``attempts`` times, ``outage`` seconds into an outage, stops."""
        return attempts >= self.max_attempts or outage >= self.max_elapsed


def classify(exc: BaseException) -> tuple[Failure, int | None]:
    """The kind of a failed attempt and, for a rejected line, its 0-based index in the batch."""
    if isinstance(exc, TimeoutError | OSError | psycopg.InterfaceError):
        return Failure.RETRY, None
    if not isinstance(exc, psycopg.Error):
        return Failure.FATAL, None
    state = exc.sqlstate
    if state is None:
        # libpq-level failures (server closed the connection, could not connect) carry no SQLSTATE.
        return (Failure.RETRY if isinstance(exc, psycopg.OperationalError) else Failure.FATAL), None
    if state.startswith("08") or state in _RETRY_STATES:
        return Failure.RETRY, None
    if state in ("22023", "22007"):
        match = _LINE.match(exc.diag.message_primary or "")
        if match is not None:
            return Failure.REJECTED_LINE, int(match.group(1))
    return Failure.FATAL, None
