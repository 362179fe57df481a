"""Rows for ``bench/gateway_bench.py``: users, projects, memberships, workflows and runs, in bulk.

Everything is inserted as the superuser before the server starts (so the membership inserts do not
reach the gateway's replication stream as authorization invalidations mid-measurement). Ids come
from the bench's seeded RNG, so two runs with the same ``--seed`` create the same ids.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg

from meshlogs.auth.tokens import mint_access_token, verify_token
from meshlogs.realtime.claims import Claims

TOKEN_TTL = 4 * 3600


@dataclass
class Audience:
    """Runs and who watches them: ``viewers`` are (run, user id) pairs, each one subscriber."""

    label: str
    runs: list[str]
    viewers: list[tuple[str, str]] = field(default_factory=list)

    def per_run(self) -> dict[str, int]:
        counts = dict.fromkeys(self.runs, 0)
        for run, _user in self.viewers:
            counts[run] += 1
        return counts


class Seeder:
    def __init__(self, conn: psycopg.Connection[Any], seed: int) -> None:
        self.conn = conn
        self.rng = random.Random(seed)

    def _ids(self, n: int) -> list[str]:
        return [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(n)]

    def users(self, n: int, label: str) -> list[str]:
        ids = self._ids(n)
        self.conn.execute(
            "insert into auth.users (id, email, email_confirmed_at)"
            " select u, %s || u || '@bench.example', now() from unnest(%s::uuid[]) u",
            (label + "-", ids),
        )
        return ids

    def projects(self, owners: list[str]) -> list[tuple[str, str]]:
        """One project per owner (the owner becomes a member by trigger) with one workflow each."""
        projects, workflows = self._ids(len(owners)), self._ids(len(owners))
        self.conn.execute(
            "insert into projects (id, owner, name) select p, o, 'bench' from unnest(%s::uuid[], %s::uuid[])"
            " as t(p, o)",
            (projects, owners),
        )
        self.conn.execute(
            "insert into workflow_definitions (id, project_id, slug, name, definition)"
            " select w, p, 'bench', 'Bench', '{}' from unnest(%s::uuid[], %s::uuid[]) as t(w, p)",
            (workflows, projects),
        )
        return list(zip(projects, workflows, strict=True))

    def members(self, pairs: list[tuple[str, str]]) -> None:
        if pairs:
            self.conn.execute(
                "insert into project_members (project_id, user_id, role)"
                " select p, u, 'viewer' from unnest(%s::uuid[], %s::uuid[]) as t(p, u)"
                " on conflict do nothing",
                ([p for p, _ in pairs], [u for _, u in pairs]),
            )

    def runs(self, homes: list[tuple[str, str]]) -> list[str]:
        ids = self._ids(len(homes))
        self.conn.execute(
            "insert into workflow_runs (id, project_id, workflow_id, status)"
            " select r, p, w, 'running' from unnest(%s::uuid[], %s::uuid[], %s::uuid[]) as t(r, p, w)",
            (ids, [p for p, _ in homes], [w for _, w in homes]),
        )
        return ids

    def homes_of(self, run: str) -> list[tuple[str, str]]:
        row = self.conn.execute(
            "select project_id::text, workflow_id::text from workflow_runs where id = %s", (run,)
        ).fetchone()
        assert row is not None
        return [(str(row[0]), str(row[1]))]

    # -- shapes ---------------------------------------------------------------------------------------

    def per_run_projects(self, label: str, n_runs: int, viewers_per_run: int) -> Audience:
        """Each run in its own project; its viewers are distinct users, members of that project only."""
        users = self.users(n_runs * max(viewers_per_run, 1), label)
        owners = users[:: max(viewers_per_run, 1)]
        homes = self.projects(owners)
        pairs = (
            [(homes[i // viewers_per_run][0], u) for i, u in enumerate(users) if i % viewers_per_run]
            if viewers_per_run
            else []
        )
        self.members(pairs)
        runs = self.runs(homes)
        viewers = [(runs[i // viewers_per_run], u) for i, u in enumerate(users)] if viewers_per_run else []
        return Audience(label, runs, viewers)

    def shared_project(self, label: str, n_runs: int, n_users: int) -> Audience:
        """One project with ``n_users`` members (distinct users) and ``n_runs`` runs; viewer i watches
        run i % n_runs."""
        (owner,) = self.users(1, label + "-owner")
        homes = self.projects([owner])
        users = self.users(n_users, label)
        self.members([(homes[0][0], u) for u in users])
        runs = self.runs(homes * n_runs)
        return Audience(label, runs, [(runs[i % n_runs], u) for i, u in enumerate(users)])

    def bare_runs(self, label: str, n_runs: int) -> Audience:
        (owner,) = self.users(1, label + "-owner")
        homes = self.projects([owner])
        return Audience(label, self.runs(homes * n_runs))


def tokens(secret: str, audience: Audience) -> list[tuple[int, str, str]]:
    """(viewer id, run, access token) per viewer."""
    return [
        (i, run, mint_access_token(secret, user_id=user, email=f"{user}@bench.example", ttl=TOKEN_TTL))
        for i, (run, user) in enumerate(audience.viewers)
    ]


def claims(secret: str, specs: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """(viewer id, run, request.jwt.claims JSON) per viewer, exactly as the gateway would set them."""
    return [(vid, run, Claims.from_jwt(verify_token(secret, tok)).claims_json()) for vid, run, tok in specs]
