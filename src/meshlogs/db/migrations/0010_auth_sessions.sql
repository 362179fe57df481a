-- Sessions and rotating refresh tokens for meshlogs' Supabase Auth subset (/auth/v1).
--
-- As Supabase Auth does: a login opens a session; each refresh_token grant revokes the presented
-- token and issues its successor (rotation). A rotated token presented again within
-- MESHLOGS_REFRESH_TOKEN_REUSE_INTERVAL gets the same successor back (a retry after a lost response);
-- later, or when the successor has itself been rotated, the whole session is revoked (token theft).
--
-- Tokens are never stored: only sha256(token) (they are 256-bit random, so a fast hash is enough).
-- The successor a retry must get back is stored sealed with a key derived from its parent token,
-- which only the holder of the parent can derive. Nothing here is exposed through /rest/v1 (schema
-- meshlogs) and no client role may touch it.
--
-- On a hosted Supabase project these tables are unused (Supabase Auth serves /auth/v1 there).

create table if not exists meshlogs.auth_sessions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  refreshed_at timestamptz,
  revoked_at timestamptz,
  revoked_reason text check (revoked_reason in ('logout', 'refresh_token_reuse')),
  user_agent text,
  ip text
);
create index if not exists idx_auth_sessions_user on meshlogs.auth_sessions (user_id);

create table if not exists meshlogs.refresh_tokens (
  id bigint generated always as identity primary key,
  token_hash bytea not null unique,
  session_id uuid not null references meshlogs.auth_sessions (id) on delete cascade,
  parent_id bigint references meshlogs.refresh_tokens (id) on delete cascade,
  successor_sealed bytea,
  revoked boolean not null default false,
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);
create index if not exists idx_refresh_tokens_session on meshlogs.refresh_tokens (session_id);
create index if not exists idx_refresh_tokens_parent on meshlogs.refresh_tokens (parent_id);

alter table meshlogs.auth_sessions enable row level security;
alter table meshlogs.refresh_tokens enable row level security;
revoke all on meshlogs.auth_sessions, meshlogs.refresh_tokens from public, anon, authenticated, service_role;
