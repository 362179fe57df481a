/** Helpers shared by the unit tests. */
import type { Level, LogRow } from './types';

export function row(seq: number, over: Partial<LogRow> = {}): LogRow {
	return {
		run_id: 'run-1',
		seq,
		ts: new Date(Date.UTC(2026, 0, 1, 0, 0, 0) + seq * 1000).toISOString(),
		level: 'info' as Level,
		step: null,
		message: `line ${seq}`,
		attrs: {},
		...over
	};
}

export function rows(from: number, to: number, over: Partial<LogRow> = {}): LogRow[] {
	const out: LogRow[] = [];
	for (let s = from; s <= to; s++) out.push(row(s, over));
	return out;
}

export function seqs(rs: LogRow[]): number[] {
	return rs.map((r) => r.seq);
}
