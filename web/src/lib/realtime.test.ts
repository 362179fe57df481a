/**
 * The reconnect triggers (network back, tab visible again, back from the bfcache, wake from sleep)
 * and the order of a resubscribe: refresh the session if needed and hand the token to realtime
 * BEFORE the channel is joined again (PROTOCOL.md §9: a join sent first runs with the anon key's
 * rights and RLS delivers nothing).
 *
 * vitest runs in node here, so `window` and `document` are EventTarget stand-ins installed with
 * vi.stubGlobal; the events dispatched at them are real `Event`s, as a browser would send.
 */
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
	ensureAuth,
	openChannel,
	ResilientChannel,
	watchLifecycle,
	type ChannelStatus,
	type ConnState,
	type LifecycleHandlers
} from './realtime';

// ---- browser stand-ins -----------------------------------------------------------------------

type FakeDocument = EventTarget & { visibilityState: DocumentVisibilityState };

let win: EventTarget;
let doc: FakeDocument;

function installBrowser(visibility: DocumentVisibilityState = 'visible') {
	win = new EventTarget();
	doc = Object.assign(new EventTarget(), { visibilityState: visibility });
	vi.stubGlobal('window', win);
	vi.stubGlobal('document', doc);
}

function setVisibility(state: DocumentVisibilityState) {
	doc.visibilityState = state;
	doc.dispatchEvent(new Event('visibilitychange'));
}

function pageshow(persisted: boolean) {
	win.dispatchEvent(Object.assign(new Event('pageshow'), { persisted }));
}

/** The machine sleeps: the wall clock jumps, no timer fires meanwhile. */
function sleepFor(ms: number) {
	vi.setSystemTime(Date.now() + ms);
}

const settle = () => vi.advanceTimersByTimeAsync(0);

// ---- a supabase-js client stand-in that records the order of auth and join calls -------------

interface FakeChannel {
	topic: string;
	status?: (s: ChannelStatus, err?: Error) => void;
}

function fakeClient(opts: { ttlS: number }) {
	const log: string[] = [];
	let issued = 0;
	let session = { access_token: 'token-0', expires_at: Math.floor(Date.now() / 1000) + opts.ttlS };
	let realtimeToken: string | null = null;
	/** When set, refreshSession waits for it (a slow auth server). */
	let refreshGate: Promise<void> | null = null;
	const channels: FakeChannel[] = [];
	const realtime = {
		channels,
		getChannels: () => realtime.channels,
		setAuth: async (token: string) => {
			realtimeToken = token;
			log.push(`setAuth ${token}`);
		}
	};
	const client = {
		auth: {
			getSession: async () => ({ data: { session }, error: null }),
			refreshSession: async () => {
				log.push('refresh');
				if (refreshGate) await refreshGate;
				session = { access_token: `token-${++issued}`, expires_at: Math.floor(Date.now() / 1000) + opts.ttlS };
				return { data: { session }, error: null };
			}
		},
		realtime,
		channel: (topic: string) => {
			const ch: FakeChannel & { subscribe: (cb: FakeChannel['status']) => FakeChannel; teardown: () => void } = {
				topic: `realtime:${topic}`,
				subscribe(cb) {
					log.push(`join with ${realtimeToken}`);
					ch.status = cb;
					return ch;
				},
				teardown() {}
			};
			realtime.channels.push(ch);
			return ch;
		},
		removeChannel: async (ch: FakeChannel) => {
			log.push('leave');
			realtime.channels = realtime.channels.filter((c) => c !== ch);
			return 'ok';
		}
	};
	return {
		client: client as unknown as SupabaseClient,
		log,
		get token() {
			return session.access_token;
		},
		/** The newest channel's status callback, as supabase-js would call it. */
		status(s: ChannelStatus) {
			realtime.channels.at(-1)?.status?.(s);
		},
		gateRefresh(): () => void {
			let open!: () => void;
			refreshGate = new Promise<void>((r) => (open = r));
			return () => {
				refreshGate = null;
				open();
			};
		}
	};
}

