import { describe, expect, it } from 'vitest';
import { compileQuery, escapeLike, findRanges, matches, splitSegments } from './search';

describe('compileQuery', () => {
	it('returns null for an empty query', () => {
		expect(compileQuery('', { regex: false, caseSensitive: false })).toBeNull();
	});

	it('escapes plain text and is case-insensitive by default', () => {
		const q = compileQuery('a.b(c)', { regex: false, caseSensitive: false });
		expect(q && q.ok).toBe(true);
		if (!q || !q.ok) return;
		expect(matches(q.re, 'xx A.B(C) yy')).toBe(true);
		expect(matches(q.re, 'aXb(c)')).toBe(false);
	});

	it('respects case sensitivity', () => {
		const q = compileQuery('Error', { regex: false, caseSensitive: true });
		if (!q || !q.ok) throw new Error('expected ok');
		expect(matches(q.re, 'error')).toBe(false);
		expect(matches(q.re, 'Error')).toBe(true);
	});

	it('reports an invalid regex instead of throwing', () => {
		const q = compileQuery('(unclosed', { regex: true, caseSensitive: false });
		expect(q).not.toBeNull();
		expect(q && !q.ok && q.error).toBe('Unterminated group');
	});

	it('compiles a valid regex', () => {
		const q = compileQuery('err(or)?\\s+\\d+', { regex: true, caseSensitive: false });
		if (!q || !q.ok) throw new Error('expected ok');
		expect(matches(q.re, 'ERROR 42')).toBe(true);
		// stateless across calls despite the g flag
		expect(matches(q.re, 'ERROR 42')).toBe(true);
	});
});

describe('findRanges', () => {
	it('finds all non-overlapping ranges', () => {
		const q = compileQuery('ab', { regex: false, caseSensitive: false });
		if (!q || !q.ok) throw new Error();
		expect(findRanges(q.re, 'ab xab AB')).toEqual([
			[0, 2],
			[4, 6],
			[7, 9]
		]);
	});

	it('does not loop on zero-length matches', () => {
		const q = compileQuery('x*', { regex: true, caseSensitive: false });
		if (!q || !q.ok) throw new Error();
		expect(findRanges(q.re, 'abxxc')).toEqual([[2, 4]]);
		const q2 = compileQuery('^', { regex: true, caseSensitive: false });
		if (!q2 || !q2.ok) throw new Error();
		expect(findRanges(q2.re, 'abc')).toEqual([]);
	});

	it('caps the number of ranges', () => {
		const q = compileQuery('a', { regex: false, caseSensitive: false });
		if (!q || !q.ok) throw new Error();
		expect(findRanges(q.re, 'a'.repeat(10_000), 50)).toHaveLength(50);
	});
});

describe('splitSegments', () => {
	it('splits styled segments at match boundaries', () => {
		const red = { fg: 'var(--ansi-1)' };
		const pieces = splitSegments(
			[
				{ text: 'hello ', style: null },
				{ text: 'world', style: red }
			],
			[[4, 8]]
		);
		expect(pieces).toEqual([
			{ text: 'hell', style: null, match: -1 },
			{ text: 'o ', style: null, match: 0 },
			{ text: 'wo', style: red, match: 0 },
			{ text: 'rld', style: red, match: -1 }
		]);
	});

	it('keeps the text intact with several ranges', () => {
		const segs = [
			{ text: 'abcabc', style: null },
			{ text: 'abc', style: null }
		];
		const pieces = splitSegments(segs, [
			[0, 1],
			[3, 4],
			[6, 9]
		]);
		expect(pieces.map((p) => p.text).join('')).toBe('abcabcabc');
		expect(pieces.filter((p) => p.match >= 0).map((p) => p.text)).toEqual(['a', 'a', 'abc']);
	});

	it('passes segments through without ranges', () => {
		expect(splitSegments([{ text: 'x', style: null }], [])).toEqual([{ text: 'x', style: null, match: -1 }]);
	});
});

describe('escapeLike', () => {
	it('escapes LIKE wildcards and backslashes', () => {
		expect(escapeLike('100%_done\\')).toBe('100\\%\\_done\\\\');
		expect(escapeLike('plain')).toBe('plain');
	});
});
