/**
 * Property tests of the merge / backfill / gap logic (ARCHITECTURE.md §5): random interleavings of
 * live frames (late, out of order, repeated, dropped), backfill pages of random size answered late,
 * failing fetches, channel errors, resyncs and offline spells. After every step the lines handed to
 * the view must be exactly 1..k for some k (no hole, no duplicate, no reordering), and once the
 * network heals and the run ends, exactly 1..N.
 *
 * The generator is seeded; a failure names its seed and the last steps. Re-run one scenario with
 * `PROP_SEED=<seed> npx vitest run src/lib/logstream.property.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import { LogMerger, LogStream, type ChannelHandlers, type LogStreamDeps, type StreamState } from './logstream';
import type { ChannelStatus, Clock } from './realtime';
import { row, seqs } from './testutil';
import type { LogRow, RunRow } from './types';

// ---- seeded randomness -----------------------------------------------------------------------

/** mulberry32: small, fast, good enough to explore interleavings; same seed, same scenario. */
function prng(seed: number) {
	let a = seed >>> 0;
	const next = (): number => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
	return {
		next,
		/** Integer in [lo, hi]. */
		int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
		chance: (p: number) => next() < p,
		pick<T>(xs: readonly T[]): T {
			return xs[Math.floor(next() * xs.length)];
		}
	};
}
type Rng = ReturnType<typeof prng>;

function seedList(count: number, base: number): number[] {
	const fixed = process.env.PROP_SEED;
	if (fixed) return [Number(fixed)];
	return Array.from({ length: count }, (_, i) => base + i);
}

/** The view must be 1..k: dense, ascending, starting at 1. Returns a description of what is wrong. */
function prefixProblem(got: number[]): string | null {
	for (let i = 0; i < got.length; i++) {
		if (got[i] !== i + 1) {
			return `view is not a prefix of 1..N: at index ${i} expected ${i + 1}, got ${got[i]} (…${got
				.slice(Math.max(0, i - 5), i + 5)
				.join(',')}…)`;
		}
	}
	return null;
}

/** Runs one scenario; on failure rethrows with the seed and the trail of steps that led there. */
async function withSeed(seed: number, body: (rng: Rng, log: (s: string) => void) => void | Promise<void>) {
	const rng = prng(seed);
	const trail: string[] = [];
	try {
		await body(rng, (s) => trail.push(s));
	} catch (err) {
		const msg = err instanceof Error ? err.message : String(err);
		throw new Error(
			`property failed for seed ${seed} (re-run with PROP_SEED=${seed}): ${msg}\nlast steps:\n  ${trail.slice(-40).join('\n  ')}`,
			{ cause: err }
		);
	}
}

// ---- LogMerger alone -------------------------------------------------------------------------

describe('LogMerger property: random live / backfill interleavings', () => {
	it('always shows 1..k, and 1..N once the table has been read to the end', async () => {
		for (const seed of seedList(500, 1)) {
			await withSeed(seed, (rng, log) => {
				const m = new LogMerger(rng.chance(0.3) ? rng.int(1, 8) : undefined);
				let written = 0;
				/** Table snapshots taken earlier, answered later (a slow REST page). */
				const staleReads: { after: number; upTo: number }[] = [];
				let inflight: number[] = [];
				const got: number[] = [];
				const dropP = rng.next() * 0.5;
				const take = (appended: LogRow[], what: string) => {
					got.push(...seqs(appended));
					const p = prefixProblem(got);
					if (p) throw new Error(`${what}: ${p}`);
					if (m.last !== got.length) throw new Error(`${what}: last=${m.last} but the view has ${got.length}`);
					for (const s of m.pending.keys()) if (s <= m.last) throw new Error(`${what}: holds ${s} <= last ${m.last}`);
				};
				const page = (after: number, upTo: number, size: number) => {
					const out: LogRow[] = [];
					for (let s = after + 1; s <= upTo && out.length < size; s++) out.push(row(s));
					return out;
				};
				const steps = rng.int(10, 120);
				for (let i = 0; i < steps; i++) {
					const r = rng.next();
					if (r < 0.3) {
						const k = rng.int(1, 6);
						for (let j = 0; j < k; j++) {
							written++;
							if (rng.chance(dropP)) continue;
							inflight.push(written);
							if (rng.chance(0.1)) inflight.push(written); // delivered twice
						}
						log(`write → ${written}`);
					} else if (r < 0.55 && inflight.length) {
						// Deliver a random subset, in random order.
						const n = rng.int(1, inflight.length);
						const batch: LogRow[] = [];
						for (let j = 0; j < n; j++) batch.push(row(inflight.splice(rng.int(0, inflight.length - 1), 1)[0]));
						log(`live [${seqs(batch).join(',')}]`);
						take(m.addLive(batch).appended, 'addLive');
					} else if (r < 0.7) {
						// Start a read of `seq > last` now; it may be answered much later.
						staleReads.push({ after: m.last, upTo: written });
						log(`read starts after ${m.last} (table has ${written})`);
					} else if (r < 0.9 && staleReads.length) {
						const read = staleReads.splice(rng.int(0, staleReads.length - 1), 1)[0];
						// A read only answers what it asked for, from the table as it was, capped at a random size.
						const upTo = rng.chance(0.5) ? read.upTo : written;
						const pg = page(read.after, upTo, rng.int(1, 10));
						log(`backfill page after ${read.after}: [${seqs(pg).join(',')}]`);
						take(m.addBackfill(pg).appended, 'addBackfill');
					} else if (r < 0.95) {
						// Reconnect: live frames in flight on the old channel are lost.
						log(`reconnect, ${inflight.length} frames lost`);
						inflight = [];
					} else {
						// A fresh page right now (what a resubscribe's backfill does).
						const pg = page(m.last, written, rng.int(1, 10));
						log(`fresh page: [${seqs(pg).join(',')}]`);
						take(m.addBackfill(pg).appended, 'addBackfill');
					}
				}
				// Heal: the last backfill reads the table to the end, page by page.
				for (let guard = 0; guard < 10_000; guard++) {
					const pg = page(m.last, written, rng.int(1, 10));
					if (!pg.length) break;
					take(m.addBackfill(pg).appended, 'final addBackfill');
				}
				expect(got).toEqual(Array.from({ length: written }, (_, i) => i + 1));
				expect(m.skipped).toBe(0);
			});
		}
	});
});

