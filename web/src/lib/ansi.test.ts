import { describe, expect, it } from 'vitest';
import { applySgr, paletteColor, parseAnsi, stripAnsi, styleAttrs } from './ansi';

const E = '\x1b';

describe('parseAnsi', () => {
	it('returns plain text as one unstyled segment', () => {
		expect(parseAnsi('hello world')).toEqual([{ text: 'hello world', style: null }]);
		expect(parseAnsi('')).toEqual([]);
	});

	it('handles the 16 colours, bright colours and reset', () => {
		const segs = parseAnsi(`${E}[31mred${E}[0m plain ${E}[92mgreen${E}[m`);
		expect(segs).toEqual([
			{ text: 'red', style: { fg: 'var(--ansi-1)' } },
			{ text: ' plain ', style: null },
			{ text: 'green', style: { fg: 'var(--ansi-10)' } }
		]);
	});

	it('handles backgrounds, bold, dim, italic, underline and their resets', () => {
		const segs = parseAnsi(`${E}[1;3;4;2;44mx${E}[22;23;24;49my`);
		expect(segs[0]).toEqual({
			text: 'x',
			style: { bold: true, italic: true, underline: true, dim: true, bg: 'var(--ansi-4)' }
		});
		expect(segs[1]).toEqual({ text: 'y', style: null });
	});

	it('handles 256 colours (palette, cube, grayscale)', () => {
		expect(parseAnsi(`${E}[38;5;9ma`)[0].style).toEqual({ fg: 'var(--ansi-9)' });
		expect(parseAnsi(`${E}[38;5;196ma`)[0].style).toEqual({ fg: 'rgb(255,0,0)' });
		expect(parseAnsi(`${E}[48;5;232ma`)[0].style).toEqual({ bg: 'rgb(8,8,8)' });
		expect(paletteColor(255)).toBe('rgb(238,238,238)');
		expect(paletteColor(16)).toBe('rgb(0,0,0)');
		expect(paletteColor(231)).toBe('rgb(255,255,255)');
	});

	it('handles truecolor in semicolon and colon forms, and clamps values', () => {
		expect(parseAnsi(`${E}[38;2;10;20;30ma`)[0].style).toEqual({ fg: 'rgb(10,20,30)' });
		expect(parseAnsi(`${E}[48;2;1;2;3;38;2;4;5;6ma`)[0].style).toEqual({ bg: 'rgb(1,2,3)', fg: 'rgb(4,5,6)' });
		expect(parseAnsi(`${E}[38:2::7:8:9ma`)[0].style).toEqual({ fg: 'rgb(7,8,9)' });
		expect(parseAnsi(`${E}[38:5:1ma`)[0].style).toEqual({ fg: 'var(--ansi-1)' });
		expect(parseAnsi(`${E}[38;2;999;0;300ma`)[0].style).toEqual({ fg: 'rgb(255,0,255)' });
		expect(parseAnsi(`${E}[38;2;1ma`)[0].style).toBeNull();
	});

	it('keeps a following code after an extended colour', () => {
		expect(parseAnsi(`${E}[38;5;2;1ma`)[0].style).toEqual({ fg: 'var(--ansi-2)', bold: true });
	});

	it('default colours 39/49 clear only the colour', () => {
		expect(parseAnsi(`${E}[1;31;42m${E}[39;49ma`)[0].style).toEqual({ bold: true });
	});

	it('drops other CSI, OSC and APC sequences', () => {
		expect(stripAnsi(`${E}[2K${E}[1Gdone`)).toBe('done');
		expect(stripAnsi(`${E}]0;title\x07text`)).toBe('text');
		expect(stripAnsi(`${E}]8;;https://example.com${E}\\link${E}]8;;${E}\\`)).toBe('link');
		expect(stripAnsi(`${E}_bk;t=1700000000000\x07line`)).toBe('line');
		expect(stripAnsi(`${E}[?25lhidden cursor${E}[?25h`)).toBe('hidden cursor');
	});

	it('drops an unterminated escape at the end', () => {
		expect(stripAnsi(`abc${E}[31`)).toBe('abc');
		expect(stripAnsi(`abc${E}`)).toBe('abc');
	});

	it('treats a lone carriage return like a terminal (progress bars)', () => {
		expect(stripAnsi('10%\r50%\r100%')).toBe('100%');
		expect(stripAnsi('line one\r\nline two')).toBe('line one\nline two');
		expect(stripAnsi('trailing\r')).toBe('trailing');
		expect(stripAnsi('a\nb 1%\rb 2%')).toBe('a\nb 2%');
	});

	it('drops control characters but keeps tabs and newlines', () => {
		expect(stripAnsi('a\x00b\x07c\td\ne\x7f')).toBe('abc\td\ne');
	});

	it('keeps HTML as literal text (no injection)', () => {
		const evil = `${E}[31m<script>alert(1)</script>${E}[0m<img src=x onerror=alert(2)>`;
		const segs = parseAnsi(evil);
		expect(segs.map((s) => s.text).join('')).toBe('<script>alert(1)</script><img src=x onerror=alert(2)>');
		for (const s of segs) {
			const { css, cls } = styleAttrs(s.style);
			expect(css).not.toMatch(/[<>"]/);
			expect(cls).toMatch(/^[a-z -]*$/);
		}
	});

	it('never puts parameter text into styles', () => {
		const style = applySgr({}, '38;2;1;2;3);background:url(javascript:alert(1))');
		const { css } = styleAttrs(style);
		expect(css).not.toContain('url');
		expect(css).not.toContain('javascript');
	});
});

describe('styleAttrs', () => {
	it('maps flags to classes and colours to CSS', () => {
		expect(styleAttrs({ bold: true, underline: true, fg: 'var(--ansi-1)' })).toEqual({
			cls: 'a-b a-u',
			css: 'color:var(--ansi-1);'
		});
		expect(styleAttrs(null)).toEqual({ cls: '', css: '' });
	});

	it('swaps colours for inverse', () => {
		expect(styleAttrs({ inverse: true, fg: 'var(--ansi-2)' }).css).toBe(
			'color:var(--log-bg);background-color:var(--ansi-2);'
		);
	});
});
