-- Deleting a run deletes its search chunks and indexing state too, not only its lines.
--
-- 0002 deletes a run's lines when its run_log_seq row goes (with the run); 0012 added
-- run_log_chunks, which hold a copy of the log text, and run_log_search_state. Without this they
-- would outlive the run forever. Same trigger, one function: replaced here rather than adding a
-- second trigger, so the whole cleanup of a run stays in one place.

create or replace function meshlogs.delete_run_lines() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  delete from public.run_logs where run_id = old.run_id;
  delete from meshlogs.run_log_chunks where run_id = old.run_id;
  delete from meshlogs.run_log_search_state where run_id = old.run_id;
  return old;
end
$$;
