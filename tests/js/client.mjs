// Drives the official @supabase/supabase-js client against a meshlogs server and prints one JSON
// object with what each call returned, for tests/rest/test_supabase_js.py to check.
//
// usage: node [--experimental-websocket] client.mjs <scenario>
// env:   MESHLOGS_URL, MESHLOGS_ANON_KEY, MESHLOGS_SERVICE_KEY, plus scenario variables (below).
import { createClient } from '@supabase/supabase-js';

const url = process.env.MESHLOGS_URL;
const anonKey = process.env.MESHLOGS_ANON_KEY;
const serviceKey = process.env.MESHLOGS_SERVICE_KEY;
const options = { auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false } };

// Only what the tests compare: errors keep their class name, status and code.
function err(error) {
  if (!error) return null;
  return { name: error.name, message: error.message, status: error.status ?? null, code: error.code ?? null,
           details: error.details ?? null, hint: error.hint ?? null };
}

async function auth() {
  const supabase = createClient(url, anonKey, options);
  const out = {};
  const email = process.env.SIGNUP_EMAIL;
  const password = process.env.PASSWORD;

  let r = await supabase.auth.signUp({ email, password, options: { data: { name: 'From JS' } } });
  out.signUp = { error: err(r.error), email: r.data.user?.email ?? null, hasSession: !!r.data.session,
                 metadata: r.data.user?.user_metadata ?? null };
  r = await supabase.auth.signUp({ email, password });
  out.signUpAgain = { error: err(r.error) };
  r = await supabase.auth.signUp({ email: 'short@example.com', password: '123' });
  out.signUpWeak = { error: err(r.error), reasons: r.error?.reasons ?? null };

  r = await supabase.auth.signInWithPassword({ email, password: 'wrong-password' });
  out.badLogin = { error: err(r.error), session: r.data.session };

  r = await supabase.auth.signInWithPassword({ email, password });
  const first = r.data.session;
  out.login = { error: err(r.error), userId: r.data.user?.id ?? null, tokenType: first?.token_type ?? null,
                expiresIn: first?.expires_in ?? null, expiresAt: first?.expires_at ?? null };

  r = await supabase.auth.refreshSession();
  const second = r.data.session;
  out.refresh = { error: err(r.error), rotated: !!second && second.refresh_token !== first.refresh_token,
                  userId: r.data.user?.id ?? null };

  r = await supabase.auth.getUser();
  out.getUser = { error: err(r.error), email: r.data.user?.email ?? null, id: r.data.user?.id ?? null };

  // The first refresh token was rotated away long ago (reuse interval 0 in this server): reusing it
  // must fail and revoke the session.
  const other = createClient(url, anonKey, options);
  r = await other.auth.refreshSession({ refresh_token: first.refresh_token });
  out.reuse = { error: err(r.error) };
  r = await supabase.auth.refreshSession();
  out.afterReuse = { error: err(r.error) };

  // A fresh login, then sign out: the access token stops working for /user.
  r = await supabase.auth.signInWithPassword({ email, password });
  const third = r.data.session;
  out.relogin = { error: err(r.error) };
  r = await supabase.auth.signOut();
  out.signOut = { error: err(r.error) };
  r = await supabase.auth.getUser(third.access_token);
  out.getUserAfterSignOut = { error: err(r.error), user: r.data.user };
  r = await other.auth.refreshSession({ refresh_token: third.refresh_token });
  out.refreshAfterSignOut = { error: err(r.error) };
  return out;
}

async function signupDisabled() {
  const supabase = createClient(url, anonKey, options);
  const r = await supabase.auth.signUp({ email: 'nobody@example.com', password: 'long-enough' });
  return { signUp: { error: err(r.error) } };
}