// ---- LogStream against a randomly misbehaving server -----------------------------------------

const RUN = 'run-1';

/** A clock whose time only moves when told to; timers fire in order, each followed by a settle. */
class ManualClock implements Clock {
	t = 1_700_000_000_000;
	private seq = 0;
	private readonly timers = new Map<number, { at: number; fn: () => void }>();
	now(): number {
		return this.t;
	}
	setTimeout(fn: () => void, ms: number): unknown {
		const id = ++this.seq;
		this.timers.set(id, { at: this.t + ms, fn });
		return id;
	}
	clearTimeout(handle: unknown): void {
		this.timers.delete(handle as number);
	}
	get pending(): number {
		return this.timers.size;
	}
	async advance(ms: number, after: () => void): Promise<void> {
		const end = this.t + ms;
		for (;;) {
			let best: [number, { at: number; fn: () => void }] | null = null;
			for (const e of this.timers) if (e[1].at <= end && (!best || e[1].at < best[1].at)) best = e;
			if (!best) break;
			this.timers.delete(best[0]);
			this.t = best[1].at;
			best[1].fn();
			await settle();
			after();
		}
		this.t = end;
	}
}

/** Lets every promise chain run to its end (nothing in the stream waits on a macrotask). */
const settle = () => new Promise<void>((r) => setImmediate(r));

interface FakeChannel {
	id: number;
	handlers: ChannelHandlers;
	onStatus: (s: ChannelStatus, err?: Error) => void;
	phase: 'joining' | 'subscribed';
	closed: boolean;
}

interface PendingFetch {
	after: number;
	limit: number;
	/** Table size when the request was sent (a page may reflect the table as it was then). */
	writtenAtRequest: number;
	resolve(rows: LogRow[]): void;
	reject(err: Error): void;
}

class ChaosServer {
	written = 0;
	run: RunRow = {
		id: RUN,
		project_id: 'p',
		workflow_id: 'w',
		status: 'running',
		started_at: '2026-01-01T00:00:00Z',
		finished_at: null
	};
	chan: FakeChannel | null = null;
	/** Live frames on their way, each bound to the channel that carries it. */
	inflight: { seq: number; ch: FakeChannel }[] = [];
	fetches: PendingFetch[] = [];
	online = true;
	dropP = 0;
	prepareFailP = 0;
	opens = 0;
	private chanSeq = 0;

	constructor(private readonly rng: Rng) {}

	deps(clock: Clock): LogStreamDeps {
		return {
			fetchLogs: (_run, after, limit) =>
				new Promise<LogRow[]>((resolve, reject) => {
					this.fetches.push({ after, limit, writtenAtRequest: this.written, resolve, reject });
				}),
			fetchRun: async () => ({ ...this.run }),
			open: (_run, handlers) => (onStatus) => {
				this.opens++;
				if (this.chan && !this.chan.closed) throw new Error('a second channel opened while one is still open');
				const ch: FakeChannel = { id: ++this.chanSeq, handlers, onStatus, phase: 'joining', closed: false };
				this.chan = ch;
				return () => {
					ch.closed = true;
					if (this.chan === ch) this.chan = null;
				};
			},
			prepare: async () => {
				if (this.rng.chance(this.prepareFailP)) throw new Error('token refresh failed: network');
			},
			isOnline: () => this.online,
			clock
		};
	}

