import { describe, expect, it } from 'vitest';
import { formatDuration, formatOffset, timeAgo, formatCount } from './format';

describe('format', () => {
	it('formats durations', () => {
		expect(formatDuration(0)).toBe('0ms');
		expect(formatDuration(350)).toBe('350ms');
		expect(formatDuration(4250)).toBe('4.2s');
		expect(formatDuration(125_000)).toBe('2m 05s');
		expect(formatDuration(3_720_000)).toBe('1h 02m');
		expect(formatDuration(-1)).toBe('–');
		expect(formatDuration(NaN)).toBe('–');
	});

	it('formats offsets from the run start', () => {
		expect(formatOffset(7042)).toBe('+00:07.042');
		expect(formatOffset(3_723_000)).toBe('+1:02:03.000');
		expect(formatOffset(-1500)).toBe('-00:01.500');
	});

	it('formats ages', () => {
		const now = 1_000_000_000_000;
		expect(timeAgo(now - 1000, now)).toBe('just now');
		expect(timeAgo(now - 42_000, now)).toBe('42s ago');
		expect(timeAgo(now - 300_000, now)).toBe('5m ago');
		expect(timeAgo(now - 3 * 3_600_000, now)).toBe('3h ago');
	});

	it('formats counts', () => {
		expect(formatCount(200000)).toBe('200,000');
	});
});
