-- append_run_logs(): the one way log lines get into run_logs.
--
-- Dense per-run seq (invariant 1): the run's counter row in run_log_seq is locked FOR UPDATE and
-- advanced by the batch size inside the caller's transaction. Concurrent appenders of one run queue
-- on that row lock until the holder commits, so seqs are handed out in commit order with no gap; a
-- rolled-back append rolls its reservation back with it. Appends to different runs never wait on
-- each other.
--
-- Bad input (invariant 6): the whole batch is checked before anything is written, and the first bad
-- line is named by its 0-based index; an error anywhere aborts the whole statement, so a batch is
-- applied entirely or not at all.

-- Messages longer than p_max UTF-8 bytes keep their head and get a visible marker. The result is
-- never longer than p_max bytes and is never cut inside a character.
create or replace function meshlogs.truncate_message(p_msg text, p_max int) returns text
language plpgsql immutable strict as $$
declare
  v_budget int := p_max - 40;  -- room for the marker
  v_keep text;
  v_over int;
begin
  if octet_length(p_msg) <= p_max then
    return p_msg;
  end if;
  v_keep := left(p_msg, v_budget);
  loop
    v_over := octet_length(v_keep) - v_budget;
    exit when v_over <= 0;
    v_keep := left(v_keep, length(v_keep) - greatest(1, v_over / 4));
  end loop;
  return v_keep || format(' … [truncated %s bytes]', octet_length(p_msg) - octet_length(v_keep));
end
$$;

create or replace function meshlogs.max_line_bytes() returns int language sql stable as $$
  select coalesce(nullif(current_setting('meshlogs.max_line_bytes', true), '')::int, 65536)
$$;

create or replace function public.append_run_logs(
  p_run_id uuid,
  p_lines jsonb,
  p_batch_key text default null
) returns bigint
language plpgsql security definer set search_path = '' as $$
declare
  v_n int;
  v_max int := meshlogs.max_line_bytes();
  v_prev bigint;
  v_bad record;
  v_done record;
begin
  if p_run_id is null then
    raise exception using errcode = '22004',
      message = 'append_run_logs: p_run_id must not be null';
  end if;
  if p_lines is null or jsonb_typeof(p_lines) <> 'array' then
    raise exception using errcode = '22023',
      message = 'append_run_logs: p_lines must be a JSON array of {level, message, step?, ts?, attrs?}';
  end if;
  v_n := jsonb_array_length(p_lines);
  if v_n > 10000 then
    raise exception using errcode = '54000',
      message = format('append_run_logs: at most 10000 lines per call, got %s', v_n),
      hint = 'split the batch; the writer SDK does this for you';
  end if;
  if p_batch_key is not null and (length(p_batch_key) = 0 or length(p_batch_key) > 200) then
    raise exception using errcode = '22023',
      message = 'append_run_logs: p_batch_key must be 1 to 200 characters';
  end if;

  select s.idx, s.reason into v_bad from (
    select e.ord - 1 as idx,
      case
        when jsonb_typeof(e.l) <> 'object' then 'must be a JSON object'
        when jsonb_typeof(e.l -> 'message') is distinct from 'string' then 'message must be a string'
        when jsonb_typeof(e.l -> 'level') is distinct from 'string'
          or (e.l ->> 'level') not in ('debug', 'info', 'warn', 'error')
          then format('level must be one of debug, info, warn, error (got %s)',
                      coalesce((e.l -> 'level')::text, 'nothing'))
        when jsonb_typeof(e.l -> 'step') not in ('string', 'null') then 'step must be a string or null'
        when length(e.l ->> 'step') > 200 then 'step must be at most 200 characters'
        when jsonb_typeof(e.l -> 'attrs') not in ('object', 'null')
          then 'attrs must be a JSON object'
        when octet_length((e.l -> 'attrs')::text) > v_max
          then format('attrs must be at most %s bytes as JSON', v_max)
        when jsonb_typeof(e.l -> 'ts') not in ('string', 'null')
          then 'ts must be an ISO 8601 timestamp string'
        when exists (select 1 from jsonb_object_keys(e.l) k
                     where k not in ('level', 'message', 'step', 'ts', 'attrs'))
          then 'unknown key (allowed: level, message, step, ts, attrs)'
      end as reason
    from jsonb_array_elements(p_lines) with ordinality as e(l, ord)
  ) s
  where s.reason is not null
  order by s.idx
  limit 1;
  if found then
    raise exception using errcode = '22023',
      message = format('append_run_logs: line %s: %s', v_bad.idx, v_bad.reason),
      hint = 'nothing from this batch was stored';
  end if;

  -- Reserve seqs: take the run's counter row lock (created on first append).
  begin
    insert into public.run_log_seq (run_id, last_seq) values (p_run_id, 0)
      on conflict (run_id) do nothing;
  exception when foreign_key_violation then
    raise exception using errcode = '23503',
      message = format('append_run_logs: run %s does not exist', p_run_id);
  end;
  select last_seq into v_prev from public.run_log_seq where run_id = p_run_id for update;

  if p_batch_key is not null then
    select b.last_seq, b.line_count into v_done from meshlogs.run_log_batches b
      where b.run_id = p_run_id and b.batch_key = p_batch_key;
    if found then
      if v_done.line_count <> v_n then
        raise exception using errcode = '22023',
          message = format('append_run_logs: batch key %L was already used for %s lines, not %s',
                           p_batch_key, v_done.line_count, v_n);
      end if;
      return v_done.last_seq;  -- already applied: a retry after an ambiguous failure
    end if;
  end if;

  if v_n = 0 then
    return v_prev;
  end if;

  begin
    insert into public.run_logs (run_id, seq, ts, level, step, message, attrs)
    select p_run_id, v_prev + e.ord,
           coalesce((e.l ->> 'ts')::timestamptz, now()),
           e.l ->> 'level',
           e.l ->> 'step',
           case when octet_length(e.l ->> 'message') <= v_max then e.l ->> 'message'
                else meshlogs.truncate_message(e.l ->> 'message', v_max) end,
           coalesce(nullif(e.l -> 'attrs', 'null'::jsonb), '{}'::jsonb)
    from jsonb_array_elements(p_lines) with ordinality as e(l, ord);
  exception when invalid_datetime_format or datetime_field_overflow
                 or invalid_time_zone_displacement_value then
    -- Find which line it was; only this rare path pays for a per-line check.
    for v_bad in
      select e.ord - 1 as idx, e.l ->> 'ts' as ts
      from jsonb_array_elements(p_lines) with ordinality as e(l, ord)
      where e.l ->> 'ts' is not null order by e.ord
    loop
      begin
        perform v_bad.ts::timestamptz;
      exception when others then
        raise exception using errcode = '22007',
          message = format('append_run_logs: line %s: ts %L is not a valid timestamp',
                           v_bad.idx, v_bad.ts),
          hint = 'nothing from this batch was stored';
      end;
    end loop;
    raise;
  end;

  update public.run_log_seq set last_seq = v_prev + v_n where run_id = p_run_id;
  if p_batch_key is not null then
    insert into meshlogs.run_log_batches (run_id, batch_key, last_seq, line_count)
      values (p_run_id, p_batch_key, v_prev + v_n, v_n);
    delete from meshlogs.run_log_batches
      where run_id = p_run_id and created_at < now() - interval '1 day';
  end if;
  return v_prev + v_n;
end
$$;

revoke all on function public.append_run_logs(uuid, jsonb, text) from public, anon, authenticated;
grant execute on function public.append_run_logs(uuid, jsonb, text) to service_role;
revoke all on function meshlogs.truncate_message(text, int) from public;