async function rest() {
  const run = process.env.RUN_ID;
  const otherRun = process.env.OTHER_RUN_ID;
  const supabase = createClient(url, anonKey, options);
  const out = {};
  let r = await supabase.auth.signInWithPassword({ email: process.env.EMAIL, password: process.env.PASSWORD });
  out.login = { error: err(r.error) };

  r = await supabase.from('run_logs').select('*').eq('run_id', run).gt('seq', 2)
    .order('seq', { ascending: true }).range(0, 4);
  out.page = { error: err(r.error), status: r.status, seqs: (r.data ?? []).map((x) => x.seq),
               keys: r.data && r.data[0] ? Object.keys(r.data[0]) : null };

  r = await supabase.from('run_logs').select('seq', { count: 'exact' }).eq('run_id', run)
    .order('seq', { ascending: false }).range(0, 2);
  out.counted = { error: err(r.error), status: r.status, count: r.count, seqs: (r.data ?? []).map((x) => x.seq) };

  r = await supabase.from('run_logs').select('*', { count: 'exact', head: true }).eq('run_id', run);
  out.head = { error: err(r.error), status: r.status, count: r.count, data: r.data };

  r = await supabase.from('run_logs').select('seq,message').eq('run_id', run).ilike('message', '%NEEDLE%')
    .order('seq');
  out.ilike = { error: err(r.error), seqs: (r.data ?? []).map((x) => x.seq) };

  r = await supabase.rpc('search_run_logs', { p_run_id: run, p_query: 'needle', p_limit: 10 });
  out.search = { error: err(r.error), seqs: (r.data ?? []).map((x) => x.seq) };

  r = await supabase.rpc('search_run_logs', { p_run_id: otherRun, p_query: 'b1' });
  out.searchOther = { error: err(r.error), rows: r.data };

  r = await supabase.from('run_logs').select('seq,level').eq('run_id', run).in('level', ['warn', 'error'])
    .order('seq');
  out.inFilter = { error: err(r.error), rows: r.data };

  r = await supabase.from('run_logs').select('seq').or('seq.eq.1,seq.eq.3').eq('run_id', run).order('seq');
  out.orFilter = { error: err(r.error), seqs: (r.data ?? []).map((x) => x.seq) };

  r = await supabase.from('run_logs').select('seq').eq('run_id', run).order('seq').limit(1).single();
  out.single = { error: err(r.error), data: r.data };

  r = await supabase.from('run_logs').select('seq').eq('run_id', run).eq('seq', 999999).maybeSingle();
  out.maybeSingle = { error: err(r.error), data: r.data };

  r = await supabase.from('run_logs').select('*').eq('run_id', otherRun);
  out.otherTenant = { error: err(r.error), rows: r.data };

  r = await supabase.from('no_such_table').select('*');
  out.unknownTable = { error: err(r.error), status: r.status };

  r = await supabase.from('run_logs').select('nope');
  out.unknownColumn = { error: err(r.error), status: r.status };

  r = await supabase.rpc('append_run_logs', { p_run_id: run, p_lines: [{ level: 'info', message: 'x' }] });
  out.rpcAsUser = { error: err(r.error), status: r.status };

  const service = createClient(url, serviceKey, options);
  r = await service.rpc('append_run_logs', {
    p_run_id: run,
    p_lines: [{ level: 'info', message: 'from supabase-js 1' }, { level: 'warn', message: 'from supabase-js 2', step: 'js' }],
  });
  out.rpc = { error: err(r.error), status: r.status, data: r.data };

  r = await service.rpc('append_run_logs', { p_run_id: run, p_lines: [{ level: 'loud', message: 'x' }] });
  out.rpcBadLine = { error: err(r.error), status: r.status };

  r = await service.rpc('no_such_function', { a: 1 });
  out.rpcUnknown = { error: err(r.error), status: r.status };

  r = await supabase.from('workflow_runs').update({ status: 'canceled' }).eq('id', run).select('id,status');
  out.update = { error: err(r.error), status: r.status, rows: r.data };
  return out;
}

const scenarios = { auth, signupDisabled, rest };
const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}`);
  process.exit(2);
}
try {
  const result = await scenarios[name]();
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
} catch (e) {
  console.error(e?.stack ?? String(e));
  process.exit(1);
}
