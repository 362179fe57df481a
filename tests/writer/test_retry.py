"""Retry policy and failure classification."""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pytest

from meshlogs.writer.retry import Failure, RetryPolicy, classify
from tests.factories import append


def test_delay_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=1.0, multiplier=2.0)
    rng = random.Random(3)
    for attempt, base in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (50, 1.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(base / 2 <= d <= base for d in delays)
        assert max(delays) - min(delays) > base / 10  # actually random


def test_gives_up_on_attempts_or_outage() -> None:
    policy = RetryPolicy(max_attempts=5, max_elapsed=10.0)
    assert not policy.gives_up(4, 9.9)
    assert policy.gives_up(5, 0.0)
    assert policy.gives_up(1, 10.0)


def test_policy_validates() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(initial_delay=2.0, max_delay=1.0)


def test_classify_real_database_errors(db: psycopg.Connection[Any], run: str) -> None:
    def error_of(sql: str, *args: Any) -> psycopg.Error:
        with pytest.raises(psycopg.Error) as info:
            db.execute(sql, args)
        return info.value

    bad_line = error_of(
        "select append_run_logs(%s, %s::jsonb)",
        run,
        '[{"level":"info","message":"ok"},{"level":"loud","message":"x"}]',
    )
    assert classify(bad_line) == (Failure.REJECTED_LINE, 1)
    bad_ts = error_of(
        "select append_run_logs(%s, %s::jsonb)", run, '[{"level":"info","message":"x","ts":"nope"}]'
    )
    assert classify(bad_ts) == (Failure.REJECTED_LINE, 0)
    no_run = error_of(
        "select append_run_logs(%s, %s::jsonb)",
        "00000000-0000-4000-8000-000000000000",
        '[{"level":"info","message":"x"}]',
    )
    assert classify(no_run) == (Failure.FATAL, None)
    assert classify(error_of("select no_such_function()")) == (Failure.FATAL, None)
    append(db, run, [{"level": "info", "message": "x"}], key="k1")
    reused = error_of(
        "select append_run_logs(%s, %s::jsonb, 'k1')",
        run,
        '[{"level":"info","message":"x"},{"level":"info","message":"y"}]',
    )
    assert classify(reused) == (Failure.FATAL, None)  # 22023 without a line number


def test_classify_connection_failures(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as victim,
        psycopg.connect(db_url, autocommit=True) as killer,
    ):
        killer.execute("select pg_terminate_backend(%s)", (victim.info.backend_pid,))
        with pytest.raises(psycopg.Error) as info:
            victim.execute("select 1")
    assert classify(info.value)[0] is Failure.RETRY
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect("host=/nonexistent-meshlogs-dir dbname=x connect_timeout=2")
    assert classify(refused.value)[0] is Failure.RETRY
    assert classify(TimeoutError())[0] is Failure.RETRY
    assert classify(ValueError())[0] is Failure.FATAL
