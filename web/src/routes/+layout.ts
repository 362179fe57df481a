import { redirect } from '@sveltejs/kit';
import { base } from '$app/paths';
import { initSupabase } from '$lib/supabase';
import type { LayoutLoad } from './$types';

// A static SPA: index.html is the fallback for every path, all rendering happens in the browser.
export const ssr = false;
export const prerender = false;

export const load: LayoutLoad = async ({ url, fetch }) => {
	let client;
	try {
		client = await initSupabase(fetch, base);
	} catch (err) {
		return { configError: err instanceof Error ? err.message : String(err), session: null };
	}
	const { data } = await client.auth.getSession();
	const session = data.session;
	if (!session && url.pathname !== `${base}/login`) {
		const next = url.pathname + url.search + location.hash;
		redirect(307, `${base}/login?next=${encodeURIComponent(next)}`);
	}
	return { configError: null, session };
};
