import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vitest/config';

// Node 20 has no global WebSocket unless started with --experimental-websocket, and
// supabase-js 2.119.0 throws in createClient() without one (TOOLCHAIN.md G1).
const nodeMajor = Number(process.versions.node.split('.')[0]);

export default defineConfig({
	plugins: [sveltekit()],
	build: { chunkSizeWarningLimit: 600 },
	test: {
		include: ['src/**/*.{test,spec}.{js,ts}'],
		environment: 'node',
		execArgv: nodeMajor < 22 ? ['--experimental-websocket'] : []
	}
});
