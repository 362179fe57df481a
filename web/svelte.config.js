import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
export default {
	preprocess: vitePreprocess(),
	compilerOptions: { runes: true },
	kit: {
		// The Python package serves the console: `meshlogs serve` hands out these files and falls back
		// to index.html for every unknown path (SPA). adapter-static empties the directory first.
		adapter: adapter({
			pages: '../src/meshlogs/web',
			assets: '../src/meshlogs/web',
			fallback: 'index.html',
			precompress: false,
			strict: true
		})
	}
};
