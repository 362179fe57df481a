/** Row shapes of the tables the console reads (ARCHITECTURE.md §3, "Schema"). */

export const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];

/** One `public.run_logs` row. `seq` is dense per run: 1, 2, 3, … in commit order. */
export interface LogRow {
	id?: number;
	run_id: string;
	seq: number;
	ts: string;
	level: Level;
	step: string | null;
	message: string;
	attrs: Record<string, unknown> | null;
}

export const RUN_STATUSES = ['running', 'succeeded', 'failed', 'paused', 'canceled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** One `public.workflow_runs` row. */
export interface RunRow {
	id: string;
	project_id: string;
	workflow_id: string;
	status: RunStatus;
	started_at: string;
	finished_at: string | null;
	created_at?: string;
	updated_at?: string;
}

export interface WorkflowRow {
	id: string;
	slug: string;
	name?: string | null;
	version?: number;
}

export interface ProjectRow {
	id: string;
	name: string;
}

/** A run is over when it reaches one of these; `paused` may still resume. */
export function isTerminal(status: string): boolean {
	return status === 'succeeded' || status === 'failed' || status === 'canceled';
}

/** Coerce a row from REST or realtime into a LogRow (bigints may arrive as strings). */
export function toLogRow(raw: Record<string, unknown>): LogRow {
	const level = String(raw.level ?? 'info');
	return {
		id: raw.id == null ? undefined : Number(raw.id),
		run_id: String(raw.run_id ?? ''),
		seq: Number(raw.seq),
		ts: String(raw.ts ?? ''),
		level: (LEVELS as readonly string[]).includes(level) ? (level as Level) : 'info',
		step: raw.step == null || raw.step === '' ? null : String(raw.step),
		message: raw.message == null ? '' : String(raw.message),
		attrs:
			raw.attrs && typeof raw.attrs === 'object' && !Array.isArray(raw.attrs)
				? (raw.attrs as Record<string, unknown>)
				: null
	};
}

export function workflowLabel(w: WorkflowRow | undefined): string {
	if (!w) return 'unknown workflow';
	return w.name || w.slug;
}
