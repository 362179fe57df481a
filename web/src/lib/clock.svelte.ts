/** A shared ticking "now" for running durations: one interval for the whole app. */

let now = $state(Date.now());
let users = 0;
let timer: ReturnType<typeof setInterval> | null = null;

export const clock = {
	get now(): number {
		return now;
	}
};

/** Start ticking while a component needs it; returns the stop function (use in $effect). */
export function useClock(intervalMs = 1000): () => void {
	users++;
	if (!timer) {
		now = Date.now();
		timer = setInterval(() => (now = Date.now()), intervalMs);
	}
	return () => {
		users--;
		if (users === 0 && timer) {
			clearInterval(timer);
			timer = null;
		}
	};
}