/** The run list's wiring (routes/+page.svelte): a ResilientChannel driven by watchLifecycle. */
async function livePage(ttlS: number) {
	const fake = fakeClient({ ttlS });
	const states: ConnState[] = [];
	let subscribed = 0;
	let pokes = 0;
	const channel = new ResilientChannel({
		open: openChannel(fake.client, 'runs', (ch) => ch),
		prepare: () => ensureAuth(fake.client),
		onSubscribed: () => subscribed++,
		onState: (s) => states.push(s)
	});
	channel.start();
	const unwatch = watchLifecycle({
		resync: (reason) => {
			fake.log.push(`resync ${reason}`);
			channel.resync(reason);
		},
		poke: () => {
			fake.log.push('poke');
			pokes++;
		},
		offline: () => channel.markOffline()
	});
	await settle();
	fake.status('SUBSCRIBED');
	await settle();
	expect(states.at(-1)).toEqual({ kind: 'live' });
	fake.log.length = 0;
	return {
		fake,
		channel,
		states,
		unwatch,
		get subscribed() {
			return subscribed;
		},
		get pokes() {
			return pokes;
		}
	};
}

beforeEach(() => {
	vi.useFakeTimers();
	installBrowser();
});

afterEach(() => {
	vi.unstubAllGlobals();
	vi.useRealTimers();
});

// ---- each trigger resubscribes, token first -------------------------------------------------

const triggers: { name: string; reason: string; fire: () => Promise<void> | void }[] = [
	{ name: 'the network comes back (online)', reason: 'online', fire: () => void win.dispatchEvent(new Event('online')) },
	{
		name: 'the tab becomes visible after a long time hidden (visibilitychange)',
		reason: 'visible',
		fire: async () => {
			setVisibility('hidden');
			await vi.advanceTimersByTimeAsync(15_000);
			setVisibility('visible');
		}
	},
	{ name: 'the page comes back from the bfcache (pageshow, persisted)', reason: 'pageshow', fire: () => pageshow(true) },
	{
		name: 'the machine wakes from sleep (a timer fires far too late)',
		reason: 'wake',
		fire: async () => {
			sleepFor(30 * 60_000);
			await vi.advanceTimersByTimeAsync(2_000);
		}
	}
];

describe('reconnect triggers', () => {
	it.each(triggers)('$name: resubscribes, with a refreshed token handed to realtime before the join', async ({ reason, fire }) => {
		// Short-lived tokens (45 s < the 60 s margin): every (re)subscribe must refresh first.
		const page = await livePage(45);
		const before = page.fake.token;
		await fire();
		await settle();
		const log = page.fake.log;
		expect(log.filter((l) => l.startsWith('resync'))).toEqual([`resync ${reason}`]);
		const fresh = page.fake.token;
		expect(fresh).not.toBe(before);
		// Old channel left, then: refresh → setAuth(new token) → join, in that order.
		expect(log.slice(log.indexOf(`resync ${reason}`))).toEqual([
			`resync ${reason}`,
			'leave',
			'refresh',
			`setAuth ${fresh}`,
			`join with ${fresh}`
		]);
		expect(page.states.at(-1)).toMatchObject({ kind: 'reconnecting', reason: 'subscribing' });
		page.fake.status('SUBSCRIBED');
		await settle();
		expect(page.states.at(-1)).toEqual({ kind: 'live' });
		expect(page.subscribed).toBe(2); // the caller is told, so it backfills what it missed
		page.unwatch();
		page.channel.stop();
	});

	it('does not join before a slow token refresh has finished', async () => {
		const page = await livePage(45);
		const open = page.fake.gateRefresh();
		win.dispatchEvent(new Event('online'));
		await vi.advanceTimersByTimeAsync(5_000);
		expect(page.fake.log).toEqual(['resync online', 'leave', 'refresh']);
		open();
		await settle();
		expect(page.fake.log.slice(3)).toEqual([`setAuth ${page.fake.token}`, `join with ${page.fake.token}`]);
		page.unwatch();
		page.channel.stop();
	});

	it('after a long sleep the expired session is refreshed before the join', async () => {
		const page = await livePage(3600); // an hour-long token, not refreshed at start
		expect(page.fake.token).toBe('token-0');
		sleepFor(2 * 3600_000); // the laptop lid was closed for two hours
		await vi.advanceTimersByTimeAsync(2_000);
		await settle();
		expect(page.fake.log).toEqual(['resync wake', 'leave', 'refresh', 'setAuth token-1', 'join with token-1']);
		page.unwatch();
		page.channel.stop();
	});

	it('hands a still-valid token to realtime before the join without refreshing it', async () => {
		const page = await livePage(3600);
		win.dispatchEvent(new Event('online'));
		await settle();
		expect(page.fake.log).toEqual(['resync online', 'leave', 'setAuth token-0', 'join with token-0']);
		page.unwatch();
		page.channel.stop();
	});
});

