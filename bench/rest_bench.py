"""REST backfill and whole-log search, against the same queries as direct SQL, on a fresh Postgres.

Reproduce (about three minutes on a 2-core machine)::

    .venv/bin/python bench/rest_bench.py
    .venv/bin/python bench/rest_bench.py --backfill-lines 100000 --page 1000 --search-lines 1000000
    .venv/bin/python bench/rest_bench.py --skip-search --skip-write-cost   # backfill only, ~20 s

A fresh embedded Postgres (PG 18, temporary data dir, deleted afterwards) gets the migrations, one
project with a viewer, and runs filled with realistic log lines. The meshlogs server runs in its own
process (``spawn``); the client is aiohttp in this process. Every REST request carries the viewer's
JWT, so RLS is evaluated exactly as for the console. The SQL baselines run the same statements on one
connection under the same role and claims (``set_config('role'…)``, ``request.jwt.claims``), fetching
Python tuples: they are the database's share of each REST number.

Scenarios:

- ``backfill``: read ``--backfill-lines`` lines of one run the way the console backfills
  (``GET /rest/v1/run_logs?run_id=eq.R&seq=gt.N&order=seq.asc&limit=PAGE`` until a short page).
  Median of ``--rounds`` full reads. Target (ARCHITECTURE §7): ≤ 2 s for 100,000 lines.
- ``search``: a case-insensitive substring on a ``--search-lines`` run (plus two more runs of
  ``--other-lines`` each, so the index also holds other runs' lines), first 200 matches by seq, for
  a rare id, a rare hex fragment, a two-word phrase, a common word and a term with no match, two ways:
  ``rpc`` = ``POST /rest/v1/rpc/search_run_logs`` (migration 0012: the chunk trigram index that
  ``meshlogs.index_run_logs()`` fills in the background, run to completion after loading and timed),
  against ``SQL owner`` = a plain ilike over the run's lines in SQL without RLS (what a search costs
  with no index at all); and ``ilike`` = ``GET /rest/v1/run_logs?…&message=ilike.*TERM*`` under RLS,
  against ``SQL RLS`` = that query in SQL under the viewer's role, with its plan.
- ``write cost``: ``append_run_logs()`` throughput (one writer, ``--write-batch``-line calls) into
  three fresh databases, interleaved in rounds so that background noise hits all alike: no search
  indexing; the background chunk indexer (0012) running alongside as ``meshlogs serve`` runs it;
  and the per-line (run_id, message) trigram index that migration 0011 used to put on the append
  path (recreated here for comparison).

Absolute numbers vary by about ±30% on a shared 2-core box; compare rows within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from meshlogs.auth.tokens import mint_access_token, mint_api_key
from meshlogs.config import Settings
from meshlogs.db.embedded import start_embedded
from meshlogs.db.migrate import apply_migrations

SECRET = "bench-secret-" + "b" * 40
WORDS = [
    "build",
    "deploy",
    "fetch",
    "compile",
    "link",
    "test",
    "upload",
    "cache",
    "hit",
    "miss",
    "resolve",
    "module",
    "package",
    "worker",
    "step",
    "retry",
    "timeout",
    "connect",
    "request",
    "response",
    "handler",
    "queue",
    "publish",
    "subscribe",
]
COLUMNS = "id,run_id,seq,ts,level,step,message,attrs"


# ------------------------------------------------------------------------------------------ database


def url_for(url: str, database: str) -> str:
    info = conninfo_to_dict(url)
    info["dbname"] = database
    return make_conninfo("", **{k: v for k, v in info.items() if v is not None})


def create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    url = url_for(admin_url, name)
    apply_migrations(url)
    return url


def make_tenant(conn: psycopg.Connection[Any], runs: int) -> tuple[str, list[str]]:
    """A viewer user, a project they can see, and ``runs`` runs in it."""
    user = conn.execute(
        "insert into auth.users (email, email_confirmed_at) values ('viewer@bench', now()) returning id::text"
    ).fetchone()
    owner = conn.execute(
        "insert into auth.users (email, email_confirmed_at) values ('owner@bench', now()) returning id::text"
    ).fetchone()
    assert user is not None and owner is not None
    project = conn.execute(
        "insert into projects (owner, name) values (%s, 'bench') returning id::text", (owner[0],)
    ).fetchone()
    assert project is not None
    conn.execute(
        "insert into project_members (project_id, user_id, role) values (%s, %s, 'viewer')",
        (project[0], user[0]),
    )
    wf = conn.execute(
        "insert into workflow_definitions (project_id, slug, definition) values (%s, 'w', '{}') returning id",
        (project[0],),
    ).fetchone()
    assert wf is not None
    ids = []
    for _ in range(runs):
        row = conn.execute(
            "insert into workflow_runs (project_id, workflow_id, status) values (%s, %s, 'running')"
            " returning id::text",
            (project[0], wf[0]),
        ).fetchone()
        assert row is not None
        ids.append(row[0])
    return user[0], ids


# Lines like a CI log: two words, a zero-padded id, a duration, a request id (md5 fragment).
_FILL_SQL = """
insert into run_logs (run_id, seq, ts, level, step, message, attrs)
select %(run)s, g, now(), (array['debug','info','info','warn','error'])[1 + g %% 5],
       case when g %% 50 = 0 then 'step-' || (g / 50000) end,
       format('%%s %%s id=%%s took %%sms req-%%s', w[1 + g %% %(n)s], w[1 + (g * 7 + %(salt)s) %% %(n)s],
              lpad(g::text, 8, '0'), g %% 997, substr(md5(g::text || %(salt)s), 1, 10)),
       '{}'::jsonb
