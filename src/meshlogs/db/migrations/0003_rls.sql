-- Row level security: a user sees a project's rows when auth.uid() is a member of that project.
--
-- Roles inside a project: viewer (read), editor (also write definitions and runs), owner (also manage
-- the project and its members). anon sees nothing. service_role has BYPASSRLS. The membership lookups
-- are SECURITY DEFINER functions so that project_members' own policy does not recurse into itself.

create or replace function meshlogs.role_rank(p_role text) returns int
language sql immutable as $$
  select case p_role when 'viewer' then 1 when 'editor' then 2 when 'owner' then 3 else 0 end
$$;

-- Projects the caller is a member of with at least p_min_role. Used as `x in (select ...)`, which
-- Postgres evaluates once per query (a hashed subplan), not once per row.
create or replace function meshlogs.my_projects(p_min_role text default 'viewer')
returns setof uuid language sql stable security definer set search_path = '' as $$
  select m.project_id from public.project_members m
  where m.user_id = auth.uid()
    and meshlogs.role_rank(m.role) >= meshlogs.role_rank(p_min_role)
$$;

revoke all on function meshlogs.my_projects(text) from public;
grant execute on function meshlogs.my_projects(text) to anon, authenticated, service_role;
grant execute on function meshlogs.role_rank(text) to anon, authenticated, service_role;

alter table public.projects enable row level security;
alter table public.project_members enable row level security;
alter table public.workflow_definitions enable row level security;
alter table public.workflow_runs enable row level security;
alter table public.run_logs enable row level security;
alter table public.run_log_seq enable row level security;
alter table meshlogs.run_log_batches enable row level security;

-- projects
drop policy if exists meshlogs_select on public.projects;
create policy meshlogs_select on public.projects for select to authenticated
  using (id in (select meshlogs.my_projects()));
drop policy if exists meshlogs_insert on public.projects;
create policy meshlogs_insert on public.projects for insert to authenticated
  with check (owner = auth.uid());
drop policy if exists meshlogs_update on public.projects;
create policy meshlogs_update on public.projects for update to authenticated
  using (id in (select meshlogs.my_projects('owner')))
  with check (id in (select meshlogs.my_projects('owner')));
drop policy if exists meshlogs_delete on public.projects;
create policy meshlogs_delete on public.projects for delete to authenticated
  using (id in (select meshlogs.my_projects('owner')));

-- project_members: members see who else is in their projects; owners manage membership.
drop policy if exists meshlogs_select on public.project_members;
create policy meshlogs_select on public.project_members for select to authenticated
  using (project_id in (select meshlogs.my_projects()));
drop policy if exists meshlogs_insert on public.project_members;
create policy meshlogs_insert on public.project_members for insert to authenticated
  with check (project_id in (select meshlogs.my_projects('owner')));
drop policy if exists meshlogs_update on public.project_members;
create policy meshlogs_update on public.project_members for update to authenticated
  using (project_id in (select meshlogs.my_projects('owner')))
  with check (project_id in (select meshlogs.my_projects('owner')));
drop policy if exists meshlogs_delete on public.project_members;
create policy meshlogs_delete on public.project_members for delete to authenticated
  using (project_id in (select meshlogs.my_projects('owner')));

-- workflow_definitions and workflow_runs: members read, editors write, owners delete runs.
drop policy if exists meshlogs_select on public.workflow_definitions;
create policy meshlogs_select on public.workflow_definitions for select to authenticated
  using (project_id in (select meshlogs.my_projects()));
drop policy if exists meshlogs_insert on public.workflow_definitions;
create policy meshlogs_insert on public.workflow_definitions for insert to authenticated
  with check (project_id in (select meshlogs.my_projects('editor')));
drop policy if exists meshlogs_update on public.workflow_definitions;
create policy meshlogs_update on public.workflow_definitions for update to authenticated
  using (project_id in (select meshlogs.my_projects('editor')))
  with check (project_id in (select meshlogs.my_projects('editor')));
drop policy if exists meshlogs_delete on public.workflow_definitions;
create policy meshlogs_delete on public.workflow_definitions for delete to authenticated
  using (project_id in (select meshlogs.my_projects('editor')));

drop policy if exists meshlogs_select on public.workflow_runs;
create policy meshlogs_select on public.workflow_runs for select to authenticated
  using (project_id in (select meshlogs.my_projects()));
drop policy if exists meshlogs_insert on public.workflow_runs;
create policy meshlogs_insert on public.workflow_runs for insert to authenticated
  with check (project_id in (select meshlogs.my_projects('editor')));
drop policy if exists meshlogs_update on public.workflow_runs;
create policy meshlogs_update on public.workflow_runs for update to authenticated
  using (project_id in (select meshlogs.my_projects('editor')))
  with check (project_id in (select meshlogs.my_projects('editor')));
drop policy if exists meshlogs_delete on public.workflow_runs;
create policy meshlogs_delete on public.workflow_runs for delete to authenticated
  using (project_id in (select meshlogs.my_projects('owner')));

-- run_logs: you may read a run's lines exactly when you may see the run. Nobody but
-- append_run_logs() (service_role) writes them: there are no write policies and no write grants.
drop policy if exists meshlogs_select on public.run_logs;
create policy meshlogs_select on public.run_logs for select to authenticated
  using (run_id in (select r.id from public.workflow_runs r
                    where r.project_id in (select meshlogs.my_projects())));

-- run_log_seq and run_log_batches: no policies, so no user role sees or touches them.

-- Grants as Supabase gives them (RLS then filters), minus writes on the append-only tables.
grant usage on schema public to anon, authenticated, service_role;
grant select, insert, update, delete
  on public.projects, public.project_members, public.workflow_definitions, public.workflow_runs
  to anon, authenticated, service_role;
revoke all on public.run_logs from anon, authenticated;
grant select on public.run_logs to anon, authenticated;
grant select, delete on public.run_logs to service_role;
revoke all on public.run_log_seq from anon, authenticated;
grant select on public.run_log_seq to service_role;
revoke all on meshlogs.run_log_batches from anon, authenticated, service_role;
