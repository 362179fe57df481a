/**
 * Light / dark theme: follows prefers-color-scheme until the user picks one; the choice is kept in
 * localStorage (read before first paint by the inline script in app.html).
 */

export type ThemeChoice = 'system' | 'light' | 'dark';
const KEY = 'meshlogs.theme';

function load(): ThemeChoice {
	try {
		const v = localStorage.getItem(KEY);
		return v === 'light' || v === 'dark' ? v : 'system';
	} catch {
		return 'system';
	}
}

let choice = $state<ThemeChoice>(typeof localStorage === 'undefined' ? 'system' : load());
let systemDark = $state(
	typeof matchMedia === 'undefined' ? false : matchMedia('(prefers-color-scheme: dark)').matches
);

if (typeof matchMedia !== 'undefined') {
	matchMedia('(prefers-color-scheme: dark)').addEventListener('change', (e) => (systemDark = e.matches));
}

function apply(): void {
	if (typeof document === 'undefined') return;
	if (choice === 'system') delete document.documentElement.dataset.theme;
	else document.documentElement.dataset.theme = choice;
}

export const theme = {
	get choice(): ThemeChoice {
		return choice;
	},
	/** The theme in effect. */
	get effective(): 'light' | 'dark' {
		return choice === 'system' ? (systemDark ? 'dark' : 'light') : choice;
	},
	set(next: ThemeChoice): void {
		choice = next;
		try {
			if (next === 'system') localStorage.removeItem(KEY);
			else localStorage.setItem(KEY, next);
		} catch {
			// private mode: the choice lasts for this page only
		}
		apply();
	},
	/** Switch to the opposite of what is shown now. */
	toggle(): void {
		this.set(this.effective === 'dark' ? 'light' : 'dark');
	}
};
