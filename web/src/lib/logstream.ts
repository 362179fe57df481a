/**
 * Live, gap-free log lines of one run (ARCHITECTURE.md §5).
 *
 * 1. Subscribe to INSERTs on run_logs (run_id=eq.<run>) and UPDATEs of the run's workflow_runs row;
 *    live rows that arrive early are held.
 * 2. On SUBSCRIBED, backfill `seq > last` from REST in pages.
 * 3. Merge by seq: drop seq <= last, append seq == last+1, hold seq > last+1 and backfill the hole.
 * 4. On CHANNEL_ERROR / TIMED_OUT / CLOSED, network back, tab visible again or a wake from sleep:
 *    refresh the token if needed, resubscribe, go to 2, and say how many lines were restored.
 * 5. When the run's status becomes final, backfill one last time and stop.
 *
 * `LogMerger` is the pure merge logic. `LogStream` drives it with I/O passed in as `LogStreamDeps`
 * (REST page fetch, run fetch, channel opener), so both are unit-tested without a server.
 * `supabaseDeps()` builds the real deps from a supabase-js client.
 */

import type { SupabaseClient } from '@supabase/supabase-js';
import { fetchLogPage, fetchRun, isAuthFailure, PAGE_SIZE } from './api';
import {
	AuthLostError,
	ensureAuth,
	openChannel,
	realClock,
	ResilientChannel,
	type Clock,
	type ConnState,
	type Opener
} from './realtime';
import { isTerminal, toLogRow, type LogRow, type RunRow, type RunStatus } from './types';

/** Live rows held beyond this many (a long outage of the backfill) are dropped; the table has them. */
export const MAX_PENDING = 50_000;

export interface MergeResult {
	/** Rows now in order, to append to the view (seq ascending, contiguous with what came before). */
	appended: LogRow[];
	/** How many rows passed in were new to us (held live rows released by them do not count). */
	fromInput: number;
}

/** Orders rows by seq: the pure half of the client algorithm. */
export class LogMerger {
	/** Highest seq appended so far; everything up to it is known. */
	last = 0;
	/** Live rows seen ahead of a hole, by seq. */
	readonly pending = new Map<number, LogRow>();
	duplicates = 0;
	/** Seqs the table does not have (deleted by retention); skipped once a backfill proves it. */
	skipped = 0;

	constructor(private readonly maxPending = MAX_PENDING) {}

	/** True while some live rows wait for a hole before them to be filled. */
	get hasHole(): boolean {
		return this.pending.size > 0;
	}

	/** Rows from the live channel, in any order, possibly repeated. */
	addLive(rows: LogRow[]): MergeResult {
		const appended: LogRow[] = [];
		let fromInput = 0;
		for (const row of rows) {
			if (row.seq <= this.last || this.pending.has(row.seq)) {
				this.duplicates++;
			} else if (row.seq === this.last + 1) {
				appended.push(row);
				fromInput++;
				this.last = row.seq;
				this.drain(appended);
			} else if (this.pending.size < this.maxPending) {
				this.pending.set(row.seq, row);
			}
		}
		return { appended, fromInput };
	}

	/**
	 * A backfill page (`seq > last` ascending, read from the table). The table is the truth: if its
	 * first row is beyond last+1, the lines in between do not exist any more, so they are skipped.
	 */
	addBackfill(rows: LogRow[]): MergeResult {
		const appended: LogRow[] = [];
		let fromInput = 0;
		for (const row of rows) {
			if (row.seq <= this.last) {
				this.duplicates++;
				continue;
			}
			if (row.seq > this.last + 1) {
				this.skipped += row.seq - this.last - 1;
				for (const seq of this.pending.keys()) if (seq < row.seq) this.pending.delete(seq);
			}
			this.pending.delete(row.seq);
			appended.push(row);
			fromInput++;
			this.last = row.seq;
			this.drain(appended);
		}
		return { appended, fromInput };
	}

	private drain(out: LogRow[]): void {
		for (let next = this.pending.get(this.last + 1); next; next = this.pending.get(this.last + 1)) {
			this.pending.delete(next.seq);
			out.push(next);
			this.last = next.seq;
		}
	}
}

// ---- I/O -------------------------------------------------------------------------------------

