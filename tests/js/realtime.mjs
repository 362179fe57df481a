// Drives supabase-js' realtime against a meshlogs server and prints one JSON object per line on
// stdout (events as they happen), for tests/realtime/test_supabase_js.py to follow.
//
// usage: node --experimental-websocket realtime.mjs <scenario>
// env:   MESHLOGS_URL, MESHLOGS_ANON_KEY, USER_TOKEN (optional), RUN_ID, VSN ("1.0.0" | "2.0.0"),
//        WANT (how many changes before exiting), WANT_RUNS (how many workflow_runs UPDATEs too),
//        TIMEOUT_MS.
import { createClient } from '@supabase/supabase-js';

const url = process.env.MESHLOGS_URL;
const anonKey = process.env.MESHLOGS_ANON_KEY;
const vsn = process.env.VSN || '2.0.0';
const timeoutMs = Number(process.env.TIMEOUT_MS || 30000);
const want = Number(process.env.WANT || 0);
const wantRuns = Number(process.env.WANT_RUNS || 0);

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
setTimeout(() => { emit({ event: 'timeout' }); process.exit(3); }, timeoutMs).unref?.();

// With a user token, supabase-js' own token source is the `accessToken` option (what an app using
// its own auth does); realtime re-reads it on every (re)connect and join, so rejoins stay authorized.
// (A bare realtime.setAuth(token) is overwritten by supabase-js' source, the anon key, on reconnect.)
//
// `frames`, when given, records what crosses the socket: the platform WebSocket is passed through
// realtime-js' `transport` option, wrapped only to look at each frame (binary frames by their kind
// byte: 3 = user broadcast push, 4 = user broadcast), not to change it.
function client(frames) {
  const token = process.env.USER_TOKEN;
  const options = {
    realtime: { vsn, params: { log_level: 'error' } },
  };
  if (frames) options.realtime.transport = watchedTransport(frames);
  if (token) options.accessToken = async () => token;
  else options.auth = { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false };
  return createClient(url, anonKey, options);
}

function watchedTransport(frames) {
  return class WatchedWebSocket extends WebSocket {
    constructor(address, protocols) {
      super(address, protocols);
      this.addEventListener('message', (e) => {
        if (typeof e.data === 'string') frames.textIn += 1;
        else frames.binaryIn.push(new Uint8Array(e.data)[0]);
      });
    }

    send(data) {
      if (typeof data === 'string') frames.textOut += 1;
      else frames.binaryOut.push(new Uint8Array(data)[0]);
      super.send(data);
    }
  };
}

const newFrames = () => ({ textIn: 0, textOut: 0, binaryIn: [], binaryOut: [] });

async function changes() {
  const supabase = client();
  if (process.env.USER_TOKEN) await supabase.realtime.setAuth();
  const run = process.env.RUN_ID;
  let got = 0;
  let runs = 0;
  const finished = () => {
    if (want && got >= want && runs >= wantRuns) { emit({ event: 'done' }); process.exit(0); }
  };
  const channel = supabase
    .channel(`run:${run}`)
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'run_logs', filter: `run_id=eq.${run}` },
        (p) => {
          emit({ event: 'change', type: p.eventType, seq: p.new.seq, message: p.new.message, run_id: p.new.run_id,
                 commit_timestamp: p.commit_timestamp });
          got += 1;
          finished();
        })
    .on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'workflow_runs', filter: `id=eq.${run}` },
        (p) => {
          emit({ event: 'run', type: p.eventType, status: p.new.status, old: p.old.status, id: p.new.id });
          runs += 1;
          finished();
        });
  channel.subscribe((status, error) => emit({ event: 'status', status, error: error ? String(error.message ?? error) : null }));
}

async function broadcast() {
  const frames = { a: newFrames(), b: newFrames() };
  const a = client(frames.a);
  const b = client(frames.b);
  const got = { a: [], b: [] };
  let sent = null;
  const cha = a.channel('room-js', { config: { broadcast: { ack: true, self: true } } })
    .on('broadcast', { event: 'ping' }, (p) => { got.a.push(p.payload); check(); });
  const chb = b.channel('room-js', { config: { broadcast: { ack: false, self: false } } })
    .on('broadcast', { event: 'ping' }, (p) => { got.b.push(p.payload); check(); });
  function check() {
    if (sent !== null && got.a.length >= 1 && got.b.length >= 1) {
      emit({ event: 'broadcasts', ...got, frames });
      process.exit(0);
    }
  }
  await new Promise((resolve) => chb.subscribe((s) => s === 'SUBSCRIBED' && resolve()));
  await new Promise((resolve) => cha.subscribe((s) => s === 'SUBSCRIBED' && resolve()));
  sent = await cha.send({ type: 'broadcast', event: 'ping', payload: { n: 1, text: 'héllo' } });
  emit({ event: 'sent', result: sent });
  check();
}

// A broadcast whose payload is an ArrayBuffer (realtime-js sends it as a kind-3 frame with binary
// encoding on vsn 2.0.0); the receivers get an ArrayBuffer back, from kind-4 frames.
async function binary() {
  const frames = { a: newFrames(), b: newFrames() };
  const a = client(frames.a);
  const b = client(frames.b);
  const bytes = Uint8Array.from(JSON.parse(process.env.BYTES));
  const got = { a: [], b: [] };
  let sent = null;
  const record = (who) => (p) => {
    const payload = p.payload;
    got[who].push({ isArrayBuffer: payload instanceof ArrayBuffer,
                    bytes: payload instanceof ArrayBuffer ? Array.from(new Uint8Array(payload)) : payload });
    check();
  };
  const cha = a.channel('bin-js', { config: { broadcast: { ack: true, self: true } } })
    .on('broadcast', { event: 'blob' }, record('a'));
  const chb = b.channel('bin-js', { config: { broadcast: { ack: false, self: false } } })
    .on('broadcast', { event: 'blob' }, record('b'));
  function check() {
    if (sent !== null && got.a.length >= 1 && got.b.length >= 1) {
      emit({ event: 'broadcasts', ...got, frames });
      process.exit(0);
    }
  }
  await new Promise((resolve) => chb.subscribe((s) => s === 'SUBSCRIBED' && resolve()));
  await new Promise((resolve) => cha.subscribe((s) => s === 'SUBSCRIBED' && resolve()));
  sent = await cha.send({ type: 'broadcast', event: 'blob', payload: bytes.buffer });
  emit({ event: 'sent', result: sent });
  check();
}

async function presence() {
  const a = client();
  const b = client();
  const cha = a.channel('lobby-js', { config: { presence: { key: 'alice' } } });
  const chb = b.channel('lobby-js', { config: { presence: { key: 'bob' } } });
  cha.on('presence', { event: 'sync' }, () => {
    const keys = Object.keys(cha.presenceState()).sort();
    emit({ event: 'sync', keys });
    if (keys.length === 2) process.exit(0);
  });
  chb.on('presence', { event: 'sync' }, () => {});
  await new Promise((resolve) => cha.subscribe(async (s) => { if (s === 'SUBSCRIBED') { await cha.track({ who: 'alice' }); resolve(); } }));
  await new Promise((resolve) => chb.subscribe(async (s) => { if (s === 'SUBSCRIBED') { await chb.track({ who: 'bob' }); resolve(); } }));
}

const scenarios = { changes, broadcast, binary, presence };
const name = process.argv[2];
if (!scenarios[name]) { console.error(`unknown scenario ${name}`); process.exit(2); }
scenarios[name]().catch((e) => { emit({ event: 'error', message: String(e?.stack ?? e) }); process.exit(1); });
