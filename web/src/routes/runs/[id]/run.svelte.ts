/**
 * State of one run view: the LogView model fed by a LogStream, plus what the toolbar, search and
 * list show. The big data (rows, display list) lives in plain objects; `rev` and `structure`
 * are the reactive signals that tell components to look again.
 */

import type { SupabaseClient } from '@supabase/supabase-js';
import { replaceState } from '$app/navigation';
import { fetchAllLogs, fetchProjects, fetchRun, fetchWorkflows, isAuthFailure, searchLogs, type ServerMatch } from '$lib/api';
import { stripAnsi } from '$lib/ansi';
import { formatClock, formatOffset } from '$lib/format';
import { LogStream, supabaseDeps, type StreamState } from '$lib/logstream';
import { LogView, parseTs } from '$lib/logview';
import { lineHash, parseLineHash } from '$lib/permalink';
import { compileQuery } from '$lib/search';
import type { Level, LogRow, ProjectRow, RunRow, WorkflowRow } from '$lib/types';

export type TsMode = 'clock' | 'offset' | 'off';

export interface Notice {
	id: number;
	text: string;
	tone: 'info' | 'ok' | 'warn' | 'bad';
}

export interface ScrollRequest {
	id: number;
	position: number;
	/** 'center' for jumps to a line, 'start' for a range (its first line near the top), 'bottom' / 'top' for G / g. */
	align: 'center' | 'start' | 'top' | 'bottom';
}

const PREFS_KEY = 'meshlogs.view';

interface Prefs {
	wrap: boolean;
	tsMode: TsMode;
}

function loadPrefs(): Prefs {
	try {
		const raw = JSON.parse(localStorage.getItem(PREFS_KEY) ?? '{}') as Partial<Prefs>;
		return {
			wrap: raw.wrap ?? true,
			tsMode: raw.tsMode === 'offset' || raw.tsMode === 'off' ? raw.tsMode : 'clock'
		};
	} catch {
		return { wrap: true, tsMode: 'clock' };
	}
}

export class RunController {
	readonly view = new LogView();
	/** Bumps whenever the model changed (rows appended, filters, sections). */
	rev = $state(0);
	run = $state<RunRow | null>(null);
	workflow = $state<WorkflowRow | null>(null);
	project = $state<ProjectRow | null>(null);
	conn = $state<StreamState>({ kind: 'connecting' });
	notice = $state<Notice | null>(null);
	error = $state('');

	wrap = $state(true);
	tsMode = $state<TsMode>('clock');
	follow = $state(true);
	/** Lines that arrived (and pass the filters) while not following. */
	newLines = $state(0);
	/** Lines restored by backfills after the first load (reconnects, holes). */
	restored = $state(0);
	/** The history is loaded (the stream was live or the run finished at least once). */
	loaded = $state(false);

	query = $state('');
	regex = $state(false);
	caseSensitive = $state(false);
	searchError = $state('');
	/** The compiled query, for highlighting (null when none or invalid). */
	re = $state.raw<RegExp | null>(null);
	/** Index into view.matchRows of the current match, or -1. */
	cursor = $state(-1);

	serverBusy = $state(false);
	serverResults = $state<ServerMatch[] | null>(null);
	serverTerm = $state('');
	serverError = $state('');

	download = $state<{ kind: 'text' | 'jsonl'; lines: number } | null>(null);

	/** The linked line (or first line of the linked range), highlighted; null when none. */
	targetSeq = $state<number | null>(null);
	/** Last line of the linked range (equal to targetSeq for one line). */
	targetEnd = $state<number | null>(null);
	scrollRequest = $state<ScrollRequest | null>(null);

	private stream: LogStream | null = null;
	private queue: LogRow[] = [];
	private flushScheduled = false;
	private noticeSeq = 0;
	private scrollSeq = 0;
	private searchTimer: ReturnType<typeof setTimeout> | null = null;
	private appliedSearch = 'ti:';
	/** Set once the permalink target was scrolled to, so later rows do not steal the view. */
	private targetShown = false;
	/** The line clicked last without Shift: the fixed end of a Shift+click range. */
	private linkAnchor: number | null = null;
	private runStart = NaN;

	constructor(
		readonly runId: string,
		private readonly client: SupabaseClient,
		private readonly onAuthLost: () => void
	) {
		const prefs = loadPrefs();
		this.wrap = prefs.wrap;
		this.tsMode = prefs.tsMode;
	}

	// ---- lifecycle --------------------------------------------------------------------------

