-- Server-side search over a whole log: `message ilike '%term%'` within one run stays fast on runs of
-- a million lines (the console's "search the whole log", GET /rest/v1/run_logs?run_id=eq.X&message=ilike.*term*).
--
-- One GIN index on (run_id, message gin_trgm_ops): btree_gin puts the run id into the same index as
-- the message trigrams, so a search reads only the posting lists of that run instead of every run's
-- matches (with a trigram-only index, a pattern whose trigrams are common rechecks rows of all runs,
-- which grows with the table, not the run). Where btree_gin cannot be installed, a trigram-only index
-- is created instead. Cost: inserts into run_logs do the GIN work too (measured in bench/rest_bench.py
-- --write-cost; GIN's pending list (fastupdate, on by default) batches it).
--
-- Extensions go to schema "extensions", as on Supabase (where both may already exist), so their
-- functions never appear in the REST API's schema (public). The index is built inside the migration's
-- transaction: on a large existing run_logs, build it beforehand with CREATE INDEX CONCURRENTLY under
-- the same name and this migration will keep it.

create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
create extension if not exists pg_trgm with schema extensions;

do $$
declare
  v_trgm_schema text;
  v_composite boolean := true;
begin
  begin
    create extension if not exists btree_gin with schema extensions;
  exception when others then
    v_composite := false;
    raise notice 'btree_gin unavailable (%); indexing run_logs.message trigrams alone', sqlerrm;
  end;

  select n.nspname into v_trgm_schema
  from pg_opclass o
  join pg_am am on am.oid = o.opcmethod and am.amname = 'gin'
  join pg_namespace n on n.oid = o.opcnamespace
  where o.opcname = 'gin_trgm_ops'
  limit 1;

  if not exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = 'public' and c.relname = 'run_logs_message_trgm') then
    if v_composite then
      execute format(
        'create index run_logs_message_trgm on public.run_logs using gin (run_id, message %I.gin_trgm_ops)',
        v_trgm_schema);
    else
      execute format(
        'create index run_logs_message_trgm on public.run_logs using gin (message %I.gin_trgm_ops)',
        v_trgm_schema);
    end if;
  end if;
end
$$;

-- Why a function as well: under RLS, Postgres may only use *leakproof* conditions as index
-- conditions ahead of the policy's own, and LIKE/ILIKE/regex operators are not leakproof. So for a
-- user, `GET /rest/v1/run_logs?run_id=eq.X&message=ilike.*term*` can narrow by run_id through an index
-- but must then test every line of the run (fine for frequent terms with a limit, ~seconds for a
-- rare term in a 1,000,000-line run). search_run_logs() gets the trigram index used:
--
--   1. meshlogs.search_run_log_ids() (SECURITY DEFINER, so no RLS) finds the matching ids with the
--      (run_id, message) index, after a fail-closed copy of run_logs' SELECT rule (the caller is a
--      member of the run's project, or is service_role): it never searches a run the caller can't see.
--   2. public.search_run_logs() (SECURITY INVOKER) returns those rows from run_logs *under the
--      caller's RLS*, so whatever the policies say, no row the caller may not SELECT comes back.
--
-- Callable as POST /rest/v1/rpc/search_run_logs (supabase.rpc('search_run_logs', {...})), here and
-- on a hosted Supabase project. p_query is a plain substring (case-insensitive), or a
-- case-insensitive POSIX regex with p_regex; matches come in seq order after p_after_seq, at most
-- p_limit (1..1000) per call, so a client pages with p_after_seq = the last seq it got.

create or replace function meshlogs.search_run_log_ids(
  p_run_id uuid,
  p_query text,
  p_after_seq bigint,
  p_limit int,
  p_regex boolean
) returns setof bigint
language plpgsql stable security definer set search_path = '' as $$
begin
  if p_query is null or length(p_query) = 0 or length(p_query) > 1000 then
    raise exception using errcode = '22023',
      message = 'search_run_logs: p_query must be 1 to 1000 characters';
  end if;
  if coalesce(auth.role(), '') <> 'service_role' and not exists (
       select 1 from public.workflow_runs r
       where r.id = p_run_id and r.project_id in (select meshlogs.my_projects())) then
    return;
  end if;
  -- Dynamic SQL: planned with the actual pattern every time (a cached generic plan would not know
  -- whether the trigram index or a walk in seq order is cheaper for this pattern).
  if p_regex then
    return query execute
      'select l.id from public.run_logs l where l.run_id = $1 and l.seq > $2 and l.message ~* $3'
      ' order by l.seq limit $4'
      using p_run_id, coalesce(p_after_seq, 0), p_query, least(greatest(coalesce(p_limit, 100), 1), 1000);
  else
    return query execute
      'select l.id from public.run_logs l where l.run_id = $1 and l.seq > $2 and l.message ilike $3'
      ' order by l.seq limit $4'
      using p_run_id, coalesce(p_after_seq, 0),
            '%' || replace(replace(replace(p_query, '\', '\\'), '%', '\%'), '_', '\_') || '%',
            least(greatest(coalesce(p_limit, 100), 1), 1000);
  end if;
end
$$;

revoke all on function meshlogs.search_run_log_ids(uuid, text, bigint, int, boolean) from public;
grant execute on function meshlogs.search_run_log_ids(uuid, text, bigint, int, boolean)
  to anon, authenticated, service_role;

create or replace function public.search_run_logs(
  p_run_id uuid,
  p_query text,
  p_after_seq bigint default 0,
  p_limit int default 100,
  p_regex boolean default false
) returns setof public.run_logs
language sql stable security invoker set search_path = '' as $$
  select l.* from public.run_logs l
  where l.id in (select meshlogs.search_run_log_ids(p_run_id, p_query, p_after_seq, p_limit, p_regex))
  order by l.seq
$$;

grant execute on function public.search_run_logs(uuid, text, bigint, int, boolean)
  to anon, authenticated, service_role;