export interface ChannelHandlers {
	onLog(row: LogRow): void;
	onRun(run: RunRow): void;
	/** The server's `system` message after a join: ok when the change feed is ready. */
	onSystem(ok: boolean, message: string): void;
}

export interface LogStreamDeps {
	fetchLogs(runId: string, afterSeq: number, limit: number): Promise<LogRow[]>;
	fetchRun(runId: string): Promise<RunRow | null>;
	open(runId: string, handlers: ChannelHandlers): Opener;
	prepare?(): Promise<void>;
	isOnline?(): boolean;
	clock?: Clock;
}

export type StreamState =
	| ConnState
	| { kind: 'syncing' }
	| { kind: 'finished'; status: RunStatus };

export interface LogStreamEvents {
	/** Rows to append, seq ascending and contiguous. */
	rows(rows: LogRow[]): void;
	state(state: StreamState): void;
	run(run: RunRow): void;
	notice(text: string, tone: 'info' | 'ok' | 'warn'): void;
}

export interface LogStreamOptions {
	pageSize?: number;
	/** While live, backfill this often anyway, in case the last line of a burst went missing. 0 = never. */
	tailCheckMs?: number;
}

/** Waits between attempts of the backfill that completes a finished run's log. */
const FINAL_BACKFILL_DELAYS_MS = [500, 1000, 2000, 4000, 8000];