	/** Commit k lines; each is sent live on the open channel (maybe late, twice, or never). */
	write(k: number): void {
		for (let i = 0; i < k; i++) {
			const seq = ++this.written;
			const ch = this.chan;
			if (!ch || ch.closed) continue;
			// Before SUBSCRIBED the change feed may or may not be carrying rows yet.
			if (ch.phase === 'joining' && this.rng.chance(0.5)) continue;
			if (this.rng.chance(this.dropP)) continue;
			this.inflight.push({ seq, ch });
			if (this.rng.chance(0.1)) this.inflight.push({ seq, ch });
		}
	}

	deliver(index: number): number | null {
		const [f] = this.inflight.splice(index, 1);
		if (f.ch.closed) return null; // a removed channel delivers nothing
		f.ch.handlers.onLog(row(f.seq));
		return f.seq;
	}

	/** Answer a REST page: `seq > after`, capped at `cap` rows, from the table now or as it was. */
	answer(index: number, cap: number, stale: boolean): LogRow[] {
		const [f] = this.fetches.splice(index, 1);
		const upTo = stale ? f.writtenAtRequest : this.written;
		const out: LogRow[] = [];
		for (let s = f.after + 1; s <= upTo && out.length < Math.min(cap, f.limit); s++) out.push(row(s));
		f.resolve(out);
		return out;
	}

	fail(index: number): void {
		const [f] = this.fetches.splice(index, 1);
		f.reject(new Error('fetch failed: network'));
	}
}

