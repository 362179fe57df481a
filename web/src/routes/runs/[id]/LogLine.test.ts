import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { compileQuery } from '$lib/search';
import { row } from '$lib/testutil';
import LogLine from './LogLine.svelte';

function html(message: string, query = ''): string {
	const q = compileQuery(query, { regex: false, caseSensitive: false });
	const r = row(7, { message, attrs: { note: '<b>attr</b>' } });
	return render(LogLine, {
		props: {
			row: r,
			index: 6,
			pos: 6,
			plain: message,
			ts: '12:00:00.000',
			tsTitle: '',
			re: q && q.ok ? q.re : null,
			current: false,
			target: false,
			onLink: () => {},
			onCopy: async () => true
		}
	}).body;
}

describe('LogLine rendering', () => {
	it('renders log text as text, never as HTML', () => {
		const out = html('<script>alert(1)</script><img src=x onerror=alert(2)>');
		expect(out).toContain('&lt;script>alert(1)&lt;/script>&lt;img src=x onerror=alert(2)>');
		expect(out).not.toMatch(/<script/i);
		expect(out).not.toMatch(/<img/i);
		expect(out).toContain('&lt;b>attr&lt;/b>');
	});

	it('keeps HTML literal inside ANSI-styled and highlighted spans', () => {
		const out = html('\x1b[31m<img src=x onerror=alert(1)>\x1b[0m', 'onerror');
		expect(out).not.toMatch(/<img/i);
		expect(out).toContain('<mark');
		expect(out).toContain('color:var(--ansi-1)');
	});

	it('marks the line with its seq for tests and permalinks', () => {
		const out = html('hello');
		expect(out).toContain('data-testid="log-line"');
		expect(out).toContain('data-seq="7"');
		expect(out).toContain('href="#L7"');
	});
});
