/**
 * Line permalinks in the URL fragment: `#L120` for one line, `#L10-L20` (or `#L10-20`) for a range,
 * as on GitHub. Pure so the parsing rules are unit-tested; the run view reads and writes them.
 */

export interface LineRange {
	/** First line (seq) of the range, inclusive. */
	from: number;
	/** Last line (seq), inclusive; equal to `from` for a single line. */
	to: number;
}

/** The range a fragment names, normalised so from <= to; null when it is not a line link. */
export function parseLineHash(hash: string): LineRange | null {
	const m = /^#L(\d+)(?:-L?(\d+))?$/.exec(hash);
	if (!m) return null;
	const a = Number(m[1]);
	const b = m[2] === undefined ? a : Number(m[2]);
	if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || a < 1 || b < 1) return null;
	return { from: Math.min(a, b), to: Math.max(a, b) };
}

/** The fragment for a range: `#L7` or `#L7-L9`. */
export function lineHash(range: LineRange): string {
	return range.from === range.to ? `#L${range.from}` : `#L${range.from}-L${range.to}`;
}
