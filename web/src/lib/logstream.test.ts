import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LogMerger, LogStream, type ChannelHandlers, type LogStreamDeps, type StreamState } from './logstream';
import { AuthLostError, type ChannelStatus } from './realtime';
import { row, rows, seqs } from './testutil';
import type { LogRow, RunRow, RunStatus } from './types';

describe('LogMerger', () => {
	it('appends in order and drops duplicates', () => {
		const m = new LogMerger();
		expect(seqs(m.addLive(rows(1, 3)).appended)).toEqual([1, 2, 3]);
		expect(seqs(m.addLive([row(2), row(3)]).appended)).toEqual([]);
		expect(m.duplicates).toBe(2);
		expect(m.last).toBe(3);
	});

	it('holds rows ahead of a hole until it is filled', () => {
		const m = new LogMerger();
		m.addLive(rows(1, 2));
		expect(m.addLive([row(5), row(4)]).appended).toEqual([]);
		expect(m.hasHole).toBe(true);
		const r = m.addBackfill([row(3), row(4)]);
		expect(seqs(r.appended)).toEqual([3, 4, 5]);
		expect(r.fromInput).toBe(1); // only 3 was new: 4 and 5 had come live
		expect(m.hasHole).toBe(false);
		expect(m.last).toBe(5);
	});

	it('reorders out-of-order live rows', () => {
		const m = new LogMerger();
		const out: number[] = [];
		for (const s of [2, 4, 1, 3, 3, 6, 5]) out.push(...seqs(m.addLive([row(s)]).appended));
		expect(out).toEqual([1, 2, 3, 4, 5, 6]);
		expect(m.duplicates).toBe(1);
	});

	it('counts duplicates between backfill and held rows once', () => {
		const m = new LogMerger();
		m.addLive([row(2), row(3)]);
		const r = m.addBackfill(rows(1, 3));
		expect(seqs(r.appended)).toEqual([1, 2, 3]);
		expect(r.fromInput).toBe(1);
		expect(m.pending.size).toBe(0);
	});

	it('skips seqs the table no longer has (backfill is authoritative)', () => {
		const m = new LogMerger();
		m.addLive([row(103)]);
		const r = m.addBackfill([row(101), row(102)]);
		expect(seqs(r.appended)).toEqual([101, 102, 103]);
		expect(m.skipped).toBe(100);
	});

	it('bounds the rows it holds', () => {
		const m = new LogMerger(3);
		m.addLive([row(10), row(11), row(12), row(13)]);
		expect(m.pending.size).toBe(3);
		expect(seqs(m.addBackfill(rows(1, 13)).appended)).toEqual(rows(1, 13).map((r) => r.seq));
	});
});

// ---- LogStream against a fake server -------------------------------------------------------

const RUN = 'run-1';

class FakeServer {
	table: LogRow[] = [];
	run: RunRow = {
		id: RUN,
		project_id: 'p',
		workflow_id: 'w',
		status: 'running',
		started_at: '2026-01-01T00:00:00Z',
		finished_at: null
	};
	handlers: ChannelHandlers | null = null;
	onStatus: ((s: ChannelStatus, err?: Error) => void) | null = null;
	opens = 0;
	closes = 0;
	fetches = 0;
	failFetch = false;
	prepareError: Error | null = null;

	write(from: number, to: number): LogRow[] {
		const rs = rows(from, to);
		this.table.push(...rs);
		return rs;
	}

	deps(): LogStreamDeps {
		return {
			fetchLogs: async (_run, after, limit) => {
				this.fetches++;
				if (this.failFetch) throw new Error('network down');
				return this.table.filter((r) => r.seq > after).slice(0, limit);
			},
			fetchRun: async () => ({ ...this.run }),
			open: (_run, h) => (onStatus) => {
				this.opens++;
				this.handlers = h;
				this.onStatus = onStatus;
				return () => {
					this.closes++;
					this.handlers = null;
					this.onStatus = null;
				};
			},
			prepare: async () => {
				if (this.prepareError) throw this.prepareError;
			}
		};
	}

	live(rs: LogRow[]) {
		for (const r of rs) this.handlers?.onLog(r);
	}

