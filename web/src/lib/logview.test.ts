import { describe, expect, it } from 'vitest';
import { headerKey, LogView, parseTs, STEP_ALL, STEP_NONE } from './logview';
import { compileQuery } from './search';
import { row } from './testutil';
import type { Level, LogRow } from './types';

function mk(seq: number, step: string | null, level: Level = 'info', message = `m${seq}`): LogRow {
	return row(seq, { step, level, message });
}

/** A fresh view with the same rows and state, rebuilt from scratch: the oracle for incremental appends. */
function rebuiltItems(v: LogView): number[] {
	const w = new LogView();
	w.runStatus = v.runStatus;
	w.levels = new Set(v.levels);
	w.stepFilter = v.stepFilter;
	for (const [k, o] of v.overrides) w.overrides.set(k, o);
	w.append(v.rows);
	for (const [name, info] of v.steps) w.steps.get(name)!.seenRunning = info.seenRunning;
	w.rebuild();
	return w.items;
}

describe('LogView sections', () => {
	it('groups consecutive lines of a step into sections with headers', () => {
		const v = new LogView();
		v.runStatus = 'running';
		v.append([mk(1, null), mk(2, 'build'), mk(3, 'build'), mk(4, 'test'), mk(5, 'test')]);
		expect(v.sections.map((s) => [s.step, s.start, s.end])).toEqual([
			[null, 0, 1],
			['build', 1, 3],
			['test', 3, 5]
		]);
		// build finished before this page saw it running → collapsed; test is running → open
		expect(v.items).toEqual([0, headerKey(1), headerKey(2), 3, 4]);
		expect(v.stepStatus('build')).toBe('done');
		expect(v.stepStatus('test')).toBe('running');
	});

	it('opens steps with errors and the last step of a failed run', () => {
		const v = new LogView();
		v.runStatus = 'failed';
		v.append([mk(1, 'a'), mk(2, 'a', 'error'), mk(3, 'b'), mk(4, 'c')]);
		expect(v.isOpen('a')).toBe(true);
		expect(v.isOpen('b')).toBe(false);
		expect(v.isOpen('c')).toBe(true);
		expect(v.stepStatus('c')).toBe('failed');
	});

	it('keeps a step it saw running open after it finishes', () => {
		const v = new LogView();
		v.setRunStatus('running');
		v.append([mk(1, 'a')]);
		v.noteRunning();
		v.append([mk(2, 'b')]);
		v.noteRunning();
		expect(v.isOpen('a')).toBe(true);
		v.setRunStatus('succeeded');
		expect(v.isOpen('a')).toBe(true);
		expect(v.isOpen('b')).toBe(true);
	});

	it('marks continuation sections when steps interleave', () => {
		const v = new LogView();
		v.append([mk(1, 'a'), mk(2, 'b'), mk(3, 'a')]);
		expect(v.sections.map((s) => s.first)).toEqual([true, true, false]);
	});

	it('toggles and expands/collapses all', () => {
		const v = new LogView();
		v.runStatus = 'succeeded';
		v.append([mk(1, 'a'), mk(2, 'a'), mk(3, 'b')]);
		expect(v.items).toEqual([headerKey(0), headerKey(1)]);
		v.toggleStep('a');
		expect(v.items).toEqual([headerKey(0), 0, 1, headerKey(1)]);
		v.setAllOpen(true);
		expect(v.items).toEqual([headerKey(0), 0, 1, headerKey(1), 2]);
		v.setAllOpen(false);
		expect(v.items).toEqual([headerKey(0), headerKey(1)]);
	});
});

