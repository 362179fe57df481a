import { describe, expect, it } from 'vitest';
import { lineHash, parseLineHash } from './permalink';

describe('line permalinks', () => {
	it('reads single lines and ranges', () => {
		expect(parseLineHash('#L120')).toEqual({ from: 120, to: 120 });
		expect(parseLineHash('#L10-L20')).toEqual({ from: 10, to: 20 });
		expect(parseLineHash('#L10-20')).toEqual({ from: 10, to: 20 });
	});

	it('normalises reversed ranges', () => {
		expect(parseLineHash('#L20-L10')).toEqual({ from: 10, to: 20 });
	});

	it('ignores fragments that are not line links', () => {
		for (const h of ['', '#', '#L', '#L0', '#Lx', '#L1-', '#L1-Lx', '#top', 'L12', '#L1-L0']) {
			expect(parseLineHash(h)).toBeNull();
		}
	});

	it('writes what it reads', () => {
		expect(lineHash({ from: 7, to: 7 })).toBe('#L7');
		expect(lineHash({ from: 7, to: 9 })).toBe('#L7-L9');
		expect(parseLineHash(lineHash({ from: 3, to: 42 }))).toEqual({ from: 3, to: 42 });
	});
});