describe('LogStream property: random interleavings of frames, pages, drops and reconnects', () => {
	it('always shows 1..k, and exactly 1..N once the network heals and the run ends', async () => {
		/** What the scenarios exercised, summed: proof the generator reaches the interesting paths. */
		const seen = { scenarios: 0, lines: 0, reopens: 0, restored: 0, duplicates: 0, held: 0, stalePages: 0, failedFetches: 0 };
		for (const seed of seedList(300, 10_001)) {
			await withSeed(seed, async (rng, log) => {
				const server = new ChaosServer(rng);
				server.dropP = rng.next() * 0.4;
				server.prepareFailP = rng.chance(0.3) ? 0.1 : 0;
				const clock = new ManualClock();
				const got: LogRow[] = [];
				const states: StreamState[] = [];
				const stream = new LogStream(
					RUN,
					server.deps(clock),
					{ rows: (rs) => got.push(...rs), state: (s) => states.push(s), run: () => {}, notice: () => {} },
					{ pageSize: rng.int(1, 8), tailCheckMs: rng.pick([0, 3_000, 30_000]) }
				);
				const check = (what: string) => {
					const view = seqs(got);
					const p = prefixProblem(view);
					if (p) throw new Error(`after ${what}: ${p}`);
					if (view.length > server.written) throw new Error(`after ${what}: ${view.length} lines shown, ${server.written} written`);
					if (stream.merger.last !== view.length) throw new Error(`after ${what}: merger.last=${stream.merger.last}, view ${view.length}`);
					for (const q of stream.merger.pending.keys()) if (q <= stream.merger.last) throw new Error(`after ${what}: holds ${q} <= last`);
					// Each line is restored (and announced) at most once.
					if (stream.restoredTotal > view.length) throw new Error(`after ${what}: ${stream.restoredTotal} lines counted as restored, ${view.length} shown`);
					const st = stream.state;
					if (st.kind === 'failed') throw new Error(`after ${what}: stream failed: ${st.message}`);
				};

				server.write(rng.int(0, 30)); // history before the page opened
				await stream.start();
				await settle();
				check('start');

				const steps = rng.int(20, 100);
				for (let i = 0; i < steps; i++) {
					const r = rng.next();
					let what: string;
					if (r < 0.2) {
						const k = rng.int(1, 5);
						server.write(k);
						what = `write ${k} (→ ${server.written}, ${server.inflight.length} in flight)`;
					} else if (r < 0.38 && server.inflight.length) {
						const n = rng.int(1, Math.min(4, server.inflight.length));
						const seen: (number | null)[] = [];
						for (let j = 0; j < n; j++) seen.push(server.deliver(rng.int(0, server.inflight.length - 1)));
						what = `live [${seen.map((s) => s ?? 'lost').join(',')}]`;
					} else if (r < 0.55 && server.fetches.length) {
						const idx = rng.int(0, server.fetches.length - 1);
						if (rng.chance(0.06)) {
							server.fail(idx);
							seen.failedFetches++;
							what = 'fetch fails';
						} else {
							const f = server.fetches[idx];
							const stale = rng.chance(0.4);
							if (stale && f.writtenAtRequest < server.written) seen.stalePages++;
							const pg = server.answer(idx, rng.int(1, 10), stale);
							what = `page after ${f.after} limit ${f.limit}${stale ? ' (stale)' : ''}: [${seqs(pg).join(',')}]`;
						}
					} else if (r < 0.65 && server.chan?.phase === 'joining') {
						server.chan.phase = 'subscribed';
						server.chan.onStatus('SUBSCRIBED');
						what = `SUBSCRIBED #${server.chan?.id}`;
					} else if (r < 0.7 && server.chan) {
						const s = rng.pick(['CHANNEL_ERROR', 'TIMED_OUT', 'CLOSED'] as const);
						const ch = server.chan;
						ch.onStatus(s, s === 'CHANNEL_ERROR' ? new Error('socket closed') : undefined);
						what = `${s} on #${ch.id}`;
					} else if (r < 0.74) {
						const reason = rng.pick(['online', 'visible', 'pageshow', 'wake']);
						stream.resync(reason);
						what = `resync (${reason})`;
					} else if (r < 0.77) {
						stream.poke();
						what = 'poke';
					} else if (r < 0.8 && server.chan?.phase === 'subscribed') {
						server.chan.handlers.onSystem(true, 'Subscribed to PostgreSQL');
						what = 'system ok';
					} else if (r < 0.83) {
						if (server.online) {
							server.online = false;
							stream.markOffline();
							what = 'offline';
						} else {
							server.online = true;
							stream.resync('online');
							what = 'online again';
						}
					} else {
						const ms = rng.pick([0, 500, 1000, 2000, 5000, 12_000]);
						await clock.advance(ms, () => check(`a timer during +${ms}ms`));
						what = `+${ms}ms`;
					}
					await settle();
					if (stream.merger.hasHole) seen.held++;
					log(`${what} → view 1..${got.length}, state ${stream.state.kind}`);
					check(what);
				}

				// Heal: network back, nothing dropped any more, every request answered (capped at the
				// server's max-rows, which may be below the page size asked for).
				log('--- heal ---');
				server.dropP = 0;
				server.prepareFailP = 0;
				server.online = true;
				const maxRows = rng.chance(0.5) ? rng.int(1, 8) : 1000;
				const pump = async (done: () => boolean, what: string) => {
					for (let round = 0; !done(); round++) {
						if (round > 300) throw new Error(`${what}: stuck in ${JSON.stringify(stream.state)}, ${server.fetches.length} fetches pending`);
						while (server.inflight.length) server.deliver(0);
						while (server.fetches.length) server.answer(0, maxRows, false);
						if (server.chan?.phase === 'joining') {
							server.chan.phase = 'subscribed';
							server.chan.onStatus('SUBSCRIBED');
						}
						await settle();
						check(what);
						if (done()) break;
						await clock.advance(1000, () => check(`a timer while ${what}`));
						await settle();
						check(what);
					}
				};
				const quiet = () => !server.fetches.length && !server.inflight.length;

				// A resubscribe (the network coming back) must catch up completely, even on lines
				// whose live frames were lost and that no later line revealed.
				stream.resync('online');
				await pump(() => stream.state.kind === 'live' && quiet(), 'resubscribing');
				log(`caught up: view 1..${got.length} of ${server.written}`);
				expect(seqs(got)).toEqual(Array.from({ length: server.written }, (_, i) => i + 1));

				// The run ends (lines written at the very end, some frames lost): the last backfill
				// leaves exactly 1..N.
				server.dropP = 0.5;
				server.write(rng.int(0, 5));
				server.dropP = 0;
				server.run = { ...server.run, status: 'succeeded', finished_at: '2026-01-01T01:00:00Z' };
				server.chan?.handlers.onRun({ ...server.run });
				log('run finished');
				await pump(() => stream.state.kind === 'finished' && quiet(), 'finishing');
				expect(states.at(-1)).toEqual({ kind: 'finished', status: 'succeeded' });
				expect(seqs(got)).toEqual(Array.from({ length: server.written }, (_, i) => i + 1));
				stream.stop();
				expect(clock.pending).toBe(0);
				seen.scenarios++;
				seen.lines += server.written;
				seen.reopens += server.opens - 1;
				seen.restored += stream.restoredTotal;
				seen.duplicates += stream.merger.duplicates;
			});
		}
		if (!process.env.PROP_SEED) {
			for (const [k, v] of Object.entries(seen)) expect(v, `scenarios never exercised: ${k}`).toBeGreaterThan(k === 'scenarios' ? 299 : 50);
		}
	}, 60_000);
});
