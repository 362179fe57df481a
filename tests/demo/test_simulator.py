"""Seeding and the simulator against real Postgres: idempotent seed, viewer access, masked secrets,
runs that finish with a status after their lines, and a clean stop."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from meshlogs.demo.seed import BOB, DemoWorld, cancel_interrupted_runs, seed_demo
from meshlogs.demo.simulator import Pacer, Simulator, SimulatorConfig

COUNTS = {
    "users": "select count(*) from auth.users",
    "projects": "select count(*) from projects",
    "members": "select count(*) from project_members",
    "workflows": "select count(*) from workflow_definitions",
}


def counts(db: psycopg.Connection[Any]) -> dict[str, int]:
    return {name: db.execute(sql).fetchone()[0] for name, sql in COUNTS.items()}  # type: ignore[index]


def test_seed_is_idempotent_and_bob_is_a_viewer_in_alices_project(db: psycopg.Connection[Any]) -> None:
    first = seed_demo(db)
    before = counts(db)
    assert before == {"users": 2, "projects": 2, "members": 3, "workflows": 5}
    second = seed_demo(db)
    assert counts(db) == before and second.users == first.users and second.projects == first.projects
    assert second.workflows == first.workflows and not second.had_runs
    role = db.execute(
        "select role from project_members where project_id = %s and user_id = %s",
        (first.projects["acme"], first.users[BOB.email]),
    ).fetchone()
    assert role == ("viewer",)


def lines_of(db: psycopg.Connection[Any], run: str) -> list[tuple[int, str]]:
    return db.execute("select seq, message from run_logs where run_id = %s order by seq", (run,)).fetchall()


async def test_history_live_runs_and_stop(db: psycopg.Connection[Any], db_url: str) -> None:
    world = seed_demo(db)
    config = SimulatorConfig(
        rate=2000, runs=2, long_run_lines=1500, long_run_rate=400, time_scale=0.05, seed=7
    )
    sim = Simulator(db_url, world, config)
    await sim.open()
    try:
        assert await sim.seed_history() == 4 * 4 + 1
        history = db.execute("select status, count(*) from workflow_runs group by status").fetchall()
        assert {s for s, _ in history} <= {"succeeded", "failed"} and sum(n for _, n in history) == 17
        long_run = db.execute(
            "select r.id::text, r.finished_at > r.started_at from workflow_runs r"
            " join workflow_definitions d on d.id = r.workflow_id where d.slug = 'nightly-ledger-export'"
        ).fetchone()
        assert long_run is not None and long_run[1] is True
        assert len(lines_of(db, long_run[0])) == 1500
        # historic lines carry past timestamps from the virtual clock, in seq order
        (ordered,) = db.execute(
            "select bool_and(ts <= now() - interval '5 minutes') from run_logs where run_id = %s",
            (long_run[0],),
        ).fetchone()  # type: ignore[misc]
        assert ordered is True
        # the simulated tools' ANSI colours reach the table as written (the console and tail render them)
        (coloured,) = db.execute(
            "select count(*) from run_logs where strpos(message, chr(27) || '[') > 0 and run_id = %s",
            (long_run[0],),
        ).fetchone()  # type: ignore[misc]
        assert coloured > 0

        await sim.start()
        live = await sim.wait_for_runs(3, timeout=20)
        assert len(live) == 3 and sim.long_run_id in live
        async with asyncio.timeout(60):  # webhook runs finish and new ones start
            while sum(sim.finished.values()) < 3:
                await asyncio.sleep(0.1)
        # a finished run's lines were all stored before its status changed
        for run_id, status in db.execute(
            "select id::text, status from workflow_runs where finished_at > now() - interval '1 minute'"
            " and status <> 'running'"
        ).fetchall():
            seqs = [s for s, _ in lines_of(db, run_id)]
            assert seqs == list(range(1, len(seqs) + 1)) and seqs, run_id
            last = db.execute(
                "select step, attrs->>'outcome' from run_logs where run_id = %s order by seq desc limit 1",
                (run_id,),
            ).fetchone()
            assert last == ("terminate", status), (run_id, last)
    finally:
        active = list(sim.active)
        await sim.stop()
    # live runs were canceled with a last line saying why
    assert active
    for run_id in active:
        status = db.execute("select status from workflow_runs where id = %s", (run_id,)).fetchone()
        assert status == ("canceled",)
        assert lines_of(db, run_id)[-1][1] == "demo stopped (Ctrl-C): run canceled"
    # secrets never reached the table: the writer masked them
    for secret in world.secrets:
        (hits,) = db.execute(
            "select count(*) from run_logs where message like %s or attrs::text like %s",
            (f"%{secret}%", f"%{secret}%"),
        ).fetchone()  # type: ignore[misc]
        assert hits == 0, secret
    (masked,) = db.execute("select count(*) from run_logs where message like '%Bearer ***%'").fetchone()  # type: ignore[misc]
    assert masked > 0
    assert seed_demo(db).had_runs


def test_interrupted_runs_are_canceled_on_the_next_start(db: psycopg.Connection[Any]) -> None:
    world: DemoWorld = seed_demo(db)
    wf = world.workflows[0]
    db.execute(
        "insert into workflow_runs (project_id, workflow_id, status) values (%s, %s, 'running')",
        (wf.project_id, wf.id),
    )
    assert cancel_interrupted_runs(db, world) == 1
    assert cancel_interrupted_runs(db, world) == 0
    assert db.execute("select status from workflow_runs").fetchall() == [("canceled",)]
    assert db.execute("select level, step from run_logs").fetchall() == [("warn", "terminate")]


async def test_pacer_bounds_the_rate() -> None:
    pacer = Pacer(rate=500)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(200):
        await pacer.take()
    elapsed = loop.time() - start
    assert 0.3 <= elapsed < 1.5  # 200 events at 500/s: 0.4 s less the 50 ms burst credit
