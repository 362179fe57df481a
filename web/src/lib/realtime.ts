/**
 * Realtime channels that recover by themselves, and say honestly how they are doing.
 *
 * supabase-js rejoins a channel after some failures but not others (a server-side close is final,
 * PROTOCOL.md §5.1), and a rejoin replays nothing. So the console owns the policy: on
 * CHANNEL_ERROR / TIMED_OUT / CLOSED it removes the channel, waits (1 s, 2 s, 5 s, then 10 s),
 * refreshes the session if it is close to expiry, hands the token to realtime, and subscribes again.
 * Every successful (re)subscribe is reported so the caller can backfill what it missed.
 *
 * `ResilientChannel` is plain logic over an `Opener` (a function that opens one channel and reports
 * its statuses) with an injectable clock, so it is tested without a server or a browser.
 */

import { isAuthApiError, type RealtimeChannel, type SupabaseClient } from '@supabase/supabase-js';

export type ChannelStatus = 'SUBSCRIBED' | 'CHANNEL_ERROR' | 'TIMED_OUT' | 'CLOSED';

export type ConnState =
	| { kind: 'connecting' }
	| { kind: 'live' }
	| { kind: 'reconnecting'; retryAt: number | null; attempt: number; reason: string }
	| { kind: 'offline' }
	| { kind: 'failed'; message: string }
	| { kind: 'stopped' };

/** Opens one channel, reports its statuses, returns a function that closes it. */
export type Opener = (onStatus: (status: ChannelStatus, err?: Error) => void) => () => void;

export interface Clock {
	now(): number;
	setTimeout(fn: () => void, ms: number): unknown;
	clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
	now: () => Date.now(),
	setTimeout: (fn, ms) => setTimeout(fn, ms),
	clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>)
};

/** Thrown by `prepare` when retrying cannot help (the session is gone). */
export class AuthLostError extends Error {
	override name = 'AuthLostError';
}

export const RETRY_DELAYS_MS = [1000, 2000, 5000, 10000];

export interface ResilientOptions {
	open: Opener;
	/** Runs before every attempt: refresh the session if needed and pass the token to realtime. */
	prepare?: () => Promise<void>;
	/** Called on every SUBSCRIBED; `reconnect` is false only for the first one. */
	onSubscribed: (reconnect: boolean) => void;
	onState: (state: ConnState) => void;
	isOnline?: () => boolean;
	delays?: number[];
	clock?: Clock;
}

export class ResilientChannel {
	state: ConnState = { kind: 'connecting' };
	private gen = 0;
	private attempt = 0;
	private subscribedOnce = false;
	private close: (() => void) | null = null;
	private timer: unknown = null;
	private stopped = false;
	private readonly clock: Clock;
	private readonly delays: number[];

	constructor(private readonly opts: ResilientOptions) {
		this.clock = opts.clock ?? realClock;
		this.delays = opts.delays ?? RETRY_DELAYS_MS;
	}

	start(): void {
		void this.connect();
	}

	/** Tear the channel down and subscribe again now (network back, tab visible, laptop woke up). */
	resync(_reason: string): void {
		if (this.stopped) return;
		this.cancelTimer();
		this.closeChannel();
		this.attempt = 0;
		void this.connect();
	}

	/** Give up on the current channel and retry with backoff (e.g. its backfill failed). */
	fail(reason: string): void {
		if (this.stopped) return;
		this.gen++;
		this.closeChannel();
		this.scheduleRetry(reason);
	}

	/** The browser says it is offline: show it now rather than when the heartbeat notices. */
	markOffline(): void {
		if (this.stopped || this.state.kind === 'failed') return;
		this.setState({ kind: 'offline' });
	}

	stop(): void {
		this.stopped = true;
		this.gen++;
		this.cancelTimer();
		this.closeChannel();
		this.setState({ kind: 'stopped' });
	}

	private async connect(): Promise<void> {
		const gen = ++this.gen;
		if (!(this.opts.isOnline?.() ?? true)) {
			this.setState({ kind: 'offline' });
		} else if (this.subscribedOnce || this.attempt > 0) {
			this.setState({ kind: 'reconnecting', retryAt: null, attempt: this.attempt, reason: 'subscribing' });
		} else {
			this.setState({ kind: 'connecting' });
		}
		try {
			await this.opts.prepare?.();
		} catch (err) {
			if (gen !== this.gen) return;
			if (err instanceof AuthLostError) {
				this.stopped = true;
				this.setState({ kind: 'failed', message: err.message });
				return;
			}
			this.scheduleRetry(err instanceof Error ? err.message : String(err));
			return;
		}
		if (gen !== this.gen) return;
		this.close = this.opts.open((status, err) => this.onStatus(gen, status, err));
	}

	private onStatus(gen: number, status: ChannelStatus, err?: Error): void {
		if (gen !== this.gen || this.stopped) return;
		if (status === 'SUBSCRIBED') {
			this.attempt = 0;
			const reconnect = this.subscribedOnce;
			this.subscribedOnce = true;
			this.setState({ kind: 'live' });
			this.opts.onSubscribed(reconnect);
			return;
		}
		this.gen++; // later statuses of this channel are stale
		this.closeChannel();
		this.scheduleRetry(err?.message ? `${status}: ${err.message}` : status);
	}

