/**
 * The one place that creates the Supabase client. The config is only known at run time
 * (config.json), so the root layout awaits `initSupabase()` before any page renders; everything
 * after that calls `supabase()`.
 */

import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import { loadConfig, type ConsoleConfig } from './config';

let client: SupabaseClient | null = null;
let pending: Promise<SupabaseClient> | null = null;
let config: ConsoleConfig | null = null;

export function createSupabase(cfg: ConsoleConfig): SupabaseClient {
	return createClient(cfg.url, cfg.anon_key, {
		auth: {
			persistSession: true,
			autoRefreshToken: true,
			detectSessionInUrl: false
		}
	});
}

/** Load config.json (once) and create the client. */
export function initSupabase(fetchFn: typeof fetch, base: string): Promise<SupabaseClient> {
	if (client) return Promise.resolve(client);
	if (!pending) {
		pending = loadConfig(fetchFn, base, location.origin, {
			VITE_SUPABASE_URL: import.meta.env.VITE_SUPABASE_URL,
			VITE_SUPABASE_ANON_KEY: import.meta.env.VITE_SUPABASE_ANON_KEY
		})
			.then((cfg) => {
				config = cfg;
				client = createSupabase(cfg);
				return client;
			})
			.catch((err) => {
				pending = null; // let a reload of the page try again
				throw err;
			});
	}
	return pending;
}

/** The client; only valid after initSupabase() resolved (the root layout guarantees it). */
export function supabase(): SupabaseClient {
	if (!client) throw new Error('Supabase client used before initSupabase()');
	return client;
}

export function currentConfig(): ConsoleConfig | null {
	return config;
}