function plural(n: number, word: string): string {
	return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

export class LogStream {
	readonly merger = new LogMerger();
	run: RunRow | null = null;
	state: StreamState = { kind: 'connecting' };
	/** Lines restored by backfills after the first load (reconnects, holes, tail checks). */
	restoredTotal = 0;

	private channel: ResilientChannel | null = null;
	private backfilling: Promise<void> | null = null;
	/** Who the running backfill round is counting lines for (see `backfill`). */
	private claim: { lines: number } | null = null;
	private again = false;
	private syncing = false;
	private finished = false;
	private stopped = false;
	private tailTimer: unknown = null;
	private readonly pageSize: number;
	private readonly tailCheckMs: number;
	private readonly clock: Clock;

	constructor(
		readonly runId: string,
		private readonly deps: LogStreamDeps,
		private readonly events: LogStreamEvents,
		opts: LogStreamOptions = {}
	) {
		this.pageSize = opts.pageSize ?? PAGE_SIZE;
		this.tailCheckMs = opts.tailCheckMs ?? 30_000;
		this.clock = deps.clock ?? realClock;
	}

	/** Load the run's lines and, unless it is over, follow it live. */
	async start(initialRun?: RunRow | null): Promise<void> {
		try {
			this.run = initialRun ?? (await this.deps.fetchRun(this.runId));
		} catch (err) {
			this.setState({ kind: 'failed', message: errorText(err) });
			return;
		}
		if (this.stopped) return;
		if (!this.run) {
			this.setState({ kind: 'failed', message: 'run not found, or you are not allowed to see it' });
			return;
		}
		if (isTerminal(this.run.status)) {
			// Nothing will be written any more: one load, no channel.
			this.setState({ kind: 'syncing' });
			try {
				await this.backfill();
			} catch (err) {
				this.setState({ kind: 'failed', message: errorText(err) });
				return;
			}
			this.finished = true;
			this.setState({ kind: 'finished', status: this.run.status });
			return;
		}
		const handlers: ChannelHandlers = {
			onLog: (row) => this.onLog(row),
			onRun: (run) => void this.onRun(run),
			onSystem: (ok, message) => this.onSystem(ok, message)
		};
		this.channel = new ResilientChannel({
			open: this.deps.open(this.runId, handlers),
			prepare: this.deps.prepare,
			isOnline: this.deps.isOnline,
			clock: this.clock,
			onSubscribed: (reconnect) => void this.onSubscribed(reconnect),
			onState: (s) => this.onConnState(s)
		});
		this.channel.start();
	}

	/** Resubscribe now (network back, tab visible after a long time, machine woke up). */
	resync(reason: string): void {
		if (!this.finished) this.channel?.resync(reason);
	}

	/** Check for missed lines without resubscribing (tab visible again after a short time). */
	poke(): void {
		if (this.finished || this.stopped || this.state.kind !== 'live') return;
		void this.restore('tail');
	}

	markOffline(): void {
		if (!this.finished) this.channel?.markOffline();
	}

	stop(): void {
		this.stopped = true;
		this.cancelTail();
		this.channel?.stop();
	}

	/**
	 * Fetch `seq > last` page by page until the table has nothing newer, merging as it goes.
	 * Single-flight: a call while one runs makes that one go round again. Resolves to the number
	 * of lines the table supplied (not counting held live rows released by them) in the rounds run
	 * for this call, so that concurrent callers never count (and announce) the same line twice.
	 */
	backfill(): Promise<number> {
		const mine = { lines: 0 };
		// The next round (or the first) works for the latest caller; earlier rounds keep theirs.
		this.claim = mine;
		if (this.backfilling) {
			this.again = true;
			return this.backfilling.then(() => mine.lines);
		}
		const run = async () => {
			do {
				this.again = false;
				const claim = this.claim ?? mine;
				claim.lines += await this.backfillOnce();
			} while (this.again && !this.stopped);
		};
		this.backfilling = run().finally(() => {
			this.backfilling = null;
			this.claim = null;
		});
		return this.backfilling.then(() => mine.lines);
	}

	private async backfillOnce(): Promise<number> {
		let total = 0;
		let extraRounds = 0;
		for (;;) {
			const page = await this.deps.fetchLogs(this.runId, this.merger.last, this.pageSize);
			if (this.stopped) return total;
			const { appended, fromInput } = this.merger.addBackfill(page);
			total += fromInput;
			if (appended.length) this.events.rows(appended);
			// Servers cap page sizes (PostgREST's max-rows: 1000 on Supabase and meshlogs), so a
			// page shorter than asked for does not mean the end: only an empty page does.
			if (page.length > 0) continue;
			// Live rows beyond what the table showed us a moment ago: look once more.
			if (this.merger.hasHole && ++extraRounds <= 3) continue;
			return total;
		}
	}

	private onLog(row: LogRow): void {
		if (this.stopped) return;
		const { appended } = this.merger.addLive([row]);
		if (appended.length) this.events.rows(appended);
		if (this.merger.hasHole && !this.syncing && this.state.kind === 'live') void this.restore('gap');
	}

	private async onRun(run: RunRow): Promise<void> {
		if (this.stopped || run.id !== this.runId) return;
		this.run = { ...this.run, ...run };
		this.events.run(this.run);
		if (isTerminal(run.status)) await this.finish(run.status);
	}

	private onSystem(ok: boolean, message: string): void {
		if (this.stopped || this.finished) return;
		if (ok) {
			// The change feed is ready now; lines committed between SUBSCRIBED and this moment
			// were not sent live, so look in the table.
			if (!this.syncing && this.state.kind === 'live') void this.restore('tail');
		} else {
			this.channel?.fail(`server: ${message}`);
		}
	}

	private async onSubscribed(reconnect: boolean): Promise<void> {
		this.syncing = true;
		this.cancelTail();
		this.emitState();
		try {
			const run = await this.deps.fetchRun(this.runId);
			if (this.stopped) return;
			if (!run) {
				// RLS no longer shows the run (membership revoked, run deleted): say so, stop.
				this.syncing = false;
				this.stop();
				this.setState({ kind: 'failed', message: 'run not found, or you are not allowed to see it' });
				return;
			}
			this.run = run;
			this.events.run(run);
			const restored = await this.backfill();
			if (this.stopped) return;
			if (reconnect) this.restoredTotal += restored;
			this.syncing = false;
			if (isTerminal(run.status)) {
				await this.finish(run.status);
				return;
			}
			this.emitState();
			this.scheduleTail();
			if (reconnect) {
				this.events.notice(
					restored > 0 ? `reconnected — ${plural(restored, 'line')} restored` : 'reconnected — no lines missed',
					'ok'
				);
			}
		} catch (err) {
			this.syncing = false;
			this.failOrRetry(err);
		}
	}

	/** A REST failure while live: retry with backoff, unless the session is gone. */
	private failOrRetry(err: unknown): void {
		if (this.stopped || this.finished) return;
		if (err instanceof AuthLostError) {
			this.stop();
			this.setState({ kind: 'failed', message: err.message });
			return;
		}
		this.channel?.fail(`backfill failed: ${errorText(err)}`);
	}

	/** A backfill outside (re)subscribing: count and announce what it found. */
	private async restore(kind: 'gap' | 'tail'): Promise<void> {
		try {
			const n = await this.backfill();
			if (n > 0 && !this.stopped) {
				this.restoredTotal += n;
				this.events.notice(
					kind === 'gap' ? `gap detected — ${plural(n, 'missing line')} restored` : `${plural(n, 'missed line')} restored`,
					'warn'
				);
			}
		} catch (err) {
			this.failOrRetry(err);
		}
	}

	private async finish(status: RunStatus): Promise<void> {
		if (this.finished) return;
		this.finished = true;
		this.cancelTail();
		this.channel?.stop();
		this.channel = null;
		// The last backfill decides whether the log is complete: retry it a few times (about 15 s in
		// all), and if it still fails say so, rather than calling an incomplete log "finished".
		let lastError: unknown = null;
		for (let attempt = 0; attempt < FINAL_BACKFILL_DELAYS_MS.length + 1; attempt++) {
			if (attempt > 0) await this.sleep(FINAL_BACKFILL_DELAYS_MS[attempt - 1]);
			if (this.stopped) return;
			try {
				await this.backfill();
				lastError = null;
				break;
			} catch (err) {
				lastError = err;
				if (err instanceof AuthLostError) break;
			}
		}
		if (this.stopped) return;
		if (lastError !== null) {
			const message = `the run ${status}, but its last lines could not be loaded (${errorText(lastError)}); reload to retry`;
			this.setState({ kind: 'failed', message });
			this.events.notice(message, 'warn');
			return;
		}
		this.setState({ kind: 'finished', status });
		this.events.notice(`run finished (${status})`, status === 'succeeded' ? 'ok' : 'info');
	}

	private sleep(ms: number): Promise<void> {
		return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
	}

	private onConnState(s: ConnState): void {
		if (this.finished) return;
		if (s.kind !== 'live') this.cancelTail();
		this.setState(s);
	}

	private emitState(): void {
		if (this.channel) this.onConnState(this.channel.state);
	}

	private setState(s: StreamState): void {
		const shown: StreamState = s.kind === 'live' && this.syncing ? { kind: 'syncing' } : s;
		this.state = shown;
		this.events.state(shown);
	}

	private scheduleTail(): void {
		this.cancelTail();
		if (!this.tailCheckMs || this.stopped || this.finished) return;
		const fire = () => {
			this.tailTimer = null;
			if (this.state.kind === 'live') void this.restore('tail');
			this.scheduleTail();
		};
		this.tailTimer = this.clock.setTimeout(fire, this.tailCheckMs);
	}

	private cancelTail(): void {
		if (this.tailTimer === null) return;
		this.clock.clearTimeout(this.tailTimer);
		this.tailTimer = null;
	}
}

function errorText(err: unknown): string {
	return err instanceof Error ? err.message : String(err);
}

/** A 401 from REST means the session is gone: no point retrying. */
async function authChecked<T>(p: Promise<T>): Promise<T> {
	try {
		return await p;
	} catch (err) {
		if (isAuthFailure(err)) throw new AuthLostError(`session expired: ${errorText(err)}`);
		throw err;
	}
}

/** The real deps: REST through supabase-js, one channel `run:<id>` with both bindings. */
export function supabaseDeps(client: SupabaseClient): LogStreamDeps {
	return {
		fetchLogs: (runId, afterSeq, limit) => authChecked(fetchLogPage(client, runId, afterSeq, limit)),
		fetchRun: (runId) => authChecked(fetchRun(client, runId)),
		open: (runId, h) =>
			openChannel(client, `run:${runId}`, (ch) =>
				ch
					.on(
						'postgres_changes',
						{ event: 'INSERT', schema: 'public', table: 'run_logs', filter: `run_id=eq.${runId}` },
						(p) => h.onLog(toLogRow(p.new as Record<string, unknown>))
					)
					.on(
						'postgres_changes',
						{ event: 'UPDATE', schema: 'public', table: 'workflow_runs', filter: `id=eq.${runId}` },
						(p) => h.onRun(p.new as RunRow)
					)
					.on('system', {}, (p: { extension?: string; status?: string; message?: string }) => {
						if (p?.extension === 'postgres_changes') h.onSystem(p.status === 'ok', String(p.message ?? ''));
					})
			),
		prepare: () => ensureAuth(client),
		isOnline: () => (typeof navigator === 'undefined' ? true : navigator.onLine)
	};
}
