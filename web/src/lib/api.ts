/**
 * Every REST query the console makes (PostgREST syntax through supabase-js). Pages and components
 * call these and never build queries themselves. No resource embedding: the meshlogs REST subset
 * serves plain selects, so names are looked up with separate `in` queries.
 */

import type { SupabaseClient } from '@supabase/supabase-js';
import { toLogRow, type LogRow, type ProjectRow, type RunRow, type WorkflowRow } from './types';

/** Lines per backfill / download request. */
/** Rows asked for per page; servers may return fewer (max-rows), so paging ends on an empty page. */
export const PAGE_SIZE = 1000;
/** Ids per `in.(…)` filter, to keep URLs short. */
const IN_CHUNK = 100;

export class ApiError extends Error {
	override name = 'ApiError';
	constructor(
		context: string,
		message: string,
		/** HTTP status (401: the session is no longer accepted). */
		readonly status: number,
		readonly code?: string
	) {
		super(`${context}: ${message}`);
	}
}

/** True when the server no longer accepts the session (expired / revoked / new JWT secret). */
export function isAuthFailure(err: unknown): boolean {
	return err instanceof ApiError && (err.status === 401 || err.code === 'PGRST301' || err.code === 'PGRST303');
}

interface PgResult<T> {
	data: T[] | null;
	error: { message: string; code?: string } | null;
	status: number;
}

function unwrap<T>(context: string, res: PgResult<T>): T[] {
	if (res.error) {
		throw new ApiError(context, res.error.message || `HTTP ${res.status}`, res.status, res.error.code);
	}
	return res.data ?? [];
}

function chunks<T>(xs: T[], size: number): T[][] {
	const out: T[][] = [];
	for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
	return out;
}

/** The newest runs the user can see (RLS decides which). */
export async function fetchRuns(client: SupabaseClient, limit = 200): Promise<RunRow[]> {
	const res = await client
		.from('workflow_runs')
		.select('*')
		.order('started_at', { ascending: false })
		.limit(limit);
	return unwrap<RunRow>('runs', res);
}

export async function fetchRun(client: SupabaseClient, id: string): Promise<RunRow | null> {
	const res = await client.from('workflow_runs').select('*').eq('id', id).limit(1);
	return unwrap<RunRow>('run', res)[0] ?? null;
}

export async function fetchWorkflows(client: SupabaseClient, ids: string[]): Promise<Map<string, WorkflowRow>> {
	const out = new Map<string, WorkflowRow>();
	for (const part of chunks([...new Set(ids)], IN_CHUNK)) {
		let res: PgResult<WorkflowRow> = await client
			.from('workflow_definitions')
			.select('id,name,slug,version')
			.in('id', part);
		if (res.error) {
			// Schemas older than MeshHook's `name` column: fall back to the slug.
			res = await client.from('workflow_definitions').select('id,slug,version').in('id', part);
		}
		for (const w of unwrap<WorkflowRow>('workflows', res)) out.set(w.id, w);
	}
	return out;
}

export async function fetchProjects(client: SupabaseClient, ids: string[]): Promise<Map<string, ProjectRow>> {
	const out = new Map<string, ProjectRow>();
	for (const part of chunks([...new Set(ids)], IN_CHUNK)) {
		const res = await client.from('projects').select('id,name').in('id', part);
		for (const p of unwrap<ProjectRow>('projects', res)) out.set(p.id, p);
	}
	return out;
}

/** One backfill page: lines of `runId` with seq > afterSeq, ascending, at most `limit`. */
export async function fetchLogPage(
	client: SupabaseClient,
	runId: string,
	afterSeq: number,
	limit = PAGE_SIZE
): Promise<LogRow[]> {
	const res = await client
		.from('run_logs')
		.select('*')
		.eq('run_id', runId)
		.gt('seq', afterSeq)
		.order('seq', { ascending: true })
		.range(0, limit - 1);
	return unwrap<Record<string, unknown>>('logs', res).map(toLogRow);
}

/** The whole log from the server, page by page (for downloads). */
export async function fetchAllLogs(
	client: SupabaseClient,
	runId: string,
	onProgress?: (lines: number) => void
): Promise<LogRow[]> {
	const all: LogRow[] = [];
	let after = 0;
	for (;;) {
		const page = await fetchLogPage(client, runId, after, PAGE_SIZE);
		for (const row of page) all.push(row);
		onProgress?.(all.length);
		if (page.length === 0) return all;
		after = page[page.length - 1].seq;
	}
}

export interface ServerMatch {
	seq: number;
	level: string;
	step: string | null;
	message: string;
}

/**
 * Server-side search over the whole log of a run (case-insensitive substring), through the
 * `search_run_logs` function: it uses the search index (migration 0012) where a plain
 * `ilike` under RLS must read every line of the run (measured: ~18 ms vs ~580 ms for a rare term in
 * a 1,000,000-line run). It returns rows under the caller's RLS, like a table read, and exists on a
 * hosted Supabase project too once the migrations are applied.
 */
export async function searchLogs(
	client: SupabaseClient,
	runId: string,
	term: string,
	limit = 500
): Promise<ServerMatch[]> {
	const res = await client.rpc('search_run_logs', {
		p_run_id: runId,
		p_query: term,
		p_after_seq: 0,
		p_limit: Math.min(Math.max(limit, 1), 1000),
		p_regex: false
	});
	return unwrap<Record<string, unknown>>('search', res).map((r) => ({
		seq: Number(r.seq),
		level: String(r.level ?? ''),
		step: r.step == null ? null : String(r.step),
		message: String(r.message ?? '')
	}));
}
