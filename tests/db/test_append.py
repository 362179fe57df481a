"""append_run_logs(): dense per-run seq under concurrency, atomic batches, idempotency, input rules."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
import pytest

from tests.factories import append, make_project, make_run, make_user, make_workflow


@pytest.fixture
def run(db: psycopg.Connection[Any]) -> str:
    owner = make_user(db, "w@example.com")
    project = make_project(db, owner)
    return make_run(db, project, make_workflow(db, project))


def seqs(db: psycopg.Connection[Any], run: str) -> list[int]:
    return [int(r[0]) for r in db.execute("select seq from run_logs where run_id = %s order by seq", (run,))]


def test_eight_concurrent_writers_give_exactly_one_to_n(
    db_url: str, db: psycopg.Connection[Any], run: str
) -> None:
    writers, per_writer, batch = 8, 10_000, 250
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                for start in range(0, per_writer, batch):
                    lines = [{"level": "info", "message": f"w{w} l{start + i}"} for i in range(batch)]
                    append(conn, run, lines)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert seqs(db, run) == list(range(1, writers * per_writer + 1))
    # Within each writer, its own lines keep their order.
    rows = db.execute("select message from run_logs where run_id = %s order by seq", (run,)).fetchall()
    last: dict[str, int] = {}
    for (message,) in rows:
        w, n = message.split()
        assert int(n[1:]) > last.get(w, -1)
        last[w] = int(n[1:])
    assert db.execute("select last_seq from run_log_seq where run_id = %s", (run,)).fetchone() == (80_000,)


def test_seq_order_is_commit_order(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    """A writer that reserved first but commits later blocks the second one: no interleaving."""
    with psycopg.connect(db_url) as first, psycopg.connect(db_url, autocommit=True) as second:
        append(first, run, [{"level": "info", "message": "first"}])
        done = threading.Event()

        def later() -> None:
            append(second, run, [{"level": "info", "message": "second"}])
            done.set()

        t = threading.Thread(target=later)
        t.start()
        assert not done.wait(0.5), "second append must wait for the first to commit"
        first.commit()
        t.join(timeout=30)
        assert done.is_set()
    rows = db.execute("select seq, message from run_logs where run_id = %s order by seq", (run,)).fetchall()
    assert rows == [(1, "first"), (2, "second")]


def test_rolled_back_append_leaves_no_gap(db_url: str, db: psycopg.Connection[Any], run: str) -> None:
    append(db, run, [{"level": "info", "message": "one"}])
    with psycopg.connect(db_url) as conn:
        append(conn, run, [{"level": "info", "message": "lost"}] * 5)
        conn.rollback()
    assert append(db, run, [{"level": "info", "message": "two"}]) == 2
    assert seqs(db, run) == [1, 2]


def test_idempotent_retry_applies_once(db: psycopg.Connection[Any], run: str) -> None:
    lines = [{"level": "info", "message": f"m{i}"} for i in range(3)]
    assert append(db, run, lines, key="batch-1") == 3
    assert append(db, run, lines, key="batch-1") == 3  # the retry: same answer, nothing added
    assert append(db, run, lines, key="batch-2") == 6
    assert seqs(db, run) == list(range(1, 7))


def test_reused_key_with_other_content_is_refused(db: psycopg.Connection[Any], run: str) -> None:
    append(db, run, [{"level": "info", "message": "a"}], key="k")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="already used for 1 lines, not 2"):
        append(db, run, [{"level": "info", "message": "a"}] * 2, key="k")


def test_defaults_and_fields_are_stored(db: psycopg.Connection[Any], run: str) -> None:
    append(
        db,
        run,
        [
            {
                "level": "warn",
                "message": "with all",
                "step": "build",
                "ts": "2026-01-02T03:04:05.5Z",
                "attrs": {"k": [1]},
            },
            {"level": "debug", "message": "bare"},
        ],
    )
    rows = db.execute(
        "select level, step, message, attrs, ts = '2026-01-02T03:04:05.5Z', ts > now() - interval '1 minute'"
        " from run_logs where run_id = %s order by seq",
        (run,),
    ).fetchall()
    assert rows[0] == ("warn", "build", "with all", {"k": [1]}, True, False)
    assert rows[1] == ("debug", None, "bare", {}, False, True)


BAD_LINES = [
    ({"level": "fatal", "message": "x"}, 'level must be one of debug, info, warn, error \\(got "fatal"\\)'),
    ({"message": "x"}, "level must be one of debug, info, warn, error \\(got nothing\\)"),
    ({"level": "info"}, "message must be a string"),
    ({"level": "info", "message": 5}, "message must be a string"),
    ({"level": "info", "message": "x", "attrs": [1]}, "attrs must be a JSON object"),
    ({"level": "info", "message": "x", "attrs": "s"}, "attrs must be a JSON object"),
    ({"level": "info", "message": "x", "step": 3}, "step must be a string or null"),
    ({"level": "info", "message": "x", "ts": 17}, "ts must be an ISO 8601 timestamp string"),
    ({"level": "info", "message": "x", "ts": "2026-13-45"}, "ts '2026-13-45' is not a valid timestamp"),
    ({"level": "info", "message": "x", "ts": "yesterday-ish"}, "ts 'yesterday-ish' is not a valid timestamp"),
    ({"level": "info", "message": "x", "colour": "red"}, "unknown key"),
    ("just a string", "must be a JSON object"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES)
def test_one_bad_line_names_its_index_and_applies_nothing(
    db: psycopg.Connection[Any], run: str, bad: Any, reason: str
) -> None:
    append(db, run, [{"level": "info", "message": "before"}])
    lines = [{"level": "info", "message": "ok"}, {"level": "info", "message": "ok"}, bad]
    with pytest.raises(psycopg.Error, match=f"append_run_logs: line 2: {reason}"):
        append(db, run, lines)
    assert seqs(db, run) == [1]
    assert append(db, run, [{"level": "info", "message": "after"}]) == 2


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ({"level": "info", "message": "x"}, "p_lines must be a JSON array"),
        (None, "p_lines must be a JSON array"),
    ],
)
def test_batch_shape_errors(db: psycopg.Connection[Any], run: str, lines: Any, reason: str) -> None:
    with pytest.raises(psycopg.Error, match=reason):
        db.execute(
            "select append_run_logs(%s, %s::jsonb)", (run, None if lines is None else json.dumps(lines))
        )


def test_unknown_run_is_a_clear_error(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(
        psycopg.errors.ForeignKeyViolation, match="run 00000000-0000-0000-0000-000000000000 does not exist"
    ):
        append(db, "00000000-0000-0000-0000-000000000000", [{"level": "info", "message": "x"}])


def test_batches_are_bounded(db: psycopg.Connection[Any], run: str) -> None:
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="at most 10000 lines per call"):
        append(db, run, [{"level": "info", "message": "x"}] * 10_001)
    assert seqs(db, run) == []


def test_long_lines_are_truncated_with_a_marker(db: psycopg.Connection[Any], run: str) -> None:
    long_ascii = "a" * 100_000
    long_multibyte = "é" * 40_000 + "😀" * 10_000  # 80,000 + 40,000 bytes
    append(
        db,
        run,
        [
            {"level": "info", "message": long_ascii},
            {"level": "info", "message": long_multibyte},
            {"level": "info", "message": "x" * 65_536},
        ],
    )
    rows = db.execute(
        "select octet_length(message), message from run_logs where run_id = %s order by seq", (run,)
    ).fetchall()
    for size, message in rows[:2]:
        assert size <= 65_536
        assert message.endswith(" bytes]") and " … [truncated " in message
    dropped = int(rows[0][1].rsplit("[truncated ", 1)[1].split()[0])
    assert dropped == 100_000 - rows[0][1].index(" … [")
    assert rows[2][0] == 65_536 and "truncated" not in rows[2][1]  # exactly at the limit: kept whole


def test_limit_is_configurable(db: psycopg.Connection[Any], run: str) -> None:
    db.execute("select set_config('meshlogs.max_line_bytes', '2000', false)")
    append(db, run, [{"level": "info", "message": "z" * 5000}])
    (size,) = db.execute(
        "select octet_length(message) from run_logs where run_id = %s", (run,)
    ).fetchone() or (0,)
    assert 1900 < size <= 2000


def test_nul_bytes_cannot_reach_the_table(db: psycopg.Connection[Any], run: str) -> None:
    """jsonb refuses \\u0000 before the function runs: a clear error, nothing stored. REST answers with
    PostgREST's own 22P05 error, as hosted Supabase does; the writer SDK replaces NUL with U+FFFD
    before sending."""
    with pytest.raises(psycopg.errors.UntranslatableCharacter):
        db.execute("select append_run_logs(%s, %s::jsonb)", (run, '[{"level":"info","message":"a\\u0000b"}]'))
    assert seqs(db, run) == []


def test_empty_batch_returns_last_seq(db: psycopg.Connection[Any], run: str) -> None:
    assert append(db, run, []) == 0
    append(db, run, [{"level": "info", "message": "x"}])
    assert append(db, run, []) == 1


def test_deleting_a_run_deletes_its_lines(db: psycopg.Connection[Any], run: str) -> None:
    append(db, run, [{"level": "info", "message": "x"}] * 3)
    db.execute("delete from workflow_runs where id = %s", (run,))
    assert db.execute("select count(*) from run_logs where run_id = %s", (run,)).fetchone() == (0,)
    assert db.execute("select count(*) from run_log_seq where run_id = %s", (run,)).fetchone() == (0,)
