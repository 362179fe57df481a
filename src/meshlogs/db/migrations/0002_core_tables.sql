-- MeshHook's core tables (same columns as its create_core_tables migration) and meshlogs' own.
--
-- "if not exists" everywhere: on MeshHook's database these tables already exist and must be kept.
-- Private helpers live in schema "meshlogs", which the REST layer never exposes.

create schema if not exists meshlogs;
grant usage on schema meshlogs to anon, authenticated, service_role;

create or replace function meshlogs.touch_row() returns trigger language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- A run that reaches a final state gets its finish time, so the console can show a duration without
-- every writer having to remember it.
create or replace function meshlogs.stamp_run_finish() returns trigger language plpgsql as $$
begin
  new.updated_at := now();
  if new.status in ('succeeded', 'failed', 'canceled') and new.finished_at is null then
    new.finished_at := now();
  end if;
  return new;
end
$$;

create table if not exists public.projects (
  id uuid primary key default gen_random_uuid(),
  owner uuid not null,
  name text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists idx_projects_owner on public.projects (owner);

create table if not exists public.workflow_definitions (
  id uuid primary key default gen_random_uuid(),
  project_id uuid not null references public.projects (id) on delete cascade,
  slug text not null,
  version int not null default 1,
  definition jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (project_id, slug, version)
);
-- MeshHook's later migration adds a display name and description; the console shows them.
alter table public.workflow_definitions add column if not exists name text;
alter table public.workflow_definitions add column if not exists description text;
create index if not exists idx_workflow_definitions_project_id
  on public.workflow_definitions (project_id);

create table if not exists public.workflow_runs (
  id uuid primary key default gen_random_uuid(),
  project_id uuid not null references public.projects (id) on delete cascade,
  workflow_id uuid not null references public.workflow_definitions (id) on delete cascade,
  status text not null check (status in ('running', 'succeeded', 'failed', 'paused', 'canceled')),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists idx_workflow_runs_project_started
  on public.workflow_runs (project_id, started_at desc);
create index if not exists idx_workflow_runs_workflow_id on public.workflow_runs (workflow_id);

create table if not exists public.project_members (
  project_id uuid not null references public.projects (id) on delete cascade,
  user_id uuid not null,
  role text not null default 'viewer' check (role in ('viewer', 'editor', 'owner')),
  created_at timestamptz not null default now(),
  primary key (project_id, user_id)
);
create index if not exists idx_project_members_user on public.project_members (user_id);

-- The append counter: one row per run, row-locked by append_run_logs() until commit, which is what
-- makes seq dense and in commit order. Kept out of the realtime publication.
create table if not exists public.run_log_seq (
  run_id uuid primary key references public.workflow_runs (id) on delete cascade,
  last_seq bigint not null default 0
);

-- run_id has no foreign key on purpose: rows only ever come from append_run_logs(), which locks the
-- run's run_log_seq row (and that one references workflow_runs), so the per-row FK check (~3.5 us a
-- line, a quarter of the append cost) would prove nothing new. Deleting a run still deletes its
-- lines: run_log_seq cascades from workflow_runs and its delete trigger below removes them.
create table if not exists public.run_logs (
  id bigint generated always as identity primary key,
  run_id uuid not null,
  seq bigint not null,
  ts timestamptz not null default now(),
  level text not null check (level in ('debug', 'info', 'warn', 'error')),
  step text,
  message text not null,
  attrs jsonb not null default '{}'::jsonb check (jsonb_typeof(attrs) = 'object'),
  constraint run_logs_run_seq_key unique (run_id, seq)
);

-- Idempotency keys of applied batches: a batch retried after an ambiguous failure (connection lost
-- during COMMIT) finds its key here and is not applied twice. Kept for a day per run.
create table if not exists meshlogs.run_log_batches (
  run_id uuid not null references public.workflow_runs (id) on delete cascade,
  batch_key text not null,
  last_seq bigint not null,
  line_count int not null,
  created_at timestamptz not null default now(),
  primary key (run_id, batch_key)
);

create or replace function meshlogs.delete_run_lines() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  delete from public.run_logs where run_id = old.run_id;
  return old;
end
$$;
create or replace trigger meshlogs_delete_run_lines after delete on public.run_log_seq
  for each row execute function meshlogs.delete_run_lines();

create or replace trigger meshlogs_touch_projects before update on public.projects
  for each row execute function meshlogs.touch_row();
create or replace trigger meshlogs_touch_workflow_definitions
  before update on public.workflow_definitions
  for each row execute function meshlogs.touch_row();
create or replace trigger meshlogs_touch_workflow_runs before insert or update on public.workflow_runs
  for each row execute function meshlogs.stamp_run_finish();

-- The owner is always a member (MeshHook itself only knows projects.owner).
create or replace function meshlogs.add_owner_member() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.project_members (project_id, user_id, role)
  values (new.id, new.owner, 'owner')
  on conflict (project_id, user_id) do update set role = 'owner';
  return new;
end
$$;
create or replace trigger meshlogs_owner_member after insert or update of owner
  on public.projects for each row execute function meshlogs.add_owner_member();
insert into public.project_members (project_id, user_id, role)
  select id, owner, 'owner' from public.projects
  on conflict (project_id, user_id) do nothing;

-- Full old rows on UPDATE/DELETE: the gateway needs the old project_id/user_id of a membership that
-- was revoked, and subscribers of workflow_runs get old_record like Supabase gives them.
alter table public.workflow_runs replica identity full;
alter table public.project_members replica identity full;
alter table public.projects replica identity full;