from generate_series(1, %(count)s) g, (select %(words)s::text[] as w) words
"""


def fill_run(conn: psycopg.Connection[Any], run: str, count: int, salt: int) -> None:
    """Bulk-load ``count`` lines (direct insert: this bench measures reads, not appends)."""
    conn.execute(_FILL_SQL, {"run": run, "count": count, "salt": salt, "words": WORDS, "n": len(WORDS)})
    conn.execute("insert into run_log_seq (run_id, last_seq) values (%s, %s)", (run, count))


# ------------------------------------------------------------------------------------------- server


def _serve(url: str, data_dir: str, max_rows: int, pipe: Connection) -> None:
    asyncio.run(_serve_async(url, data_dir, max_rows, pipe))


async def _serve_async(url: str, data_dir: str, max_rows: int, pipe: Connection) -> None:
    from meshlogs.server.app import create_app
    from meshlogs.server.run import serve_app

    settings = Settings.load({}, data_dir=data_dir, jwt_secret=SECRET, port=0, rest_max_rows=max_rows)
    app = create_app(settings, url, SECRET)
    async with serve_app(app, "127.0.0.1", 0) as port:
        pipe.send(port)
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)


class Server:
    """The meshlogs server in a child process."""

    def __init__(self, url: str, data_dir: Path, max_rows: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(url, str(data_dir), max_rows, child), daemon=True)
        self._proc.start()
        if not self._pipe.poll(60):
            raise RuntimeError("server did not start within 60 s")
        self.url = f"http://127.0.0.1:{self._pipe.recv()}"

    def stop(self) -> None:
        self._pipe.send("stop")
        self._proc.join(15)
        if self._proc.is_alive():
            self._proc.kill()


# ------------------------------------------------------------------------------------------- helpers


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def claims_for(user: str) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user, "role": "authenticated", "aud": "authenticated", "exp": now + 3600, "iat": now}


def sql_session(conn: psycopg.Connection[Any], user: str) -> None:
    conn.execute(
        "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
        (json.dumps(claims_for(user)),),
    )


# ------------------------------------------------------------------------------------------ backfill


async def rest_backfill(
    http: aiohttp.ClientSession, base: str, headers: dict[str, str], run: str, page: int
) -> tuple[float, int, int]:
    last, total, requests = 0, 0, 0
    start = time.perf_counter()
    while True:
        url = (
            f"{base}/rest/v1/run_logs?select={COLUMNS}&run_id=eq.{run}&seq=gt.{last}"
            f"&order=seq.asc&limit={page}"
        )
        async with http.get(url, headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"backfill page failed: {r.status} {await r.text()}")
            rows = await r.json(loads=json.loads)
        requests += 1
        total += len(rows)
        if rows:
            last = rows[-1]["seq"]
        if len(rows) < page:
            break
    return time.perf_counter() - start, total, requests


def sql_backfill(url: str, user: str, run: str, page: int) -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        last, total = 0, 0
        while True:
            with conn.transaction():
                sql_session(conn, user)
                rows = conn.execute(
                    f"select {COLUMNS} from run_logs where run_id = %s and seq > %s order by seq limit %s",
                    (run, last, page),
                ).fetchall()
            total += len(rows)
            if rows:
                last = rows[-1][2]
            if len(rows) < page:
                break
        return time.perf_counter() - start, total


# --------------------------------------------------------------------------------------------- search


def search_terms(conn: psycopg.Connection[Any], run: str, lines: int) -> list[tuple[str, str]]:
    rnd = random.Random(7)
    seq = rnd.randrange(1, lines)
    req = conn.execute(
        "select substr(message, length(message) - 9, 5) from run_logs where run_id = %s and seq = %s",
        (run, rnd.randrange(1, lines)),
    ).fetchone()
    assert req is not None
    return [
        ("rare id (1 match)", f"id={seq:08d}"),
        ("rare hex fragment", f"req-{req[0]}"),
        ("two-word phrase", f"{WORDS[3]} {WORDS[10]}"),
        ("common word", WORDS[1]),
        ("no match", "zz-nothing-zz"),
    ]


async def rest_search(
    http: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    run: str,
    term: str,
    repeat: int,
    rpc: bool,
) -> tuple[list[float], int]:
    """``ilike`` through GET /rest/v1/run_logs, or POST /rest/v1/rpc/search_run_logs."""
    times: list[float] = []
    n = 0
    for _ in range(repeat):
        start = time.perf_counter()
        if rpc:
            body = {"p_run_id": run, "p_query": term, "p_limit": 200}
            request = http.post(f"{base}/rest/v1/rpc/search_run_logs", json=body, headers=headers)
        else:
            params = {
                "select": COLUMNS,
                "run_id": f"eq.{run}",
                "message": f"ilike.*{term}*",
                "order": "seq.asc",
                "limit": "200",
            }
            request = http.get(f"{base}/rest/v1/run_logs", params=params, headers=headers)
        async with request as r:
            if r.status != 200:
                raise RuntimeError(f"search failed: {r.status} {await r.text()}")
            rows = await r.json()
        times.append(time.perf_counter() - start)
        n = len(rows)
    return times, n


def sql_search(url: str, user: str | None, run: str, term: str, repeat: int) -> tuple[list[float], str]:
    """The same ilike query in SQL: under the viewer's role and claims (RLS), or as the owner."""
    query = f"select {COLUMNS} from run_logs where run_id = %s and message ilike %s order by seq limit 200"
    times: list[float] = []
    with psycopg.connect(url) as conn:
        for _ in range(repeat):
            start = time.perf_counter()
            with conn.transaction():
                if user:
                    sql_session(conn, user)
                conn.execute(query, (run, f"%{term}%")).fetchall()
            times.append(time.perf_counter() - start)
        with conn.transaction():
            if user:
                sql_session(conn, user)
            plan = "\n".join(r[0] for r in conn.execute("explain " + query, (run, f"%{term}%")).fetchall())
    index_cond = plan.split("Index Cond:", 1)[1].split("\n", 1)[0] if "Index Cond:" in plan else ""
    if "~~*" in index_cond:
        chosen = "trigram index"
    elif "run_logs_run_seq_key" in plan:
        chosen = "(run_id, seq) + filter"
    elif index_cond:
        chosen = "run_id only + filter"
    else:
        chosen = "scan"
    return times, chosen


