-- Whole-log search without taxing the write path.
--
-- Migration 0011 indexed every run_logs.message with trigrams. Measured (bench/writer_bench.py and
-- bench/rest_bench.py --write-cost, docs/benchmarks.md): extracting and inserting the trigrams of each
-- line costs about 35 µs of database CPU per line, which cut append throughput to ~17 % (212k -> 36k
-- lines/s). Indexing whole chunks of lines instead of single lines barely helps: the extraction itself
-- is the cost. So the trigram work moves OFF the append path:
--
--   * meshlogs.run_log_chunks holds each run's lines in fixed chunks (seq 1..200, 201..400, ...), the
--     messages joined by newlines, with a (run_id, body) trigram index;
--   * meshlogs.index_run_logs() fills complete chunks, called in the background by `meshlogs serve`
--     (every MESHLOGS_SEARCH_INDEX_INTERVAL seconds; on a hosted Supabase project, pg_cron can call
--     it); an append never waits for it, and two callers never do the same work (advisory lock);
--   * search_run_logs() finds candidate chunks with the index, re-checks each line of those chunks,
--     and scans directly the lines not chunked yet (at most one partial chunk, plus whatever the
--     indexer has not caught up with), so results never depend on the indexer having run.
--
-- Why 200 lines: a chunk's trigram set saturates as it grows (ids, hex digests, numbers), and then
-- every chunk "matches" and is re-checked. Measured on a 1,000,000-line run (bench/rest_bench.py):
-- a rare id takes 280 ms with 1000-line chunks, 18 ms with 200, 14 ms with 100; the indexer does
-- 139k, 100k and 90k lines/s. A phrase of two common words matches every chunk whatever the size
-- (~260 ms, half of a plain scan).
--
-- A chunk boundary never moves: chunk k is seq (k-1)*200+1 .. k*200, so a chunk, once written, is
-- final (a run's lines are append-only and dense) and the indexer is idempotent.

drop index if exists public.run_logs_message_trgm;

-- No btree index on purpose: the bodies live in TOAST, which the planner does not cost, so with any
-- other way in it would "cheaply" scan and detoast every chunk (measured: ~180 ms for a 1M-line run)
-- instead of asking the trigram index (~1 ms). Uniqueness comes from the indexer's advisory lock.
create table if not exists meshlogs.run_log_chunks (
  run_id uuid not null,
  first_seq bigint not null,
  last_seq bigint not null,
  body text not null
);

create table if not exists meshlogs.run_log_search_state (
  run_id uuid primary key,
  indexed_seq bigint not null default 0
);

revoke all on meshlogs.run_log_chunks, meshlogs.run_log_search_state from public, anon, authenticated;

do $$
declare
  v_trgm_schema text;
  v_composite boolean := exists (select 1 from pg_extension where extname = 'btree_gin');
begin
  select n.nspname into v_trgm_schema
  from pg_opclass o
  join pg_am am on am.oid = o.opcmethod and am.amname = 'gin'
  join pg_namespace n on n.oid = o.opcnamespace
  where o.opcname = 'gin_trgm_ops'
  limit 1;
  if not exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = 'meshlogs' and c.relname = 'run_log_chunks_body_trgm') then
    if v_composite then
      execute format('create index run_log_chunks_body_trgm on meshlogs.run_log_chunks'
                     ' using gin (run_id, body %I.gin_trgm_ops)', v_trgm_schema);
    else
      execute format('create index run_log_chunks_body_trgm on meshlogs.run_log_chunks'
                     ' using gin (body %I.gin_trgm_ops)', v_trgm_schema);
    end if;
  end if;
end
$$;

-- Index up to p_max_lines lines, in complete chunks of 200, oldest work first. Returns the number of
-- lines indexed (0: nothing to do, or another session is indexing right now).
create or replace function meshlogs.index_run_logs(p_max_lines int default 20000)
returns bigint
language plpgsql security definer set search_path = '' as $$
declare
  c_chunk constant int := 200;
  v_run record;
  v_done bigint := 0;
  v_from bigint;
  v_full bigint;
begin
  if not pg_try_advisory_xact_lock(hashtext('meshlogs.index_run_logs')) then
    return 0;
  end if;
  for v_run in
    select s.run_id, s.last_seq, coalesce(i.indexed_seq, 0) as indexed_seq
    from public.run_log_seq s
    left join meshlogs.run_log_search_state i on i.run_id = s.run_id
    where s.last_seq >= coalesce(i.indexed_seq, 0) + c_chunk
    order by s.last_seq - coalesce(i.indexed_seq, 0) desc
    limit 100
  loop
    exit when v_done >= p_max_lines;
    v_from := v_run.indexed_seq;
    -- Only complete chunks: seq 1..last_seq are all committed (last_seq is updated by the same
    -- transaction that inserts them), and a complete chunk never changes again.
    v_full := least(v_run.last_seq / c_chunk * c_chunk, v_from + greatest(p_max_lines - v_done, c_chunk));
    v_full := v_full / c_chunk * c_chunk;
    continue when v_full <= v_from;
    insert into meshlogs.run_log_chunks (run_id, first_seq, last_seq, body)
    select v_run.run_id, min(l.seq), max(l.seq), string_agg(l.message, E'\n' order by l.seq)
    from public.run_logs l
    where l.run_id = v_run.run_id and l.seq > v_from and l.seq <= v_full
    group by (l.seq - 1) / c_chunk;
    insert into meshlogs.run_log_search_state (run_id, indexed_seq) values (v_run.run_id, v_full)
      on conflict (run_id) do update set indexed_seq = greatest(excluded.indexed_seq,
                                                                 meshlogs.run_log_search_state.indexed_seq);
    v_done := v_done + (v_full - v_from);
  end loop;
  return v_done;
