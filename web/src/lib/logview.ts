/**
 * The run view's display model, kept out of the components so it can be unit-tested.
 *
 * Rows arrive in seq order (from logstream.ts). They are grouped into *sections*: maximal runs of
 * consecutive lines with the same step, so the view stays in true seq order even when steps
 * interleave. A section with a step gets a header row; collapsing a step hides the lines of all
 * its sections. The display list `items` holds row indexes (>= 0) and section headers
 * (-(section index + 1)) in display order; it grows incrementally as lines arrive and is rebuilt
 * only when a filter or an open/closed state changes.
 *
 * Steps open by default while running or when they have error lines; a step this page saw running
 * stays open after it finishes (nothing collapses under the reader's eyes). Steps of a run loaded
 * after they finished start collapsed, as in GitHub Actions.
 */

import { stripAnsi } from './ansi';
import { matches } from './search';
import { LEVELS, type Level, type LogRow, type RunStatus } from './types';

export type LevelCounts = Record<Level, number>;

export interface Section {
	index: number;
	step: string | null;
	/** Row index range [start, end). */
	start: number;
	end: number;
	counts: LevelCounts;
	/** First section of its step (later ones are continuations after interleaving). */
	first: boolean;
}

export interface StepInfo {
	name: string;
	lines: number;
	counts: LevelCounts;
	firstTs: number;
	lastTs: number;
	firstSeq: number;
	lastSeq: number;
	seenRunning: boolean;
}

export type StepStatus = 'running' | 'failed' | 'done';

/** Step filter values besides a step name. */
export const STEP_ALL = '\u0000all';
export const STEP_NONE = '\u0000none';

export function emptyCounts(): LevelCounts {
	return { debug: 0, info: 0, warn: 0, error: 0 };
}

/** Milliseconds since the epoch for a Postgres/ISO timestamp ("…T…+00:00" or "… …+00"); NaN if unreadable. */
export function parseTs(ts: string): number {
	const direct = Date.parse(ts);
	if (!Number.isNaN(direct)) return direct;
	const iso = ts.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00');
	return Date.parse(iso);
}

export function headerKey(sectionIndex: number): number {
	return -(sectionIndex + 1);
}

export function sectionOfKey(key: number): number {
	return -key - 1;
}

export class LogView {
	readonly rows: LogRow[] = [];
	/** Plain text per row (the message itself when it has no escapes). */
	readonly plain: string[] = [];
	readonly tsMs: number[] = [];
	readonly sections: Section[] = [];
	readonly steps = new Map<string, StepInfo>();
	readonly counts: LevelCounts = emptyCounts();

	/** Display list: row indexes and section headers (negative keys). */
	items: number[] = [];
	/** Bumps whenever `items` is rebuilt rather than appended to. */
	structure = 0;

	levels = new Set<Level>(LEVELS);
	stepFilter: string = STEP_ALL;
	readonly overrides = new Map<string, boolean>();
	runStatus: RunStatus | null = null;
	/** Step of the most recent line that had one. */
	lastStep: string | null = null;

	query: RegExp | null = null;
	/** Row indexes matching `query` (and the level/step filters), ascending. */
	matchRows: number[] = [];

	private openCache = new Map<string, boolean>();
	private headerShown = new Set<number>();

	get length(): number {
		return this.rows.length;
	}

	get lastSeq(): number {
		return this.rows.length ? this.rows[this.rows.length - 1].seq : 0;
	}

	/** Add rows (ascending seq, all newer than the last). Returns true if `items` was rebuilt. */
	append(batch: LogRow[]): boolean {
		if (batch.length === 0) return false;
		const from = this.rows.length;
		for (const row of batch) this.ingest(row);
		const rebuilt = this.openStateChanged();
		if (rebuilt) this.rebuild();
		else this.appendItems(from);
		this.appendMatches(from);
		return rebuilt;
	}

	private ingest(row: LogRow): void {
		const i = this.rows.length;
		this.rows.push(row);
		this.plain.push(stripAnsi(row.message));
		const t = parseTs(row.ts);
		this.tsMs.push(t);
		this.counts[row.level]++;

		let section = this.sections[this.sections.length - 1];
		if (!section || section.step !== row.step) {
			const first = row.step === null || !this.steps.has(row.step);
			section = { index: this.sections.length, step: row.step, start: i, end: i, counts: emptyCounts(), first };
			this.sections.push(section);
		}
		section.end = i + 1;
		section.counts[row.level]++;

		if (row.step !== null) {
			let info = this.steps.get(row.step);
			if (!info) {
				info = {
					name: row.step,
					lines: 0,
					counts: emptyCounts(),
					firstTs: t,
					lastTs: t,
					firstSeq: row.seq,
					lastSeq: row.seq,
					seenRunning: false
				};
				this.steps.set(row.step, info);
			}
			info.lines++;
			info.counts[row.level]++;
			if (!Number.isNaN(t)) {
				if (Number.isNaN(info.firstTs)) info.firstTs = t;
				info.lastTs = t;
			}
			info.lastSeq = row.seq;
			this.lastStep = row.step;
		}
	}

	stepPasses(step: string | null): boolean {
		if (this.stepFilter === STEP_ALL) return true;
		if (this.stepFilter === STEP_NONE) return step === null;
		return step === this.stepFilter;
	}

	stepStatus(step: string): StepStatus {
		const info = this.steps.get(step);
		if (step === this.lastStep) {
			if (this.runStatus === 'running') return 'running';
			if (this.runStatus === 'failed') return 'failed';
		}
		if (info && info.counts.error > 0) return 'failed';
		return 'done';
	}

