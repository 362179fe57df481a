"""The demo's users, projects and workflows: created once, found again on every later start.

Idempotent by natural keys (user email, project owner + name, workflow project + slug + version) and
serialized by an advisory lock, so running ``meshlogs demo`` twice, or two at once, never duplicates a
row. Alice owns "Acme Payments"; Bob owns "Bob's Integrations" and is a *viewer* in Alice's project, so
the console shows authorization at work: Bob sees both projects, Alice only her own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson
import psycopg

from meshlogs.demo.scenarios import WorkflowSpec
from meshlogs.store.users import create_user, find_user_by_email

__all__ = [
    "DEMO_USERS",
    "PROJECTS",
    "DemoProject",
    "DemoUser",
    "DemoWorkflow",
    "DemoWorld",
    "cancel_interrupted_runs",
    "seed_demo",
]


@dataclass(frozen=True)
class DemoUser:
    email: str
    password: str


@dataclass(frozen=True)
class DemoProject:
    key: str
    name: str
    owner: str  # email
    viewers: tuple[str, ...]
    workflows: tuple[WorkflowSpec, ...]


ALICE: Final = DemoUser("alice@example.com", "alice-demo-password")
BOB: Final = DemoUser("bob@example.com", "bob-demo-password")
DEMO_USERS: Final = (ALICE, BOB)

_CRM_TOKEN: Final = "crm_live_7Hq2bXv9RkP4sLm8Wd3TzY6"
_STRIPE_SECRET: Final = "whsec_demo_51MzQ8rT2vK9pL4xN7bJc"
_S3_KEY: Final = "AKIAZDEMO4Q7XRM2PL5N"
_SLACK_TOKEN: Final = "xoxb-demo-2417-Qm7TzKp9Lr3Vw8Yc"
_GITHUB_TOKEN: Final = "ghp_demo9fK2mQ7xL4tR8vB3nW6yH1cJ5"

PROJECTS: Final = (
    DemoProject(
        key="acme",
        name="Acme Payments",
        owner=ALICE.email,
        viewers=(BOB.email,),
        workflows=(
            WorkflowSpec(
                slug="stripe-payment-succeeded",
                name="Stripe payment → CRM",
                description="Mirror successful Stripe payments into the CRM; large ones get a review delay.",
                source="stripe",
                events=("payment_intent.succeeded", "charge.succeeded"),
                expression="data.object.{id: id, amount: amount_received, customer: customer,"
                " items: lines.data[*].{sku: price.product, amount: amount}}",
                method="POST",
                target="https://api.crm.example.com/v2/payments",
                secret_name="CRM_API_TOKEN",
                secret=_CRM_TOKEN,
                fail_rate=0.15,
            ),
            WorkflowSpec(
                slug="refund-requested",
                name="Refund requested → ledger",
                description="Book refunds in the ledger service.",
                source="stripe",
                events=("charge.refunded", "charge.refund.updated"),
                expression="data.object.{charge: id, refunded: amount_refunded,"
                " reason: refunds.data[0].reason}",
                method="PUT",
                target="https://ledger.acme.example.com/api/refunds",
                secret_name="STRIPE_WEBHOOK_SECRET",
                secret=_STRIPE_SECRET,
                fail_rate=0.3,
            ),
            WorkflowSpec(
                slug="nightly-ledger-export",
                name="Nightly ledger export",
                description="Export every ledger entry of the day to S3 (a long run).",
                source="scheduler",
                events=("cron",),
                expression="entries[?booked_at >= `today`].{id: id, amount: amount, account: account.iban}",
                method="PUT",
                target="https://acme-ledger-exports.s3.example.com/2026",
                secret_name="AWS_ACCESS_KEY_ID",
                secret=_S3_KEY,
                condition="length(slow_uploads) > `0`",
                long=True,
            ),
        ),
    ),
    DemoProject(
        key="bob",
        name="Bob's Integrations",
        owner=BOB.email,
        viewers=(),
        workflows=(
            WorkflowSpec(
                slug="github-push-to-slack",
                name="GitHub push → Slack",
                description="Announce pushes to main in #deploys.",
                source="github",
                events=("push", "pull_request.closed"),
                expression="{repo: repository.full_name, branch: ref,"
                " commits: commits[*].{id: id, msg: message}}",
                method="POST",
                target="https://slack.example.com/api/chat.postMessage",
                secret_name="SLACK_BOT_TOKEN",
                secret=_SLACK_TOKEN,
                condition="branch == 'refs/heads/main'",
                then_label="announce",
                else_label="ignore",
                fail_rate=0.1,
            ),
            WorkflowSpec(
                slug="issue-triage",
                name="Issue triage",
                description="Label new GitHub issues and assign an owner.",
                source="github",
                events=("issues.opened", "issues.reopened"),
                expression="issue.{number: number, title: title, labels: labels[*].name}",
                method="POST",
                target="https://api.github.example.com/repos/bob/app/issues/labels",
                secret_name="GITHUB_TOKEN",
                secret=_GITHUB_TOKEN,
                condition="contains(labels, 'bug')",
                then_label="bug",
                else_label="feature",
                fail_rate=0.25,
            ),
        ),
    ),
)


@dataclass(frozen=True)
class DemoWorkflow:
    id: str
    project_id: str
    spec: WorkflowSpec


@dataclass(frozen=True)
class DemoWorld:
    """What the seed found or created.

    Attributes:
        users: email -> user id.
        projects: project key -> project id.
        workflows: every demo workflow with its ids.
        had_runs: the demo projects already had runs (a second start: no history is seeded).
    """

    users: dict[str, str]
    projects: dict[str, str]
    workflows: tuple[DemoWorkflow, ...]
    had_runs: bool

    @property
    def secrets(self) -> list[str]:
        return [w.spec.secret for w in self.workflows]

    def workflow(self, slug: str) -> DemoWorkflow:
        return next(w for w in self.workflows if w.spec.slug == slug)


_LOCK_KEY: Final = 0x6D6573686C6F6773  # "meshlogs"
_INSERT_WORKFLOW: Final = (
    "insert into workflow_definitions (project_id, slug, version, name, description, definition)"
    " values (%s, %s, 1, %s, %s, %s::jsonb) on conflict (project_id, slug, version) do nothing"
)
_FIND_WORKFLOW: Final = (
    "select id::text from workflow_definitions where project_id = %s and slug = %s and version = 1"
)


def seed_demo(conn: psycopg.Connection[Any]) -> DemoWorld:
    """Create (or find) the demo users, projects, memberships and workflows; one transaction."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        users: dict[str, str] = {}
        for demo_user in DEMO_USERS:
            found = find_user_by_email(conn, demo_user.email)
            user = found if found is not None else create_user(conn, demo_user.email, demo_user.password)
            users[demo_user.email] = user.id
        projects: dict[str, str] = {}
        workflows: list[DemoWorkflow] = []
        for project in PROJECTS:
            owner = users[project.owner]
            row = conn.execute(
                "select id::text from projects where owner = %s and name = %s order by created_at limit 1",
                (owner, project.name),
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "insert into projects (owner, name) values (%s, %s) returning id::text",
                    (owner, project.name),
                ).fetchone()
            assert row is not None
            project_id = str(row[0])
            projects[project.key] = project_id
            for email in project.viewers:
                conn.execute(
                    "insert into project_members (project_id, user_id, role) values (%s, %s, 'viewer')"
                    " on conflict (project_id, user_id) do nothing",
                    (project_id, users[email]),
                )
            for spec in project.workflows:
                conn.execute(
                    _INSERT_WORKFLOW,
                    (
                        project_id,
                        spec.slug,
                        spec.name,
                        spec.description,
                        orjson.dumps(spec.definition()).decode(),
                    ),
                )
                found_wf = conn.execute(
                    _FIND_WORKFLOW,
                    (project_id, spec.slug),
                ).fetchone()
                assert found_wf is not None
                workflows.append(DemoWorkflow(str(found_wf[0]), project_id, spec))
        count = conn.execute(
            "select count(*) from workflow_runs where project_id = any(%s::uuid[])",
            (list(projects.values()),),
        ).fetchone()
        assert count is not None
    return DemoWorld(users, projects, tuple(workflows), had_runs=int(count[0]) > 0)


def cancel_interrupted_runs(conn: psycopg.Connection[Any], world: DemoWorld) -> int:
    """Runs still 'running' from a demo that was killed are canceled (with a line saying why)."""
    with conn.transaction():
        rows = conn.execute(
            "update workflow_runs set status = 'canceled' where status in ('running', 'paused')"
            " and project_id = any(%s::uuid[]) returning id::text",
            (list(world.projects.values()),),
        ).fetchall()
        line = orjson.dumps(
            [
                {
                    "level": "warn",
                    "step": "terminate",
                    "message": "the demo that ran this was stopped; run canceled",
                }
            ]
        ).decode()
        for (run_id,) in rows:
            conn.execute("select public.append_run_logs(%s::uuid, %s::jsonb)", (run_id, line))
    return len(rows)