	private scheduleRetry(reason: string): void {
		this.cancelTimer();
		const delay = this.delays[Math.min(this.attempt, this.delays.length - 1)];
		this.attempt++;
		const online = this.opts.isOnline?.() ?? true;
		this.setState(
			online
				? { kind: 'reconnecting', retryAt: this.clock.now() + delay, attempt: this.attempt, reason }
				: { kind: 'offline' }
		);
		this.timer = this.clock.setTimeout(() => {
			this.timer = null;
			if (!this.stopped) void this.connect();
		}, delay);
	}

	private cancelTimer(): void {
		if (this.timer !== null) {
			this.clock.clearTimeout(this.timer);
			this.timer = null;
		}
	}

	private closeChannel(): void {
		const close = this.close;
		this.close = null;
		try {
			close?.();
		} catch {
			// closing is best effort
		}
	}

	private setState(state: ConnState): void {
		this.state = state;
		this.opts.onState(state);
	}
}

// ---- supabase-js glue ----------------------------------------------------------------------

/** Seconds of validity below which the session is refreshed before (re)subscribing. */
const REFRESH_MARGIN_S = 60;

/**
 * Make sure realtime joins with a fresh user token: refresh the session when it expires within a
 * minute, then `realtime.setAuth(token)` (a join sent before the token is set would run with the
 * anon key's rights and RLS would deliver nothing; PROTOCOL.md §9).
 */
export async function ensureAuth(client: SupabaseClient): Promise<void> {
	const { data, error } = await client.auth.getSession();
	if (error) throw error;
	let session = data.session;
	if (!session) throw new AuthLostError('signed out');
	const expiresAt = session.expires_at ?? 0;
	if (expiresAt - Date.now() / 1000 < REFRESH_MARGIN_S) {
		const res = await client.auth.refreshSession();
		if (res.error || !res.data.session) {
			if (res.error && isAuthApiError(res.error)) throw new AuthLostError(`session expired: ${res.error.message}`);
			throw res.error ?? new Error('session refresh failed');
		}
		session = res.data.session;
	}
	await client.realtime.setAuth(session.access_token);
}

/**
 * An Opener for a supabase-js channel on `topic`, with listeners added by `configure`.
 * Closing removes the channel; if its leave is not acknowledged quickly (socket half-dead), the
 * channel is torn down locally so the next attempt can reuse the topic.
 */
export function openChannel(
	client: SupabaseClient,
	topic: string,
	configure: (ch: RealtimeChannel) => RealtimeChannel
): Opener {
	return (onStatus) => {
		evict(client, topic);
		const channel = configure(client.channel(topic));
		channel.subscribe((status, err) => onStatus(status as ChannelStatus, err));
		return () => {
			const removal = client.removeChannel(channel).catch(() => 'error');
			setTimeout(() => {
				void removal;
				if (client.realtime.getChannels().includes(channel)) forceRemove(client, channel);
			}, 1500);
		};
	};
}

function evict(client: SupabaseClient, topic: string): void {
	const full = `realtime:${topic}`;
	for (const ch of client.realtime.getChannels().filter((c) => c.topic === full)) forceRemove(client, ch);
}

function forceRemove(client: SupabaseClient, channel: RealtimeChannel): void {
	try {
		channel.teardown();
	} catch {
		// already torn down
	}
	client.realtime.channels = client.realtime.channels.filter((c) => c !== channel);
}

export interface LifecycleHandlers {
	/** Network back, tab visible after a long while, or the machine woke up: resubscribe. */
	resync(reason: string): void;
	/** Tab visible again after a short while: a backfill is enough. */
	poke(): void;
	offline(): void;
}

/** Hidden longer than this → resubscribe when visible again (timers may have been throttled). */
const HIDDEN_RESYNC_MS = 10_000;
const WAKE_CHECK_MS = 2_000;
/** A timer firing this much later than asked means the machine slept. */
const WAKE_DRIFT_MS = 5_000;

/** Watch the browser for the moments a live connection is likely stale. Returns a disposer. */
export function watchLifecycle(h: LifecycleHandlers): () => void {
	if (typeof window === 'undefined') return () => {};
	let hiddenAt = document.visibilityState === 'hidden' ? Date.now() : 0;
	const onOnline = () => h.resync('online');
	const onOffline = () => h.offline();
	const onVisibility = () => {
		if (document.visibilityState === 'hidden') {
			hiddenAt = Date.now();
			return;
		}
		const hiddenFor = hiddenAt ? Date.now() - hiddenAt : 0;
		hiddenAt = 0;
		if (hiddenFor >= HIDDEN_RESYNC_MS) h.resync('visible');
		else h.poke();
	};
	const onPageShow = (e: PageTransitionEvent) => {
		if (e.persisted) h.resync('pageshow'); // back from the bfcache: sockets are gone
	};
	let last = Date.now();
	const tick = setInterval(() => {
		const now = Date.now();
		// Hidden tabs get their timers throttled; only a visible page's drift means the machine slept.
		if (document.visibilityState === 'visible' && now - last > WAKE_CHECK_MS + WAKE_DRIFT_MS) h.resync('wake');
		last = now;
	}, WAKE_CHECK_MS);
	window.addEventListener('online', onOnline);
	window.addEventListener('offline', onOffline);
	window.addEventListener('pageshow', onPageShow);
	document.addEventListener('visibilitychange', onVisibility);
	return () => {
		clearInterval(tick);
		window.removeEventListener('online', onOnline);
		window.removeEventListener('offline', onOffline);
		window.removeEventListener('pageshow', onPageShow);
		document.removeEventListener('visibilitychange', onVisibility);
	};
}