	async start(): Promise<void> {
		let run: RunRow | null;
		try {
			run = await fetchRun(this.client, this.runId);
		} catch (err) {
			if (isAuthFailure(err)) return this.onAuthLost();
			this.error = err instanceof Error ? err.message : String(err);
			this.conn = { kind: 'failed', message: this.error };
			return;
		}
		if (!run) {
			this.error = 'This run does not exist, or you are not a member of its project.';
			this.conn = { kind: 'failed', message: this.error };
			return;
		}
		this.setRun(run);
		void this.loadNames(run);
		this.stream = new LogStream(this.runId, supabaseDeps(this.client), {
			rows: (rows) => this.enqueue(rows),
			state: (s) => this.onState(s),
			run: (r) => this.setRun(r),
			notice: (text, tone) => {
				this.restored = this.stream?.restoredTotal ?? 0;
				this.showNotice(text, tone);
			}
		});
		await this.stream.start(run);
	}

	/** True when the loaded lines are exactly seq 1..N (for tests and the header). */
	get gapFree(): boolean {
		const v = this.view;
		return v.length === v.lastSeq && (this.stream?.merger.skipped ?? 0) === 0;
	}

	stop(): void {
		this.stream?.stop();
		this.stream = null;
		if (this.searchTimer) clearTimeout(this.searchTimer);
	}

	resync(reason: string): void {
		this.stream?.resync(reason);
	}

	poke(): void {
		this.stream?.poke();
	}

	markOffline(): void {
		this.stream?.markOffline();
	}

	private onState(s: StreamState): void {
		this.conn = s;
		if (s.kind === 'live' || s.kind === 'finished') this.loaded = true;
		if (s.kind === 'failed') {
			if (/signed out|session expired/.test(s.message)) this.onAuthLost();
			else if (this.view.length === 0) this.error = s.message;
			else this.showNotice(s.message, 'bad');
		}
		if (s.kind === 'live') {
			this.view.noteRunning();
		}
	}

	private setRun(run: RunRow): void {
		this.run = run;
		this.runStart = parseTs(run.started_at);
		this.view.setRunStatus(run.status);
		this.rev++;
	}

	private async loadNames(run: RunRow): Promise<void> {
		try {
			const [wf, pj] = await Promise.all([
				fetchWorkflows(this.client, [run.workflow_id]),
				fetchProjects(this.client, [run.project_id])
			]);
			this.workflow = wf.get(run.workflow_id) ?? null;
			this.project = pj.get(run.project_id) ?? null;
		} catch {
			// names are decoration; the log matters
		}
	}

	// ---- rows -------------------------------------------------------------------------------

	/** Rows arrive one by one when live: apply them once per frame, not per row. */
	private enqueue(rows: LogRow[]): void {
		for (const r of rows) this.queue.push(r);
		if (this.flushScheduled) return;
		this.flushScheduled = true;
		const flush = () => {
			if (!this.flushScheduled) return;
			this.flushScheduled = false;
			this.flush();
		};
		if (typeof requestAnimationFrame !== 'undefined' && document.visibilityState === 'visible') {
			requestAnimationFrame(flush);
			setTimeout(flush, 100); // rAF does not run in hidden tabs
		} else {
			setTimeout(flush, 50);
		}
	}

	private flush(): void {
		const batch = this.queue;
		if (batch.length === 0) return;
		this.queue = [];
		const before = this.view.items.length;
		const rebuilt = this.view.append(batch);
		if (this.conn.kind === 'live') this.view.noteRunning();
		if (!this.follow && !rebuilt && this.loaded) this.newLines += this.view.items.length - before;
		this.rev++;
		this.maybeShowTarget();
	}

	// ---- view options -----------------------------------------------------------------------

	private savePrefs(): void {
		try {
			localStorage.setItem(PREFS_KEY, JSON.stringify({ wrap: this.wrap, tsMode: this.tsMode }));
		} catch {
			// not persisted; fine
		}
	}

	toggleWrap(): void {
		this.wrap = !this.wrap;
		this.savePrefs();
	}

	cycleTs(): void {
		this.tsMode = this.tsMode === 'clock' ? 'offset' : this.tsMode === 'offset' ? 'off' : 'clock';
		this.savePrefs();
	}

	setFollow(on: boolean): void {
		this.follow = on;
		if (on) this.newLines = 0;
	}

	/** Jump to the end and keep following. */
	toBottom(): void {
		this.setFollow(true);
		this.requestScroll(Math.max(0, this.view.items.length - 1), 'bottom');
	}

