/**
 * Text search helpers: compile the user's query, find match ranges, split styled segments at
 * match boundaries for highlighting, and escape a term for a server-side ILIKE search.
 */

import type { Segment, AnsiStyle } from './ansi';

export interface SearchOptions {
	regex: boolean;
	caseSensitive: boolean;
}

export type CompiledQuery =
	| { ok: true; re: RegExp; source: string }
	| { ok: false; error: string }
	| null;

/** Upper bound on highlighted ranges per line, so a pathological query cannot stall rendering. */
export const MAX_RANGES_PER_LINE = 500;

export function escapeRegExp(text: string): string {
	return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Compile a query into a global RegExp. Empty query → null. An invalid regex yields
 * `{ok: false, error}` with the engine's message; it never throws.
 */
export function compileQuery(query: string, opts: SearchOptions): CompiledQuery {
	if (query === '') return null;
	const source = opts.regex ? query : escapeRegExp(query);
	const flags = opts.caseSensitive ? 'gu' : 'giu';
	try {
		return { ok: true, re: new RegExp(source, flags), source };
	} catch (err) {
		const message = err instanceof Error ? err.message : String(err);
		// "Invalid regular expression: /(a/giu: Unterminated group" → "Unterminated group"
		return { ok: false, error: message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '') };
	}
}

/** True when `text` has at least one match. Resets the regex's lastIndex. */
export function matches(re: RegExp, text: string): boolean {
	re.lastIndex = 0;
	const found = re.test(text);
	re.lastIndex = 0;
	return found;
}

/** Non-overlapping [start, end) ranges of every non-empty match in `text`. */
export function findRanges(re: RegExp, text: string, limit = MAX_RANGES_PER_LINE): [number, number][] {
	const out: [number, number][] = [];
	re.lastIndex = 0;
	while (out.length < limit) {
		const m = re.exec(text);
		if (!m) break;
		if (m[0].length === 0) {
			// Zero-length match (e.g. /^/ or /a*/): skip ahead so the loop always progresses.
			re.lastIndex = m.index + 1;
			if (m.index >= text.length) break;
			continue;
		}
		out.push([m.index, m.index + m[0].length]);
	}
	re.lastIndex = 0;
	return out;
}

export interface Piece {
	text: string;
	style: AnsiStyle | null;
	/** Index of the match range this piece belongs to, or -1. */
	match: number;
}

/**
 * Split styled segments at match range boundaries. Ranges are offsets into the concatenated
 * segment text (the plain line) and must be sorted and non-overlapping.
 */
export function splitSegments(segments: Segment[], ranges: [number, number][]): Piece[] {
	if (ranges.length === 0) return segments.map((s) => ({ text: s.text, style: s.style, match: -1 }));
	const out: Piece[] = [];
	let offset = 0;
	let r = 0;
	for (const seg of segments) {
		const segEnd = offset + seg.text.length;
		let pos = offset;
		while (pos < segEnd) {
			while (r < ranges.length && ranges[r][1] <= pos) r++;
			if (r >= ranges.length || ranges[r][0] >= segEnd) {
				out.push({ text: seg.text.slice(pos - offset), style: seg.style, match: -1 });
				pos = segEnd;
			} else if (ranges[r][0] > pos) {
				out.push({ text: seg.text.slice(pos - offset, ranges[r][0] - offset), style: seg.style, match: -1 });
				pos = ranges[r][0];
			} else {
				const end = Math.min(ranges[r][1], segEnd);
				out.push({ text: seg.text.slice(pos - offset, end - offset), style: seg.style, match: r });
				pos = end;
			}
		}
		offset = segEnd;
	}
	return out;
}

/**
 * Escape a term for PostgREST `ilike` so it matches literally inside `%…%`: backslash escapes
 * `\`, `%` and `_` (Postgres' default LIKE escape character). `*` is left alone: PostgREST reads it
 * as a `%` wildcard, which is harmless for a search box.
 */
export function escapeLike(term: string): string {
	return term.replace(/[\\%_]/g, (c) => '\\' + c);
}
