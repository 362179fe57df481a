// Several supabase-js clients in one Node process, each with its own socket, driven from pytest
// (tests/realtime/test_supabase_js.py): stdout is one JSON event per line, stdin one JSON command
// per line.
//
// usage: node --experimental-websocket clients.mjs
// env:   MESHLOGS_URL, VSN ("1.0.0" | "2.0.0"), TIMEOUT_MS, SPEC: a JSON list of clients:
//          { who,           name used in every event and command
//            key,           the apikey supabase-js is created with (anon, service, or a bad one)
//            token,         optional: the access token, through supabase-js' `accessToken` option
//            table, event,  postgres_changes binding (default run_logs / INSERT)
//            filter }       optional filter, e.g. "run_id=eq.<uuid>"
// stdin: { "cmd": "setAuth", "who": ..., "token": ... }   supabase.realtime.setAuth(token)
//        { "cmd": "exit" }
// DEBUG_FRAMES=1 also prints every text frame a client sends ({ event: "sent", who, data }).
// stdout: { event: "ws", who, type: "connecting" | "open" | "close" | "error", url, code, reason }
//         { event: "status", who, status, error }
//         { event: "system", who, status, message, n }  (n: system messages with status ok so far)
//         { event: "change", who, type, table, seq, run_id, message, status, old_status }
//         { event: "setAuth", who, pushed }  (pushed: access_token frames this socket has sent)
//
// Every socket is the platform WebSocket wrapped through realtime-js' `transport` option, only to
// watch what crosses it (open/close codes, access_token pushes); supabase-js itself is unmodified.
import { createClient } from '@supabase/supabase-js';
import readline from 'node:readline';

const url = process.env.MESHLOGS_URL;
const vsn = process.env.VSN || '2.0.0';
const timeoutMs = Number(process.env.TIMEOUT_MS || 30000);
const spec = JSON.parse(process.env.SPEC || '[]');

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
setTimeout(() => { emit({ event: 'timeout' }); process.exit(3); }, timeoutMs).unref?.();

function watchedTransport(who, stats) {
  return class WatchedWebSocket extends WebSocket {
    constructor(address, protocols) {
      super(address, protocols);
      emit({ event: 'ws', who, type: 'connecting', url: String(address) });
      this.addEventListener('open', () => emit({ event: 'ws', who, type: 'open' }));
      this.addEventListener('error', () => emit({ event: 'ws', who, type: 'error' }));
      this.addEventListener('close', (e) => emit({ event: 'ws', who, type: 'close', code: e.code, reason: e.reason }));
    }

    send(data) {
      if (typeof data === 'string') {
        const msg = JSON.parse(data);
        const event = Array.isArray(msg) ? msg[3] : msg.event; // 2.0.0 arrays, 1.0.0 objects
        if (event === 'access_token') stats.accessTokenPushes += 1;
        if (process.env.DEBUG_FRAMES) emit({ event: 'sent', who, data: msg });
      }
      super.send(data);
    }
  };
}

const clients = {};

for (const c of spec) {
  const stats = { accessTokenPushes: 0, systemOk: 0 };
  const state = { token: c.token ?? null };
  const options = {
    realtime: { vsn, params: { log_level: 'error' }, transport: watchedTransport(c.who, stats) },
  };
  // The app's own token source (third-party auth); supabase-js re-reads it on connect and heartbeat.
  if (c.token !== undefined) options.accessToken = async () => state.token;
  else options.auth = { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false };
  const supabase = createClient(url, c.key, options);
  // As realtime.mjs does: without this, supabase-js 2.119 sent the phx_join with no access_token
  // (its own initial setAuth had not resolved yet) and never pushed one, so the channel ran with
  // the apikey's role.
  if (c.token !== undefined) await supabase.realtime.setAuth();
  const table = c.table || 'run_logs';
  const binding = { event: c.event || 'INSERT', schema: 'public', table };
  if (c.filter) binding.filter = c.filter;
  const channel = supabase
    .channel(c.topic || `t-${c.who}`)
    .on('postgres_changes', binding, (p) => {
      const row = p.new ?? {};
      emit({ event: 'change', who: c.who, type: p.eventType, table: p.table, seq: row.seq ?? null,
             run_id: row.run_id ?? null, message: typeof row.message === 'string' ? row.message.slice(0, 100) : null,
             status: row.status ?? null, old_status: p.old?.status ?? null });
    })
    .on('system', {}, (p) => {
      if (p.status === 'ok') stats.systemOk += 1;
      emit({ event: 'system', who: c.who, status: p.status, message: p.message, n: stats.systemOk });
    });
  channel.subscribe((status, error) =>
    emit({ event: 'status', who: c.who, status, error: error ? String(error.message ?? error) : null }));
  clients[c.who] = { supabase, channel, stats, state };
}

const commands = readline.createInterface({ input: process.stdin });
commands.on('line', async (line) => {
  try {
    const cmd = JSON.parse(line);
    if (cmd.cmd === 'exit') process.exit(0);
    if (cmd.cmd === 'setAuth') {
      const c = clients[cmd.who];
      c.state.token = cmd.token; // what the accessToken callback answers from now on (heartbeats)
      await c.supabase.realtime.setAuth(cmd.token);
      emit({ event: 'setAuth', who: cmd.who, pushed: c.stats.accessTokenPushes });
      return;
    }
    throw new Error(`unknown command ${line}`);
  } catch (e) {
    emit({ event: 'error', message: String(e?.stack ?? e) });
    process.exit(1);
  }
});
commands.on('close', () => process.exit(0));