	toTop(): void {
		this.setFollow(false);
		this.requestScroll(0, 'top');
	}

	toggleLevel(level: Level): void {
		this.view.toggleLevel(level);
		this.afterFilter();
	}

	onlyLevel(level: Level): void {
		this.view.setLevels([level]);
		this.afterFilter();
	}

	setStepFilter(step: string): void {
		this.view.setStepFilter(step);
		this.afterFilter();
	}

	toggleStep(step: string): void {
		this.view.toggleStep(step);
		this.rev++;
	}

	setAllOpen(open: boolean): void {
		this.view.setAllOpen(open);
		this.rev++;
	}

	private afterFilter(): void {
		this.cursor = this.view.matchRows.length ? Math.min(Math.max(this.cursor, 0), this.view.matchRows.length - 1) : -1;
		this.rev++;
	}

	// ---- timestamps -------------------------------------------------------------------------

	tsText(rowIndex: number): string {
		const t = this.view.tsMs[rowIndex];
		if (this.tsMode === 'off' || Number.isNaN(t)) return '';
		if (this.tsMode === 'offset') {
			const base = Number.isNaN(this.runStart) ? this.view.tsMs[0] : this.runStart;
			return formatOffset(t - base);
		}
		return formatClock(t);
	}

	// ---- permalinks -------------------------------------------------------------------------

	/** Read `#L123` or `#L10-L20` from the URL; scroll to that line once it is loaded. */
	readHash(hash: string): void {
		const range = parseLineHash(hash);
		if (!range) return;
		this.targetSeq = range.from;
		this.targetEnd = range.to;
		this.linkAnchor = range.from;
		this.targetShown = false;
		this.setFollow(false);
		this.maybeShowTarget();
	}

	/** True when `seq` is the linked line or inside the linked range. */
	isTarget(seq: number): boolean {
		const from = this.targetSeq;
		return from !== null && seq >= from && seq <= (this.targetEnd ?? from);
	}

	private maybeShowTarget(): void {
		if (this.targetSeq === null || this.targetShown) return;
		if (this.view.lastSeq < this.targetSeq) return;
		const idx = this.view.indexOfSeq(this.targetSeq);
		this.targetShown = true;
		if (idx < 0) {
			this.showNotice(`line ${this.targetSeq} is not in this log`, 'warn');
			return;
		}
		this.jumpToRow(idx, this.targetEnd !== null && this.targetEnd > this.targetSeq ? 'start' : 'center');
	}

	/**
	 * Link to a line: highlight it and put `#L<seq>` in the URL (without a navigation). With
	 * `extend` (Shift+click) the link covers the range from the last plain-clicked line to this one.
	 */
	linkLine(seq: number, extend = false): void {
		const anchor = extend && this.linkAnchor !== null ? this.linkAnchor : seq;
		if (!extend || this.linkAnchor === null) this.linkAnchor = seq;
		const range = { from: Math.min(anchor, seq), to: Math.max(anchor, seq) };
		this.targetSeq = range.from;
		this.targetEnd = range.to;
		this.targetShown = true;
		replaceState(lineHash(range), {});
	}

	jumpToSeq(seq: number): void {
		const idx = this.view.indexOfSeq(seq);
		this.targetSeq = seq;
		this.targetEnd = seq;
		this.linkAnchor = seq;
		if (idx < 0) {
			// not loaded yet (still arriving): go there when it is
			this.targetShown = false;
			this.setFollow(false);
			return;
		}
		this.targetShown = true;
		replaceState(`#L${seq}`, {});
		this.jumpToRow(idx);
	}

	private jumpToRow(rowIndex: number, align: ScrollRequest['align'] = 'center'): void {
		const { position, changed } = this.view.reveal(rowIndex);
		if (changed) this.rev++;
		if (position < 0) return;
		this.setFollow(false);
		this.requestScroll(position, align);
	}

	private requestScroll(position: number, align: ScrollRequest['align']): void {
		this.scrollRequest = { id: ++this.scrollSeq, position, align };
	}

	// ---- search -----------------------------------------------------------------------------

	setQuery(q: string): void {
		this.query = q;
		if (this.searchTimer) clearTimeout(this.searchTimer);
		this.searchTimer = setTimeout(() => this.applySearch(), 150);
	}

	setSearchOption(opt: 'regex' | 'caseSensitive', on: boolean): void {
		this[opt] = on;
		this.applySearch();
	}