describe('LogView filters', () => {
	it('filters by level and hides headers of sections with nothing visible', () => {
		const v = new LogView();
		v.runStatus = 'running';
		v.append([mk(1, null, 'debug'), mk(2, 'a', 'debug'), mk(3, 'b', 'error'), mk(4, 'b', 'info')]);
		expect(v.counts).toEqual({ debug: 2, info: 1, warn: 0, error: 1 });
		v.setLevels(['error']);
		expect(v.items).toEqual([headerKey(2), 2]);
		v.toggleLevel('debug');
		expect(v.items).toEqual([0, headerKey(1), headerKey(2), 2]);
	});

	it('filters by step, showing the chosen step open', () => {
		const v = new LogView();
		v.runStatus = 'succeeded';
		v.append([mk(1, null), mk(2, 'a'), mk(3, 'b'), mk(4, 'a')]);
		v.setStepFilter('a');
		expect(v.items).toEqual([headerKey(1), 1, headerKey(3), 3]);
		v.setStepFilter(STEP_NONE);
		expect(v.items).toEqual([0]);
		v.setStepFilter(STEP_ALL);
		expect(v.items).toEqual([0, headerKey(1), headerKey(2), headerKey(3)]);
	});

	it('incremental appends equal a full rebuild', () => {
		let seed = 42;
		const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
		const steps = [null, 'checkout', 'build', 'test', 'deploy'];
		const levels: Level[] = ['debug', 'info', 'warn', 'error'];
		for (const filter of [
			() => {},
			(v: LogView) => v.setLevels(['info', 'error']),
			(v: LogView) => v.setStepFilter('build'),
			(v: LogView) => v.toggleStep('test')
		]) {
			const v = new LogView();
			v.setRunStatus('running');
			filter(v);
			let seq = 0;
			for (let batch = 0; batch < 60; batch++) {
				const b: LogRow[] = [];
				const n = 1 + rand(20);
				const step = steps[rand(steps.length)];
				for (let i = 0; i < n; i++) b.push(mk(++seq, rand(4) === 0 ? steps[rand(5)] : step, levels[rand(10) === 0 ? 3 : rand(3)]));
				v.append(b);
				if (batch % 5 === 0) v.noteRunning();
				expect(v.items).toEqual(rebuiltItems(v));
			}
		}
	});
});

describe('LogView lookup and reveal', () => {
	it('finds rows by seq, also with holes in the seqs', () => {
		const v = new LogView();
		v.append([mk(5, null), mk(6, null), mk(9, null)]);
		expect(v.indexOfSeq(5)).toBe(0);
		expect(v.indexOfSeq(9)).toBe(2);
		expect(v.indexOfSeq(7)).toBe(-1);
		expect(v.lastSeq).toBe(9);
	});

	it('reveals a hidden row by widening filters and opening its step', () => {
		const v = new LogView();
		v.runStatus = 'succeeded';
		v.append([mk(1, 'a', 'debug'), mk(2, 'b')]);
		v.setLevels(['info']);
		v.setStepFilter('b');
		const { position, changed } = v.reveal(0);
		expect(changed).toBe(true);
		expect(v.items[position]).toBe(0);
		expect(v.levels.has('debug')).toBe(true);
		expect(v.stepFilter).toBe(STEP_ALL);
		expect(v.isOpen('a')).toBe(true);
	});

	it('reports no change when the row is already visible', () => {
		const v = new LogView();
		v.append([mk(1, null)]);
		expect(v.reveal(0)).toEqual({ position: 0, changed: false });
	});
});

describe('LogView search', () => {
	it('finds matching rows, ignoring ANSI, and follows filters and appends', () => {
		const v = new LogView();
		v.append([mk(1, null, 'info', 'Build \x1b[31mFAILED\x1b[0m'), mk(2, null, 'debug', 'failed again'), mk(3, null)]);
		const q = compileQuery('failed', { regex: false, caseSensitive: false });
		if (!q || !q.ok) throw new Error();
		v.setSearch(q.re);
		expect(v.matchRows).toEqual([0, 1]);
		v.setLevels(['info']);
		expect(v.matchRows).toEqual([0]);
		v.append([mk(4, null, 'info', 'FAILED once more')]);
		expect(v.matchRows).toEqual([0, 3]);
		v.setSearch(null);
		expect(v.matchRows).toEqual([]);
	});

	it('keeps matches when collapsing sections', () => {
		const v = new LogView();
		v.runStatus = 'running';
		v.append([mk(1, 'a', 'info', 'needle'), mk(2, 'b')]);
		const q = compileQuery('needle', { regex: false, caseSensitive: false });
		if (!q || !q.ok) throw new Error();
		v.setSearch(q.re);
		v.setAllOpen(false);
		expect(v.matchRows).toEqual([0]);
	});
});

describe('parseTs', () => {
	it('reads ISO and Postgres text timestamps', () => {
		expect(parseTs('2026-09-01T10:00:00.123456+00:00')).toBe(Date.UTC(2026, 8, 1, 10, 0, 0, 123));
		expect(parseTs('2026-09-01 10:00:00.5+00')).toBe(Date.UTC(2026, 8, 1, 10, 0, 0, 500));
		expect(Number.isNaN(parseTs('nope'))).toBe(true);
	});
});
