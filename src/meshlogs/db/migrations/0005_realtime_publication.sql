-- Change capture: the publication the realtime gateway (or Supabase Realtime) streams from.
--
-- supabase_realtime is Supabase's own publication name; on a hosted project it already exists and we
-- only add our tables to it. meshlogs_authz carries the rows that decide who may see what
-- (memberships, projects), so the gateway can invalidate cached authorization decisions from the same
-- ordered stream; clients can never subscribe to it.

do $$
declare
  t text;
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  if not (select puballtables from pg_publication where pubname = 'supabase_realtime') then
    foreach t in array array['run_logs', 'workflow_runs'] loop
      if not exists (select 1 from pg_publication_tables
                     where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = t) then
        execute format('alter publication supabase_realtime add table public.%I', t);
      end if;
    end loop;
  end if;

  if not exists (select 1 from pg_publication where pubname = 'meshlogs_authz') then
    create publication meshlogs_authz for table public.project_members, public.projects;
  end if;
end
$$;
