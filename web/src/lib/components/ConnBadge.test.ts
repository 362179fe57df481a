/**
 * The connection badge says what is really going on: live only when subscribed and caught up,
 * otherwise catching up / reconnecting (with the seconds until the next attempt) / offline / run
 * finished. Rendered with svelte/server, as LogLine.test.ts does; the badge reads the time once
 * when it renders, so a fake clock fixes the countdown.
 */
import { render } from 'svelte/server';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { StreamState } from '$lib/logstream';
import ConnBadge from './ConnBadge.svelte';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);

/** The badge as a user (and a screen reader) sees it: its text, state, tone and tooltip. */
function badge(conn: StreamState): { label: string; state?: string; tone?: string; title?: string } {
	const html = render(ConnBadge, { props: { conn } }).body;
	const outer = /<span class="conn ([^"]*)"[^>]*>/.exec(html);
	if (!outer || !outer[0].includes('data-testid="conn-badge"')) throw new Error(`unexpected markup: ${html}`);
	const attr = (name: string) => new RegExp(`\\s${name}="([^"]*)"`).exec(outer[0])?.[1];
	return {
		label: html.replace(/<[^>]*>/g, '').trim(),
		state: attr('data-state'),
		tone: /\bt-(\w+)/.exec(outer[1])?.[1],
		title: attr('title')
	};
}

const reconnecting = (inMs: number | null, attempt = 1, reason = 'CHANNEL_ERROR'): StreamState => ({
	kind: 'reconnecting',
	retryAt: inMs === null ? null : NOW + inMs,
	attempt,
	reason
});

describe('ConnBadge', () => {
	beforeEach(() => {
		vi.useFakeTimers();
		vi.setSystemTime(NOW);
	});
	afterEach(() => vi.useRealTimers());

	it('says live only when subscribed and caught up', () => {
		expect(badge({ kind: 'live' })).toMatchObject({ label: 'live', state: 'live', tone: 'ok' });
		expect(badge({ kind: 'syncing' })).toMatchObject({ label: 'catching up…', state: 'syncing', tone: 'busy' });
		expect(badge({ kind: 'connecting' })).toMatchObject({ label: 'connecting…', state: 'connecting', tone: 'busy' });
	});

	it('counts down to the next attempt in whole seconds, rounding up', () => {
		expect(badge(reconnecting(10_000)).label).toBe('reconnecting in 10s');
		expect(badge(reconnecting(4_200)).label).toBe('reconnecting in 5s');
		expect(badge(reconnecting(1_000)).label).toBe('reconnecting in 1s');
		expect(badge(reconnecting(1)).label).toBe('reconnecting in 1s');
		const b = badge(reconnecting(2_000, 2, 'TIMED_OUT'));
		expect(b).toMatchObject({ state: 'reconnecting', tone: 'warn' });
		expect(b.title).toBe('Connection lost (TIMED_OUT); lines written meanwhile are restored on reconnect');
	});

	it('shows no countdown when the attempt is due, overdue or under way', () => {
		expect(badge(reconnecting(0)).label).toBe('reconnecting…');
		expect(badge(reconnecting(-3_000)).label).toBe('reconnecting…');
		const joining = badge(reconnecting(null, 0, 'subscribing'));
		expect(joining).toMatchObject({ label: 'reconnecting…', tone: 'warn', title: 'subscribing' });
	});

	it('says offline, not a countdown, when the browser is offline', () => {
		expect(badge({ kind: 'offline' })).toMatchObject({
			label: 'offline',
			state: 'offline',
			tone: 'bad',
			title: 'The browser is offline; will reconnect when the network is back'
		});
	});

	it('says the run finished, with its outcome in the tooltip', () => {
		expect(badge({ kind: 'finished', status: 'succeeded' })).toMatchObject({
			label: 'run finished',
			state: 'finished',
			tone: 'done',
			title: 'The run succeeded; the log is complete'
		});
		expect(badge({ kind: 'finished', status: 'failed' }).title).toBe('The run failed; the log is complete');
	});

	it('shows errors and a stopped stream', () => {
		expect(badge({ kind: 'failed', message: 'session expired' })).toMatchObject({ label: 'error', tone: 'bad', title: 'session expired' });
		expect(badge({ kind: 'stopped' })).toMatchObject({ label: 'stopped', tone: 'done', title: '' });
	});

	it('escapes server text in the tooltip', () => {
		const html = render(ConnBadge, { props: { conn: { kind: 'failed', message: '"><img src=x onerror=alert(1)>' } } }).body;
		expect(html).not.toMatch(/<img/i);
	});
});
