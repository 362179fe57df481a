import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config';

const ORIGIN = 'http://console.example:8080';

function fakeFetch(status: number, body: unknown) {
	const calls: string[] = [];
	const fn = async (url: string) => {
		calls.push(url);
		if (status === 0) throw new TypeError('Failed to fetch');
		return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status });
	};
	return { fn, calls };
}

describe('loadConfig', () => {
	it('reads config.json relative to the app base', async () => {
		const f = fakeFetch(200, { url: 'http://127.0.0.1:54321/', anon_key: 'k' });
		expect(await loadConfig(f.fn, '', ORIGIN, {})).toEqual({ url: 'http://127.0.0.1:54321', anon_key: 'k' });
		expect(f.calls).toEqual(['/config.json']);
		const g = fakeFetch(200, { url: 'https://x.supabase.co', anon_key: 'k' });
		await loadConfig(g.fn, '/console', ORIGIN, {});
		expect(g.calls).toEqual(['/console/config.json']);
	});

	it('defaults the URL to the page origin', async () => {
		const f = fakeFetch(200, { anon_key: 'k' });
		expect(await loadConfig(f.fn, '', ORIGIN, {})).toEqual({ url: ORIGIN, anon_key: 'k' });
	});

	it('falls back to the VITE_ env when config.json is missing or not JSON', async () => {
		const env = { VITE_SUPABASE_URL: 'http://127.0.0.1:54321', VITE_SUPABASE_ANON_KEY: 'envkey' };
		for (const f of [fakeFetch(404, 'nope'), fakeFetch(200, '<!doctype html>'), fakeFetch(0, '')]) {
			expect(await loadConfig(f.fn, '', ORIGIN, env)).toEqual({ url: 'http://127.0.0.1:54321', anon_key: 'envkey' });
		}
	});

	it('rejects unusable values with a clear error', async () => {
		const f = fakeFetch(200, { url: 'javascript:alert(1)', anon_key: 'k' });
		await expect(loadConfig(f.fn, '', ORIGIN, {})).rejects.toBeInstanceOf(ConfigError);
		const g = fakeFetch(404, '');
		await expect(loadConfig(g.fn, '', ORIGIN, {})).rejects.toThrow(/config.json: HTTP 404.*VITE_SUPABASE_URL/);
	});
});