	isOpen(step: string | null): boolean {
		if (step === null) return true;
		if (this.stepFilter !== STEP_ALL) return true;
		const o = this.overrides.get(step);
		if (o !== undefined) return o;
		const info = this.steps.get(step);
		return this.stepStatus(step) !== 'done' || (info?.seenRunning ?? false);
	}

	private openStateChanged(): boolean {
		let changed = false;
		for (const step of this.steps.keys()) {
			const open = this.isOpen(step);
			const cached = this.openCache.get(step);
			if (cached === undefined) {
				this.openCache.set(step, open);
			} else if (cached !== open) {
				changed = true;
			}
		}
		return changed;
	}

	/** Recompute the whole display list (filters or open states changed). */
	rebuild(): void {
		const items: number[] = [];
		this.headerShown.clear();
		this.openCache.clear();
		for (const step of this.steps.keys()) this.openCache.set(step, this.isOpen(step));
		for (const s of this.sections) {
			if (!this.stepPasses(s.step)) continue;
			if (s.step !== null) {
				let visible = false;
				for (const lvl of this.levels) if (s.counts[lvl] > 0) visible = true;
				if (!visible) continue;
				items.push(headerKey(s.index));
				this.headerShown.add(s.index);
				if (!this.openCache.get(s.step)) continue;
			}
			for (let i = s.start; i < s.end; i++) if (this.levels.has(this.rows[i].level)) items.push(i);
		}
		this.items = items;
		this.structure++;
	}

	private appendItems(from: number): void {
		let si = this.sections.length - 1;
		while (si > 0 && this.sections[si].start > from) si--;
		for (let i = from; i < this.rows.length; i++) {
			while (this.sections[si].end <= i) si++;
			const s = this.sections[si];
			const row = this.rows[i];
			if (!this.stepPasses(s.step) || !this.levels.has(row.level)) continue;
			if (s.step !== null) {
				if (!this.headerShown.has(s.index)) {
					this.items.push(headerKey(s.index));
					this.headerShown.add(s.index);
				}
				if (!this.openCache.get(s.step)) continue;
			}
			this.items.push(i);
		}
	}

	// ---- filters and sections -------------------------------------------------------------

	setLevels(levels: Iterable<Level>): void {
		this.levels = new Set(levels);
		this.rebuild();
		this.recomputeMatches();
	}

	toggleLevel(level: Level): void {
		const next = new Set(this.levels);
		if (next.has(level)) next.delete(level);
		else next.add(level);
		this.setLevels(next);
	}

	setStepFilter(step: string): void {
		this.stepFilter = step;
		this.rebuild();
		this.recomputeMatches();
	}

	toggleStep(step: string): void {
		this.overrides.set(step, !this.isOpen(step));
		this.rebuild();
	}

	setAllOpen(open: boolean): void {
		for (const step of this.steps.keys()) this.overrides.set(step, open);
		this.rebuild();
	}

	/** Tell the model the run's status; rebuilds if that changes which steps are open. */
	setRunStatus(status: RunStatus | null): boolean {
		if (status === this.runStatus) return false;
		this.runStatus = status;
		if (this.openStateChanged()) {
			this.rebuild();
			return true;
		}
		return false;
	}

	/** Called while the view is live: the step running now stays open after it finishes. */
	noteRunning(): void {
		if (this.runStatus !== 'running' || this.lastStep === null) return;
		const info = this.steps.get(this.lastStep);
		if (info) info.seenRunning = true;
	}

	// ---- lookup ----------------------------------------------------------------------------

	/** Row index of `seq`, or -1. */
	indexOfSeq(seq: number): number {
		let lo = 0;
		let hi = this.rows.length - 1;
		while (lo <= hi) {
			const mid = (lo + hi) >> 1;
			const s = this.rows[mid].seq;
			if (s === seq) return mid;
			if (s < seq) lo = mid + 1;
			else hi = mid - 1;
		}
		return -1;
	}

	/** Display position of a row index, or -1 when hidden. */
	positionOf(rowIndex: number): number {
		return this.items.indexOf(rowIndex);
	}

	/**
	 * Make a row visible (widen the filters, open its step) and return its display position.
	 * `changed` tells whether any filter or section state had to change.
	 */
	reveal(rowIndex: number): { position: number; changed: boolean } {
		const row = this.rows[rowIndex];
		if (!row) return { position: -1, changed: false };
		let filtered = false;
		if (!this.stepPasses(row.step)) {
			this.stepFilter = STEP_ALL;
			filtered = true;
		}
		if (!this.levels.has(row.level)) {
			this.levels = new Set([...this.levels, row.level]);
			filtered = true;
		}
		let changed = filtered;
		if (row.step !== null && !this.isOpen(row.step)) {
			this.overrides.set(row.step, true);
			changed = true;
		}
		if (changed) this.rebuild();
		if (filtered) this.recomputeMatches();
		return { position: this.positionOf(rowIndex), changed };
	}

	// ---- search ----------------------------------------------------------------------------

	setSearch(re: RegExp | null): void {
		this.query = re;
		this.recomputeMatches();
	}

	private recomputeMatches(): void {
		this.matchRows = [];
		this.appendMatches(0);
	}

	private appendMatches(from: number): void {
		const re = this.query;
		if (!re) return;
		for (let i = from; i < this.rows.length; i++) {
			const row = this.rows[i];
			if (!this.levels.has(row.level) || !this.stepPasses(row.step)) continue;
			if (matches(re, this.plain[i])) this.matchRows.push(i);
		}
	}
}
