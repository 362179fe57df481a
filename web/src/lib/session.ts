/** Signing out, and what to do when the server stops accepting the session. */

import { goto } from '$app/navigation';
import { base } from '$app/paths';
import { supabase } from './supabase';

export async function signOut(): Promise<void> {
	const client = supabase();
	const { error } = await client.auth.signOut();
	// The server may be unreachable or already have forgotten the session: forget it here anyway.
	if (error) await client.auth.signOut({ scope: 'local' });
	await goto(`${base}/login`, { invalidateAll: true });
}

/** The session was rejected (401): drop it and ask the user to sign in again, coming back here. */
export async function sessionExpired(): Promise<void> {
	await supabase().auth.signOut({ scope: 'local' });
	const next = location.pathname + location.search + location.hash;
	await goto(`${base}/login?expired=1&next=${encodeURIComponent(next)}`, { invalidateAll: true });
}
