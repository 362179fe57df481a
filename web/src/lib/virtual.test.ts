import { describe, expect, it } from 'vitest';
import { estimateLines, HeightIndex, ItemHeights, visibleRange } from './virtual';

function naivePrefix(hs: number[], i: number): number {
	let s = 0;
	for (let k = 0; k < i; k++) s += hs[k];
	return s;
}

describe('HeightIndex', () => {
	it('matches naive prefix sums through pushes, sets and growth', () => {
		const idx = new HeightIndex(4);
		const hs: number[] = [];
		let seed = 7;
		const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
		for (let i = 0; i < 300; i++) {
			const h = 10 + Math.floor(rand() * 50);
			hs.push(h);
			idx.push(h);
			if (i % 7 === 0) {
				const j = Math.floor(rand() * hs.length);
				hs[j] = 5 + Math.floor(rand() * 80);
				idx.set(j, hs[j]);
			}
		}
		expect(idx.length).toBe(300);
		for (const i of [0, 1, 2, 3, 17, 128, 255, 256, 299, 300]) expect(idx.prefix(i)).toBe(naivePrefix(hs, i));
		expect(idx.total()).toBe(naivePrefix(hs, 300));
	});

	it('finds the row at an offset', () => {
		const idx = new HeightIndex();
		idx.reset([10, 20, 30, 40]);
		expect(idx.indexAt(0)).toBe(0);
		expect(idx.indexAt(9.9)).toBe(0);
		expect(idx.indexAt(10)).toBe(1);
		expect(idx.indexAt(29)).toBe(1);
		expect(idx.indexAt(30)).toBe(2);
		expect(idx.indexAt(99)).toBe(3);
		expect(idx.indexAt(10_000)).toBe(3);
		expect(idx.indexAt(-5)).toBe(0);
	});

	it('handles 200,000 rows quickly', () => {
		const idx = new HeightIndex();
		const hs = new Float64Array(200_000).fill(20);
		const t0 = performance.now();
		idx.reset(hs);
		for (let i = 0; i < 10_000; i++) idx.set((i * 7919) % 200_000, 40);
		for (let i = 0; i < 10_000; i++) idx.indexAt(i * 400);
		expect(performance.now() - t0).toBeLessThan(500);
		expect(idx.total()).toBe(200_000 * 20 + 10_000 * 20);
	});

	it('reset shrinks and clears old values', () => {
		const idx = new HeightIndex(2);
		idx.reset([1, 2, 3, 4, 5]);
		idx.reset([7, 7]);
		expect(idx.length).toBe(2);
		expect(idx.total()).toBe(14);
		idx.push(1);
		expect(idx.total()).toBe(15);
	});
});

describe('visibleRange', () => {
	it('covers the viewport plus overscan', () => {
		const idx = new HeightIndex();
		idx.reset(new Array(1000).fill(20));
		const r = visibleRange(idx, 2000, 400, 100);
		expect(r.start).toBe(95);
		expect(r.end).toBe(126);
		expect(r.offset).toBe(95 * 20);
	});

	it('is empty for an empty list', () => {
		expect(visibleRange(new HeightIndex(), 0, 500)).toEqual({ start: 0, end: 0, offset: 0 });
	});

	it('clamps at the end', () => {
		const idx = new HeightIndex();
		idx.reset([20, 20, 20]);
		const r = visibleRange(idx, 0, 1000, 100);
		expect(r).toEqual({ start: 0, end: 3, offset: 0 });
	});
});

describe('ItemHeights', () => {
	it('keeps measurements by key across a reset', () => {
		const h = new ItemHeights(() => 20);
		h.reset([5, 6, 7]);
		expect(h.measure(1, 6, 60)).toBe(40);
		expect(h.index.total()).toBe(100);
		h.reset([6, 7]); // row 5 filtered out
		expect(h.index.get(0)).toBe(60);
		expect(h.index.total()).toBe(80);
		h.append([6, 7, 8], 2);
		expect(h.index.total()).toBe(100);
		h.invalidate();
		h.reset([6, 7, 8]);
		expect(h.index.total()).toBe(60);
	});
});

describe('estimateLines', () => {
	it('counts newlines and wraps', () => {
		expect(estimateLines('abc', 80, true)).toBe(1);
		expect(estimateLines('a'.repeat(200), 80, true)).toBe(3);
		expect(estimateLines('a'.repeat(200), 80, false)).toBe(1);
		expect(estimateLines('a\nb\nc', 80, false)).toBe(3);
		expect(estimateLines('a\n' + 'b'.repeat(100), 50, true)).toBe(3);
		expect(estimateLines('trailing\n', 80, true)).toBe(1);
		expect(estimateLines('', 80, true)).toBe(1);
	});
});
