/** Human-readable times and durations. */

function pad(n: number, width = 2): string {
	return String(n).padStart(width, '0');
}

/** 350ms, 4.2s, 2m 05s, 1h 02m. Negative or NaN → "–". */
export function formatDuration(ms: number): string {
	if (!Number.isFinite(ms) || ms < 0) return '–';
	if (ms < 1000) return `${Math.round(ms)}ms`;
	if (ms < 60_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`;
	const s = Math.floor(ms / 1000);
	if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
	return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
}

/** Local wall-clock time with milliseconds: 14:03:07.042. */
export function formatClock(ms: number): string {
	if (!Number.isFinite(ms)) return '';
	const d = new Date(ms);
	return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Offset from the run's start: +00:07.042, +1:02:03.000. */
export function formatOffset(ms: number): string {
	if (!Number.isFinite(ms)) return '';
	const sign = ms < 0 ? '-' : '+';
	const abs = Math.abs(ms);
	const total = Math.floor(abs / 1000);
	const h = Math.floor(total / 3600);
	const m = Math.floor((total % 3600) / 60);
	const s = total % 60;
	const frac = pad(Math.floor(abs % 1000), 3);
	return h > 0 ? `${sign}${h}:${pad(m)}:${pad(s)}.${frac}` : `${sign}${pad(m)}:${pad(s)}.${frac}`;
}

/** "just now", "42s ago", "5m ago", "3h ago", else a date. */
export function timeAgo(ms: number, now: number): string {
	if (!Number.isFinite(ms)) return '';
	const d = Math.max(0, now - ms);
	if (d < 5_000) return 'just now';
	if (d < 60_000) return `${Math.floor(d / 1000)}s ago`;
	if (d < 3_600_000) return `${Math.floor(d / 60_000)}m ago`;
	if (d < 86_400_000) return `${Math.floor(d / 3_600_000)}h ago`;
	return new Date(ms).toLocaleDateString();
}

/** Full local date and time, for tooltips. */
export function formatDateTime(ms: number): string {
	if (!Number.isFinite(ms)) return '';
	return new Date(ms).toLocaleString();
}

export function formatCount(n: number): string {
	return n.toLocaleString('en-US');
}