	status(s: ChannelStatus) {
		this.onStatus?.(s);
	}

	finish(status: RunStatus) {
		this.run = { ...this.run, status, finished_at: '2026-01-01T01:00:00Z' };
		this.handlers?.onRun({ ...this.run });
	}
}

function harness(server: FakeServer, pageSize = 10) {
	const got: LogRow[] = [];
	const states: StreamState[] = [];
	const notices: string[] = [];
	const stream = new LogStream(
		RUN,
		server.deps(),
		{
			rows: (rs) => got.push(...rs),
			state: (s) => states.push(s),
			run: () => {},
			notice: (t) => notices.push(t)
		},
		{ pageSize, tailCheckMs: 0 }
	);
	return { stream, got, states, notices, last: () => states[states.length - 1] };
}

const settle = () => vi.advanceTimersByTimeAsync(0);

function expectDense(got: LogRow[], n: number) {
	expect(seqs(got)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
}

describe('LogStream', () => {
	beforeEach(() => vi.useFakeTimers());
	afterEach(() => vi.useRealTimers());

	it('subscribes, then backfills the history in pages', async () => {
		const server = new FakeServer();
		server.write(1, 25);
		const h = harness(server);
		await h.stream.start();
		await settle();
		expect(server.opens).toBe(1);
		expect(h.last().kind).toBe('connecting');
		expect(server.fetches).toBe(0); // nothing before SUBSCRIBED
		server.status('SUBSCRIBED');
		await settle();
		expectDense(h.got, 25);
		expect(server.fetches).toBe(4); // 10 + 10 + 5, then an empty page ends it
		expect(h.last()).toEqual({ kind: 'live' });
		expect(h.notices).toEqual([]);
	});

	it('buffers live rows that arrive before the backfill and never doubles them', async () => {
		const server = new FakeServer();
		server.write(1, 20);
		const h = harness(server);
		await h.stream.start();
		await settle();
		server.live(server.write(21, 23)); // committed after the subscribe, delivered live
		server.status('SUBSCRIBED');
		server.live([server.write(24, 24)[0], row(24), row(22)]);
		await settle();
		expectDense(h.got, 24);
	});

	it('handles duplicates and out-of-order live rows', async () => {
		const server = new FakeServer();
		const h = harness(server);
		await h.stream.start();
		server.status('SUBSCRIBED');
		await settle();
		server.write(1, 4);
		server.live([row(1), row(2), row(2), row(4), row(3), row(1)]);
		await settle();
		expectDense(h.got, 4);
		expect(h.stream.merger.duplicates).toBeGreaterThanOrEqual(2);
	});

	it('backfills a hole as soon as a later row shows it', async () => {
		const server = new FakeServer();
		server.write(1, 5);
		const h = harness(server);
		await h.stream.start();
		server.status('SUBSCRIBED');
		await settle();
		server.write(6, 8);
		server.live([row(8)]); // 6 and 7 were lost on the way
		await settle();
		expectDense(h.got, 8);
		expect(h.notices).toEqual(['gap detected — 2 missing lines restored']);
	});

	it('reconnects with backoff after CHANNEL_ERROR and counts the restored lines', async () => {
		const server = new FakeServer();
		server.write(1, 10);
		const h = harness(server);
		await h.stream.start();
		server.status('SUBSCRIBED');
		await settle();
		expectDense(h.got, 10);

		server.status('CHANNEL_ERROR');
		await settle();
		const st = h.last();
		expect(st.kind).toBe('reconnecting');
		if (st.kind === 'reconnecting') expect(st.retryAt).toBe(Date.now() + 1000);
		expect(server.closes).toBe(1);

		server.write(11, 47); // 37 lines written while we were away
		await vi.advanceTimersByTimeAsync(999);
		expect(server.opens).toBe(1);
		await vi.advanceTimersByTimeAsync(1);
		expect(server.opens).toBe(2);
		server.status('SUBSCRIBED');
		await settle();
		expectDense(h.got, 47);
		expect(h.notices).toEqual(['reconnected — 37 lines restored']);
		expect(h.stream.restoredTotal).toBe(37);
		expect(h.last()).toEqual({ kind: 'live' });
	});

	it('backs off 1 s, 2 s, 5 s, 10 s, 10 s while the join keeps failing', async () => {
		const server = new FakeServer();
		const h = harness(server);
		await h.stream.start();
		const delays: number[] = [];
		for (let i = 0; i < 5; i++) {
			server.status(i % 2 ? 'TIMED_OUT' : 'CLOSED');
			await settle();
			const st = h.last();
			if (st.kind !== 'reconnecting' || st.retryAt === null) throw new Error('expected a countdown');
			delays.push(st.retryAt - Date.now());
			await vi.advanceTimersByTimeAsync(st.retryAt - Date.now());
		}
		expect(delays).toEqual([1000, 2000, 5000, 10000, 10000]);
		server.status('SUBSCRIBED');
		await settle();
		server.status('CHANNEL_ERROR');
		await settle();
		const st = h.last();
		expect(st.kind === 'reconnecting' && st.retryAt! - Date.now()).toBe(1000); // reset after success
	});

	it('resubscribes at once on resync (online / visible / wake) and says nothing was missed', async () => {
		const server = new FakeServer();
		server.write(1, 3);
		const h = harness(server);
		await h.stream.start();
		server.status('SUBSCRIBED');
		await settle();
		h.stream.resync('online');
		await settle();
		expect(server.opens).toBe(2);
		expect(server.closes).toBe(1);
		server.status('SUBSCRIBED');
		await settle();
		expect(h.notices).toEqual(['reconnected — no lines missed']);
	});

	it('ignores statuses from a channel it already replaced', async () => {
		const server = new FakeServer();
		const h = harness(server);
		await h.stream.start();
		const stale = server.onStatus!;
		h.stream.resync('wake');
		await settle();
		stale('CHANNEL_ERROR');
		await settle();
		expect(server.opens).toBe(2);
		expect(h.last().kind).toBe('connecting'); // the stale error changed nothing
		server.status('SUBSCRIBED');
		await settle();
		expect(h.last()).toEqual({ kind: 'live' });
	});

	it('retries when the backfill fails', async () => {
		const server = new FakeServer();
		server.write(1, 3);
		server.failFetch = true;
		const h = harness(server);
		await h.stream.start();
		server.status('SUBSCRIBED');
		await settle();
		expect(h.last().kind).toBe('reconnecting');
		server.failFetch = false;
		await vi.advanceTimersByTimeAsync(1000);
		server.status('SUBSCRIBED');
		await settle();
		expectDense(h.got, 3);
		expect(h.last()).toEqual({ kind: 'live' });
	});

	it('treats a postgres_changes system error as a failed subscription, and ok as a reason to look', async () => {
		const server = new FakeServer();
		const h = harness(server);
		await h.stream.start();
		server.status('SUBSCRIBED');
		await settle();
		server.write(1, 2); // committed before the change feed was ready
		server.handlers!.onSystem(true, 'Subscribed to PostgreSQL');
		await settle();
		expectDense(h.got, 2);
		server.handlers!.onSystem(false, 'Unable to subscribe');
		await settle();
		expect(h.last().kind).toBe('reconnecting');
	});

	it('finishes with one last backfill when the run ends', async () => {
		const server = new FakeServer();
		server.write(1, 5);
		const h = harness(server);
		await h.stream.start();
		server.status('SUBSCRIBED');
		await settle();
		server.write(6, 9); // written, not delivered live
		server.finish('failed');
		await settle();
		expectDense(h.got, 9);
		expect(h.last()).toEqual({ kind: 'finished', status: 'failed' });
		expect(h.notices).toEqual(['run finished (failed)']);
		expect(server.closes).toBe(1);
	});

	/** Lines 1..5 live, 6..9 written but not delivered, then the run ends while REST is down. */
	async function finishWhileRestIsDown(status: RunStatus) {
		const server = new FakeServer();
		server.write(1, 5);
		const h = harness(server);
		await h.stream.start();
		server.status('SUBSCRIBED');
		await settle();
		server.write(6, 9);
		server.failFetch = true;
		server.finish(status);
		await settle();
		return { server, h };
	}

	it('retries the last backfill of a finished run, then calls the log complete', async () => {
		const { server, h } = await finishWhileRestIsDown('succeeded');
		expect(h.last().kind).not.toBe('finished'); // not "complete" while lines 6..9 are missing
		await vi.advanceTimersByTimeAsync(1500); // two failed retries
		server.failFetch = false;
		await vi.advanceTimersByTimeAsync(2000);
		expectDense(h.got, 9);
		expect(h.last()).toEqual({ kind: 'finished', status: 'succeeded' });
		expect(h.notices).toEqual(['run finished (succeeded)']);
	});

	it('says the log is incomplete when the last backfill of a finished run keeps failing', async () => {
		const { server, h } = await finishWhileRestIsDown('failed');
		await vi.advanceTimersByTimeAsync(20_000);
		expectDense(h.got, 5);
		const last = h.last();
		expect(last.kind).toBe('failed');
		expect(last.kind === 'failed' && last.message).toMatch(/the run failed, but its last lines could not be loaded \(network down\)/);
		expect(h.notices).toHaveLength(1);
		const fetches = server.fetches;
		await vi.advanceTimersByTimeAsync(60_000);
		expect(server.fetches).toBe(fetches); // bounded: no retries after it gave up
	});

	it('notices a run that ended while it was disconnected', async () => {
		const server = new FakeServer();
		server.write(1, 5);
		const h = harness(server);
		await h.stream.start();
		server.status('SUBSCRIBED');
		await settle();
		server.status('CLOSED');
		server.write(6, 7);
		server.run = { ...server.run, status: 'succeeded' };
		await vi.advanceTimersByTimeAsync(1000);
		server.status('SUBSCRIBED');
		await settle();
		expectDense(h.got, 7);
		expect(h.last()).toEqual({ kind: 'finished', status: 'succeeded' });
	});

	it('loads a finished run once, without a channel', async () => {
		const server = new FakeServer();
		server.write(1, 30);
		server.run = { ...server.run, status: 'succeeded' };
		const h = harness(server);
		await h.stream.start();
		await settle();
		expect(server.opens).toBe(0);
		expectDense(h.got, 30);
		expect(h.last()).toEqual({ kind: 'finished', status: 'succeeded' });
	});

	it('fails clearly for a run it cannot see', async () => {
		const server = new FakeServer();
		const deps = server.deps();
		deps.fetchRun = async () => null;
		const states: StreamState[] = [];
		const s = new LogStream(RUN, deps, { rows: () => {}, state: (x) => states.push(x), run: () => {}, notice: () => {} });
		await s.start();
		expect(states.at(-1)).toEqual({ kind: 'failed', message: 'run not found, or you are not allowed to see it' });
	});

	it('stops when the run disappears from view on a reconnect (access revoked)', async () => {
		const server = new FakeServer();
		server.write(1, 3);
		const deps = server.deps();
		let visible = true;
		const fetchRun = deps.fetchRun;
		deps.fetchRun = async (id) => (visible ? fetchRun(id) : null);
		const states: StreamState[] = [];
		const s = new LogStream(RUN, deps, { rows: () => {}, state: (x) => states.push(x), run: () => {}, notice: () => {} }, { tailCheckMs: 0 });
		await s.start();
		server.status('SUBSCRIBED');
		await settle();
		visible = false;
		server.status('CHANNEL_ERROR');
		await vi.advanceTimersByTimeAsync(1000);
		server.status('SUBSCRIBED');
		await settle();
		expect(states.at(-1)).toEqual({ kind: 'failed', message: 'run not found, or you are not allowed to see it' });
		await vi.advanceTimersByTimeAsync(30_000);
		expect(server.opens).toBe(2);
	});

	it('stops retrying when the session is gone', async () => {
		const server = new FakeServer();
		server.prepareError = new AuthLostError('signed out');
		const h = harness(server);
		await h.stream.start();
		await settle();
		expect(h.last()).toEqual({ kind: 'failed', message: 'signed out' });
		await vi.advanceTimersByTimeAsync(60_000);
		expect(server.opens).toBe(0);
	});

	it('gives up when REST says the session is gone', async () => {
		const server = new FakeServer();
		const deps = server.deps();
		deps.fetchLogs = async () => {
			throw new AuthLostError('session expired: JWT expired');
		};
		const states: StreamState[] = [];
		const s = new LogStream(RUN, deps, { rows: () => {}, state: (x) => states.push(x), run: () => {}, notice: () => {} }, { tailCheckMs: 0 });
		await s.start();
		server.status('SUBSCRIBED');
		await settle();
		expect(states.at(-1)).toEqual({ kind: 'failed', message: 'session expired: JWT expired' });
		await vi.advanceTimersByTimeAsync(30_000);
		expect(server.opens).toBe(1);
	});

	it('shows offline instead of a countdown when the browser is offline', async () => {
		const server = new FakeServer();
		const deps = server.deps();
		let online = true;
		deps.isOnline = () => online;
		const states: StreamState[] = [];
		const s = new LogStream(RUN, deps, { rows: () => {}, state: (x) => states.push(x), run: () => {}, notice: () => {} }, { tailCheckMs: 0 });
		await s.start();
		server.status('SUBSCRIBED');
		await settle();
		online = false;
		s.markOffline();
		expect(states.at(-1)).toEqual({ kind: 'offline' });
		server.status('CHANNEL_ERROR');
		await settle();
		expect(states.at(-1)).toEqual({ kind: 'offline' });
		s.stop();
	});

	it('checks the tail periodically while live', async () => {
		const server = new FakeServer();
		const got: LogRow[] = [];
		const notices: string[] = [];
		const s = new LogStream(
			RUN,
			server.deps(),
			{ rows: (r) => got.push(...r), state: () => {}, run: () => {}, notice: (t) => notices.push(t) },
			{ tailCheckMs: 5000 }
		);
		await s.start();
		server.status('SUBSCRIBED');
		await settle();
		server.write(1, 1); // its live frame never came
		await vi.advanceTimersByTimeAsync(5000);
		expectDense(got, 1);
		expect(notices).toEqual(['1 missed line restored']);
		s.stop();
	});
});

describe('LogStream restored-line accounting', () => {
	beforeEach(() => vi.useFakeTimers());
	afterEach(() => vi.useRealTimers());

	it('counts and announces each restored line once when a second backfill request joins a running one', async () => {
		const server = new FakeServer();
		const h = harness(server);
		await h.stream.start();
		server.status('SUBSCRIBED');
		await settle();
		server.write(1, 3);
		server.live([row(3)]); // 1 and 2 lost: a gap backfill starts…
		h.stream.poke(); // …and the tab becomes visible while it runs
		await settle();
		expectDense(h.got, 3);
		expect(h.stream.restoredTotal).toBe(2);
		expect(h.notices).toEqual(['gap detected — 2 missing lines restored']);
	});

	it('does not call the first load of the history "restored" when a reconnect joins it', async () => {
		const server = new FakeServer();
		server.write(1, 25);
		const deps = server.deps();
		let gate: (() => void) | null = null;
		const fetchLogs = deps.fetchLogs;
		deps.fetchLogs = async (...a) => {
			await new Promise<void>((r) => (gate = r)); // a slow REST page
			return fetchLogs(...a);
		};
		const got: LogRow[] = [];
		const notices: string[] = [];
		const s = new LogStream(RUN, deps, { rows: (r) => got.push(...r), state: () => {}, run: () => {}, notice: (t) => notices.push(t) }, { pageSize: 10, tailCheckMs: 0 });
		await s.start();
		server.status('SUBSCRIBED');
		await settle(); // first load: its first page is on its way…
		s.resync('online'); // …when the network blips
		await settle();
		server.status('SUBSCRIBED');
		await settle();
		for (let i = 0; i < 6 && gate; i++) {
			const open = gate as () => void;
			gate = null;
			open();
			await settle();
		}
		expectDense(got, 25);
		expect(s.restoredTotal).toBe(0);
		expect(notices).toEqual(['reconnected — no lines missed']);
	});
});