end
$$;

revoke all on function meshlogs.index_run_logs(int) from public, anon, authenticated;
grant execute on function meshlogs.index_run_logs(int) to service_role;

-- The search itself (replaces 0011's). Same contract as before: ids of matching lines of a run the
-- caller can see, in seq order after p_after_seq, at most p_limit. Three disjoint seq ranges, in order,
-- each tried only while matches are still missing:
--   1. the next 20,000 lines, walked in seq order (a frequent term is found here in a few ms, where the
--      trigram index would have to re-check every chunk);
--   2. beyond them, the indexed chunks whose body matches (trigram index), and their matching lines;
--   3. the lines past the indexed part (the partial last chunk and whatever the indexer has not done).
create or replace function meshlogs.search_run_log_ids(
  p_run_id uuid,
  p_query text,
  p_after_seq bigint,
  p_limit int,
  p_regex boolean
) returns setof bigint
language plpgsql stable security definer set search_path = '' set enable_seqscan = off as $$
declare
  c_walk constant bigint := 20000;
  v_after bigint := coalesce(p_after_seq, 0);
  v_limit int := least(greatest(coalesce(p_limit, 100), 1), 1000);
  v_found bigint;
  v_indexed bigint;
  v_op text;
  v_pattern text;
  v_chunk_pattern text;
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
  select s.indexed_seq into v_indexed from meshlogs.run_log_search_state s where s.run_id = p_run_id;
  v_indexed := coalesce(v_indexed, 0);

  if p_regex then
    v_op := '~*';
    v_pattern := p_query;
    perform '' ~* p_query;  -- a bad regex is the caller's error (2201B), whichever path runs
    -- In a chunk the lines are joined by newlines: newline-sensitive matching ((?n): ^ and $ match at
    -- line breaks, . and [^...] never cross one) makes a chunk match whenever one of its lines does.
    -- Patterns with their own leading options, a director (***) or string anchors (\A, \Z) cannot be
    -- rewritten safely; they skip the chunk index and scan the lines.
    if p_query !~ '^(\(\?|\*\*\*)' and position('\A' in p_query) = 0 and position('\Z' in p_query) = 0 then
      v_chunk_pattern := '(?n)' || p_query;
    else
      v_indexed := 0;
    end if;
  else
    v_op := 'ilike';
    v_pattern := '%' || replace(replace(replace(p_query, '\', '\\'), '%', '\%'), '_', '\_') || '%';
    v_chunk_pattern := v_pattern;
  end if;

  -- 1. walk
  return query execute format(
    'select l.id from public.run_logs l where l.run_id = $1 and l.seq > $2 and l.seq <= $2 + $4'
    ' and l.message %s $3 order by l.seq limit $5', v_op)
    using p_run_id, v_after, v_pattern, c_walk, v_limit;
  get diagnostics v_found = row_count;
  v_limit := v_limit - v_found;
  v_after := v_after + c_walk;
  if v_limit <= 0 then
    return;
  end if;

  -- 2. indexed chunks beyond the walk
  if v_indexed > v_after then
    return query execute format(
      'select l.id from (select c.first_seq, c.last_seq from meshlogs.run_log_chunks c'
      '   where c.run_id = $1 and c.last_seq > $2 and c.body %1$s $4) c'
      ' cross join lateral (select l.id, l.seq from public.run_logs l'
      '   where l.run_id = $1 and l.seq between greatest(c.first_seq, $2 + 1) and c.last_seq'
      '     and l.message %1$s $3) l'
      ' order by l.seq limit $5', v_op)
      using p_run_id, v_after, v_pattern, v_chunk_pattern, v_limit;
    get diagnostics v_found = row_count;
    v_limit := v_limit - v_found;
    if v_limit <= 0 then
      return;
    end if;
  end if;

  -- 3. the rest
  return query execute format(
    'select l.id from public.run_logs l where l.run_id = $1 and l.seq > $2'
    ' and l.message %s $3 order by l.seq limit $4', v_op)
    using p_run_id, greatest(v_after, v_indexed), v_pattern, v_limit;
end
$$;
