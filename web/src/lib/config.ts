/**
 * Where the console finds its backend. At startup it fetches `config.json` next to index.html:
 * `meshlogs serve` generates it (`{"url": "http://127.0.0.1:54321", "anon_key": "<jwt>"}`); on a
 * hosted Supabase deployment the operator drops a static file there. When that fails, the build-time
 * `VITE_SUPABASE_URL` / `VITE_SUPABASE_ANON_KEY` are used (handy for `npm run dev`).
 */

export interface ConsoleConfig {
	url: string;
	anon_key: string;
}

export class ConfigError extends Error {
	override name = 'ConfigError';
}

type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

function validate(raw: unknown, origin: string): ConsoleConfig | null {
	if (!raw || typeof raw !== 'object') return null;
	const obj = raw as Record<string, unknown>;
	const key = obj.anon_key;
	if (typeof key !== 'string' || key.trim() === '') return null;
	let url = typeof obj.url === 'string' && obj.url.trim() !== '' ? obj.url.trim() : origin;
	try {
		const parsed = new URL(url, origin);
		if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
		url = parsed.href.replace(/\/+$/, '');
	} catch {
		return null;
	}
	return { url, anon_key: key.trim() };
}

/**
 * Load the config: `${base}/config.json` first, then the env fallback.
 *
 * Args: `base` is the app's base path ('' at the root); `origin` resolves a relative or missing
 * `url` (the API usually lives on the same origin as the console); `env` holds the VITE_ values.
 * Throws ConfigError when neither source gives a usable URL and key.
 */
export async function loadConfig(
	fetchFn: FetchFn,
	base: string,
	origin: string,
	env: { VITE_SUPABASE_URL?: string; VITE_SUPABASE_ANON_KEY?: string }
): Promise<ConsoleConfig> {
	let problem = '';
	try {
		const res = await fetchFn(`${base}/config.json`, { cache: 'no-store' });
		if (res.ok) {
			const cfg = validate(await res.json(), origin);
			if (cfg) return cfg;
			problem = 'config.json has no usable "url" and "anon_key"';
		} else {
			problem = `config.json: HTTP ${res.status}`;
		}
	} catch (err) {
		problem = `config.json: ${err instanceof Error ? err.message : String(err)}`;
	}
	const fromEnv = validate({ url: env.VITE_SUPABASE_URL, anon_key: env.VITE_SUPABASE_ANON_KEY }, origin);
	if (fromEnv) return fromEnv;
	throw new ConfigError(`${problem}, and VITE_SUPABASE_URL / VITE_SUPABASE_ANON_KEY are not set`);
}