// ---- what does not resubscribe ----------------------------------------------------------------

function recorder(): LifecycleHandlers & { calls: string[] } {
	const calls: string[] = [];
	return {
		calls,
		resync: (r) => calls.push(`resync ${r}`),
		poke: () => calls.push('poke'),
		offline: () => calls.push('offline')
	};
}

describe('watchLifecycle', () => {
	it('only pokes (a backfill, no resubscribe) after a short time hidden', async () => {
		const h = recorder();
		const stop = watchLifecycle(h);
		setVisibility('hidden');
		await vi.advanceTimersByTimeAsync(9_000);
		setVisibility('visible');
		expect(h.calls).toEqual(['poke']);
		stop();
	});

	it('resyncs on visible at exactly the 10 s threshold', async () => {
		const h = recorder();
		const stop = watchLifecycle(h);
		setVisibility('hidden');
		await vi.advanceTimersByTimeAsync(10_000);
		setVisibility('visible');
		expect(h.calls).toEqual(['resync visible']);
		stop();
	});

	it('counts time hidden from page load when the page starts hidden', async () => {
		vi.unstubAllGlobals();
		installBrowser('hidden');
		const h = recorder();
		const stop = watchLifecycle(h);
		await vi.advanceTimersByTimeAsync(20_000);
		setVisibility('visible');
		expect(h.calls).toEqual(['resync visible']);
		stop();
	});

	it('ignores a pageshow that is not a bfcache restore', () => {
		const h = recorder();
		const stop = watchLifecycle(h);
		pageshow(false);
		expect(h.calls).toEqual([]);
		stop();
	});

	it('does not mistake steady ticking, or a throttled hidden tab, for a wake from sleep', async () => {
		const h = recorder();
		const stop = watchLifecycle(h);
		await vi.advanceTimersByTimeAsync(60_000);
		expect(h.calls).toEqual([]);
		doc.visibilityState = 'hidden'; // no event: only the timer's view of the world matters here
		sleepFor(60_000);
		await vi.advanceTimersByTimeAsync(2_000);
		expect(h.calls).toEqual([]);
		doc.visibilityState = 'visible';
		sleepFor(6_000); // 8 s between ticks: over the 7 s a wake needs
		await vi.advanceTimersByTimeAsync(2_000);
		expect(h.calls).toEqual(['resync wake']);
		stop();
	});

	it('reports offline, and the channel shows it at once', async () => {
		const page = await livePage(3600);
		win.dispatchEvent(new Event('offline'));
		expect(page.states.at(-1)).toEqual({ kind: 'offline' });
		expect(page.fake.log).toEqual([]); // nothing torn down until the network is back
		page.unwatch();
		page.channel.stop();
	});

	it('stops listening and ticking once disposed', async () => {
		const h = recorder();
		const timersBefore = vi.getTimerCount();
		const stop = watchLifecycle(h);
		expect(vi.getTimerCount()).toBe(timersBefore + 1);
		stop();
		expect(vi.getTimerCount()).toBe(timersBefore);
		win.dispatchEvent(new Event('online'));
		win.dispatchEvent(new Event('offline'));
		pageshow(true);
		setVisibility('hidden');
		sleepFor(60_000);
		setVisibility('visible');
		await vi.advanceTimersByTimeAsync(10_000);
		expect(h.calls).toEqual([]);
	});

	it('does nothing outside a browser', () => {
		vi.unstubAllGlobals();
		const h = recorder();
		const stop = watchLifecycle(h);
		expect(vi.getTimerCount()).toBe(0);
		stop();
		expect(h.calls).toEqual([]);
	});
});