	/** Enter in the search box: search now if the query changed, else go to the next match. */
	enterSearch(backwards: boolean): void {
		if (this.appliedSearch !== this.searchKey()) this.applySearch();
		else this.nextMatch(backwards ? -1 : 1);
	}

	private searchKey(): string {
		return `${this.regex ? 'r' : 't'}${this.caseSensitive ? 'c' : 'i'}:${this.query}`;
	}

	/** Compile the query and recompute matches; goes to the first match from the top of the view. */
	applySearch(fromRow = -1): void {
		if (this.searchTimer) {
			clearTimeout(this.searchTimer);
			this.searchTimer = null;
		}
		this.appliedSearch = this.searchKey();
		const compiled = compileQuery(this.query, { regex: this.regex, caseSensitive: this.caseSensitive });
		if (compiled && !compiled.ok) {
			this.searchError = compiled.error;
			this.re = null;
			this.view.setSearch(null);
			this.cursor = -1;
			this.rev++;
			return;
		}
		this.searchError = '';
		this.re = compiled ? compiled.re : null;
		this.view.setSearch(this.re);
		const rows = this.view.matchRows;
		if (rows.length === 0) {
			this.cursor = -1;
		} else {
			let i = rows.findIndex((r) => r >= fromRow);
			if (i < 0) i = 0;
			this.cursor = i;
			this.jumpToRow(rows[i]);
		}
		this.rev++;
	}

	get currentMatchRow(): number {
		return this.cursor >= 0 ? (this.view.matchRows[this.cursor] ?? -1) : -1;
	}

	nextMatch(dir: 1 | -1): void {
		const n = this.view.matchRows.length;
		if (n === 0) return;
		this.cursor = this.cursor < 0 ? (dir > 0 ? 0 : n - 1) : (this.cursor + dir + n) % n;
		this.jumpToRow(this.view.matchRows[this.cursor]);
		this.rev++;
	}

	async searchServer(): Promise<void> {
		const term = this.query.trim();
		if (!term) return;
		this.serverBusy = true;
		this.serverError = '';
		this.serverTerm = term;
		try {
			this.serverResults = await searchLogs(this.client, this.runId, term);
		} catch (err) {
			if (isAuthFailure(err)) return this.onAuthLost();
			this.serverResults = null;
			this.serverError = err instanceof Error ? err.message : String(err);
		} finally {
			this.serverBusy = false;
		}
	}

	closeServerResults(): void {
		this.serverResults = null;
		this.serverError = '';
	}

	// ---- notices ----------------------------------------------------------------------------

	showNotice(text: string, tone: Notice['tone']): void {
		this.notice = { id: ++this.noticeSeq, text, tone };
	}

	dismissNotice(): void {
		this.notice = null;
	}

	// ---- copy / download --------------------------------------------------------------------

	lineText(rowIndex: number): string {
		return this.view.plain[rowIndex] ?? '';
	}

	/** Download the whole log from the server (not just what is loaded), as text or JSON lines. */
	async downloadAll(kind: 'text' | 'jsonl'): Promise<void> {
		if (this.download) return;
		this.download = { kind, lines: 0 };
		try {
			const rows = await fetchAllLogs(this.client, this.runId, (n) => {
				if (this.download) this.download = { kind, lines: n };
			});
			const body =
				kind === 'jsonl'
					? rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '')
					: rows.map(textLine).join('');
			const blob = new Blob([body], { type: kind === 'jsonl' ? 'application/x-ndjson' : 'text/plain;charset=utf-8' });
			const url = URL.createObjectURL(blob);
			const a = document.createElement('a');
			a.href = url;
			a.download = `run-${this.runId}.${kind === 'jsonl' ? 'jsonl' : 'log'}`;
			document.body.appendChild(a);
			a.click();
			a.remove();
			setTimeout(() => URL.revokeObjectURL(url), 10_000);
		} catch (err) {
			if (isAuthFailure(err)) return this.onAuthLost();
			this.showNotice(`download failed: ${err instanceof Error ? err.message : String(err)}`, 'bad');
		} finally {
			this.download = null;
		}
	}
}

/** One line of the text download: `<ts> <LEVEL> [step] message` with escapes removed. */
export function textLine(r: LogRow): string {
	const step = r.step ? ` [${r.step}]` : '';
	return `${r.ts} ${r.level.toUpperCase().padEnd(5)}${step} ${stripAnsi(r.message)}\n`;
}