# ----------------------------------------------------------------------------------------- write cost


WRITE_VARIANTS = ("no search index", "background chunk indexer (0012)", "per-line trigram index (0011)")


def _indexer_loop(url: str, stop: threading.Event) -> None:
    """What ``meshlogs serve`` does: index complete chunks, back to back while there is a backlog."""
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            done = conn.execute("select meshlogs.index_run_logs(20000)").fetchone()[0]  # type: ignore[index]
            stop.wait(0.05 if done >= 20000 else 1.0)


def write_cost(admin_url: str, total_lines: int, batch: int, rounds: int) -> dict[str, float]:
    urls = {name: create_database(admin_url, f"w_{i}") for i, name in enumerate(WRITE_VARIANTS)}
    with psycopg.connect(urls[WRITE_VARIANTS[2]], autocommit=True) as conn:
        conn.execute(
            "create index run_logs_message_trgm on public.run_logs"
            " using gin (run_id, message extensions.gin_trgm_ops)"
        )
    stop = threading.Event()
    indexer = threading.Thread(target=_indexer_loop, args=(urls[WRITE_VARIANTS[1]], stop), daemon=True)
    runs: dict[str, str] = {}
    conns: dict[str, psycopg.Connection[Any]] = {}
    for name, url in urls.items():
        conns[name] = psycopg.connect(url, autocommit=True)
        _, ids = make_tenant(conns[name], 1)
        runs[name] = ids[0]
    rnd = random.Random(3)
    per_round = max(batch, total_lines // rounds)
    rates: dict[str, list[float]] = {name: [] for name in urls}
    counter = 0
    indexer.start()
    try:
        for _ in range(rounds):
            for name in urls:
                payloads = []
                for _b in range(per_round // batch):
                    lines = []
                    for _i in range(batch):
                        counter += 1
                        w = rnd.sample(WORDS, 4)
                        lines.append(
                            {
                                "level": "info",
                                "message": f"{w[0]} {w[1]} id={counter:08d} took "
                                f"{rnd.randrange(999)}ms {w[2]} {w[3]} req-{rnd.getrandbits(40):010x}",
                            }
                        )
                    payloads.append(json.dumps(lines))
                start = time.perf_counter()
                for p in payloads:
                    conns[name].execute("select append_run_logs(%s, %s::jsonb)", (runs[name], p))
                rates[name].append(len(payloads) * batch / (time.perf_counter() - start))
    finally:
        stop.set()
        indexer.join(timeout=60)
        for c in conns.values():
            c.close()
    with psycopg.connect(urls[WRITE_VARIANTS[1]]) as conn:
        state = conn.execute(
            "select coalesce(sum(indexed_seq), 0) from meshlogs.run_log_search_state"
        ).fetchone()
    print(f"background indexer kept up: {int(state[0]) if state else 0:,} of {counter // 3:,} lines indexed")
    return {name: statistics.median(r) for name, r in rates.items()}


# ----------------------------------------------------------------------------------------------- main


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(out)


async def run_reads(args: argparse.Namespace, admin_url: str, data_dir: Path) -> None:
    url = create_database(admin_url, "bench")
    with psycopg.connect(url, autocommit=True) as conn:
        user, runs = make_tenant(conn, 4)
        t0 = time.perf_counter()
        fill_run(conn, runs[0], args.backfill_lines, 11)
        if not args.skip_search:
            fill_run(conn, runs[1], args.search_lines, 1)
            fill_run(conn, runs[2], args.other_lines, 2)
            fill_run(conn, runs[3], args.other_lines, 3)
        print(f"loaded data in {time.perf_counter() - t0:.1f} s", flush=True)
        t0, indexed = time.perf_counter(), 0
        while done := conn.execute("select meshlogs.index_run_logs(20000)").fetchone()[0]:  # type: ignore[index]
            indexed += done
        took = time.perf_counter() - t0
        print(
            f"search indexer (background in serve): {indexed:,} lines in {took:.1f} s"
            f" = {indexed / max(took, 1e-9):,.0f} lines/s",
            flush=True,
        )
        conn.execute("vacuum analyze")
        terms = [] if args.skip_search else search_terms(conn, runs[1], args.search_lines)

    server = Server(url, data_dir, max(args.page, 1000))
    token = mint_access_token(SECRET, user_id=user, email="viewer@bench", ttl=3600)
    headers = {"apikey": mint_api_key(SECRET, "anon"), "Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            await rest_backfill(http, server.url, headers, runs[0], args.page)  # warm up (catalog, caches)
            rest_times, sql_times = [], []
            requests = 0
            for _ in range(args.rounds):
                elapsed, total, requests = await rest_backfill(http, server.url, headers, runs[0], args.page)
                assert total == args.backfill_lines, total
                rest_times.append(elapsed)
                sql_elapsed, sql_total = await asyncio.to_thread(sql_backfill, url, user, runs[0], args.page)
                assert sql_total == args.backfill_lines
                sql_times.append(sql_elapsed)
            rest_s, sql_s = statistics.median(rest_times), statistics.median(sql_times)
            print()
            print(
                f"backfill: {args.backfill_lines:,} lines of one run, pages of {args.page} "
                f"({requests} requests), median of {args.rounds}"
            )
            print(
                table(
                    [
                        [
                            "REST (viewer JWT, RLS)",
                            f"{rest_s:.2f}",
                            f"{args.backfill_lines / rest_s:,.0f}",
                            f"{rest_s / requests * 1000:.1f}",
                            "PASS" if rest_s <= 2.0 else "FAIL",
                        ],
                        [
                            "SQL, same role/claims",
                            f"{sql_s:.2f}",
                            f"{args.backfill_lines / sql_s:,.0f}",
                            f"{sql_s / requests * 1000:.1f}",
                            "",
                        ],
                    ],
                    ["path", "total s", "lines/s", "ms/page", "target <= 2 s"],
                )
            )

            if terms:
                rows = []
                for label, term in terms:
                    ilike_t, n = await rest_search(
                        http, server.url, headers, runs[1], term, args.ilike_repeat, False
                    )
                    rpc_t, n_rpc = await rest_search(
                        http, server.url, headers, runs[1], term, args.search_repeat, True
                    )
                    assert n == n_rpc, (term, n, n_rpc)
                    rls_t, rls_plan = await asyncio.to_thread(
                        sql_search, url, user, runs[1], term, args.ilike_repeat
                    )
                    own_t, own_plan = await asyncio.to_thread(
                        sql_search, url, None, runs[1], term, args.search_repeat
                    )
                    rows.append(
                        [
                            label,
                            repr(term),
                            str(n),
                            f"{pct(rpc_t, 0.5) * 1000:.1f}",
                            f"{pct(rpc_t, 0.95) * 1000:.1f}",
                            f"{pct(own_t, 0.5) * 1000:.1f}",
                            own_plan,
                            f"{pct(ilike_t, 0.5) * 1000:.0f}",
                            f"{pct(ilike_t, 0.95) * 1000:.0f}",
                            f"{pct(rls_t, 0.5) * 1000:.0f}",
                            rls_plan,
                        ]
                    )
                print()
                print(
                    f"search: a {args.search_lines:,}-line run (table: "
                    f"{args.search_lines + args.backfill_lines + 2 * args.other_lines:,} lines), first 200 "
                    f"matches by seq; rpc = POST /rest/v1/rpc/search_run_logs ({args.search_repeat} "
                    "requests), "
                    f"ilike = GET ...&message=ilike.*TERM* under RLS ({args.ilike_repeat} requests)"
                )
                print(
                    table(
                        rows,
                        [
                            "term",
                            "pattern",
                            "rows",
                            "rpc p50 ms",
                            "rpc p95 ms",
                            "SQL owner p50",
                            "owner plan",
                            "ilike p50 ms",
                            "ilike p95 ms",
                            "SQL RLS p50",
                            "RLS plan",
                        ],
                    )
                )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backfill-lines", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=1000, help="rows per backfill request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--search-lines", type=int, default=1_000_000)
    parser.add_argument("--other-lines", type=int, default=200_000, help="lines in each of two other runs")
    parser.add_argument("--search-repeat", type=int, default=20, help="requests per term (rpc, owner SQL)")
    parser.add_argument("--ilike-repeat", type=int, default=5, help="requests per term (ilike under RLS)")
    parser.add_argument("--write-lines", type=int, default=150_000, help="lines appended per database")
    parser.add_argument("--write-batch", type=int, default=1000)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-write-cost", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="meshlogs-rest-bench-") as tmp:
        pg = start_embedded(Path(tmp) / "pg", cleanup="delete")
        try:
            asyncio.run(run_reads(args, pg.url, Path(tmp) / "data"))
            if not args.skip_write_cost:
                rates = write_cost(pg.url, args.write_lines, args.write_batch, rounds=5)
                base = rates[WRITE_VARIANTS[0]]
                print()
                print(
                    f"write cost of search indexing: append_run_logs() of {args.write_batch}-line batches,"
                    " one writer, median of 5 interleaved rounds"
                )
                print(
                    table(
                        [
                            [name, f"{rates[name]:,.0f}", f"{rates[name] / base:.2f}"]
                            for name in WRITE_VARIANTS
                        ],
                        ["search indexing", "lines/s", "ratio"],
                    )
                )
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
