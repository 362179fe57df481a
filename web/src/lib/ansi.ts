/**
 * ANSI escape sequences → styled text segments.
 *
 * Log lines are rendered from these segments as escaped text nodes ({segment.text} in Svelte), never
 * as HTML, so a line such as `<img src=x onerror=alert(1)>` shows up literally. Styles only ever
 * contain values this module computes from numbers (palette indexes, clamped RGB), so no log text
 * reaches a style attribute either.
 *
 * Supported (ECMA-48 SGR): reset (0), bold (1), dim (2), italic (3), underline (4), inverse (7),
 * strike (9), their resets (21/22/23/24/27/29), 16 colours (30–37, 40–47, 90–97, 100–107),
 * 256 colours (38;5;n / 48;5;n) and truecolor (38;2;r;g;b / 48;2;r;g;b, also the colon forms),
 * default colours (39/49). Other CSI sequences (cursor moves, erase line), OSC (titles, hyperlinks)
 * and APC/DCS strings (e.g. Buildkite's `ESC_bk;t=…BEL` timestamps) are dropped. A carriage return
 * not followed by a newline makes the following text replace the current line, the way a terminal
 * shows progress bars. Other control characters except tab and newline are dropped.
 */

export interface AnsiStyle {
	/** CSS colour value: `var(--ansi-N)` for the 16 theme colours, else `rgb(r,g,b)`. */
	fg?: string;
	bg?: string;
	bold?: boolean;
	dim?: boolean;
	italic?: boolean;
	underline?: boolean;
	inverse?: boolean;
	strike?: boolean;
}

export interface Segment {
	text: string;
	style: AnsiStyle | null;
}

const ESC = 0x1b;
const BEL = 0x07;

/** True when the text holds anything the parser would change (escapes or control characters). */
export function needsParse(text: string): boolean {
	return /[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(text);
}

/** Plain text of a log message: escapes and control characters removed. */
export function stripAnsi(text: string): string {
	if (!needsParse(text)) return text;
	let out = '';
	for (const seg of parseAnsi(text)) out += seg.text;
	return out;
}

const CUBE = [0, 95, 135, 175, 215, 255];

/** CSS colour for a 256-colour palette index (0–15 follow the theme). */
export function paletteColor(n: number): string {
	if (n < 16) return `var(--ansi-${n})`;
	if (n < 232) {
		const i = n - 16;
		return `rgb(${CUBE[Math.floor(i / 36)]},${CUBE[Math.floor(i / 6) % 6]},${CUBE[i % 6]})`;
	}
	const g = 8 + (n - 232) * 10;
	return `rgb(${g},${g},${g})`;
}

function byte(v: string | undefined): number {
	const n = Number.parseInt(v ?? '', 10);
	if (!Number.isFinite(n) || n < 0) return 0;
	return n > 255 ? 255 : n;
}

/**
 * Parse an extended colour (after 38/48) starting at parts[i].
 * Returns the CSS colour (or undefined) and how many extra parts were consumed.
 */
function extendedColor(parts: string[], i: number): [string | undefined, number] {
	const mode = parts[i + 1];
	if (mode === '5') {
		const raw = parts[i + 2];
		if (raw === undefined) return [undefined, 1];
		return [paletteColor(byte(raw)), 2];
	}
	if (mode === '2') {
		if (parts.length < i + 5) return [undefined, parts.length - i - 1];
		return [`rgb(${byte(parts[i + 2])},${byte(parts[i + 3])},${byte(parts[i + 4])})`, 4];
	}
	return [undefined, mode === undefined ? 0 : 1];
}

/** Colour given in colon form, e.g. `38:5:196`, `38:2:255:0:0`, `38:2::255:0:0` (ITU T.416). */
function colonColor(sub: string[]): string | undefined {
	if (sub[1] === '5') return sub[2] === undefined ? undefined : paletteColor(byte(sub[2]));
	if (sub[1] === '2') {
		if (sub.length < 5) return undefined;
		const [r, g, b] = sub.slice(-3);
		return `rgb(${byte(r)},${byte(g)},${byte(b)})`;
	}
	return undefined;
}

/** Apply one SGR parameter list (the text between `ESC[` and `m`) to a style. */
export function applySgr(style: AnsiStyle, params: string): AnsiStyle {
	const next: AnsiStyle = { ...style };
	const parts = params === '' ? ['0'] : params.split(';');
	for (let i = 0; i < parts.length; i++) {
		const part = parts[i];
		if (part.includes(':')) {
			const sub = part.split(':');
			const code = Number(sub[0]);
			if (code === 38) next.fg = colonColor(sub);
			else if (code === 48) next.bg = colonColor(sub);
			else if (code === 4) next.underline = sub[1] !== '0';
			continue;
		}
		const code = part === '' ? 0 : Number(part);
		if (!Number.isInteger(code)) continue;
		if (code === 0) {
			for (const k of Object.keys(next) as (keyof AnsiStyle)[]) delete next[k];
		} else if (code === 1) next.bold = true;
		else if (code === 2) next.dim = true;
		else if (code === 3) next.italic = true;
		else if (code === 4) next.underline = true;
		else if (code === 7) next.inverse = true;
		else if (code === 9) next.strike = true;
		else if (code === 21 || code === 22) {
			delete next.bold;
			delete next.dim;
		} else if (code === 23) delete next.italic;
		else if (code === 24) delete next.underline;
		else if (code === 27) delete next.inverse;
		else if (code === 29) delete next.strike;
		else if (code >= 30 && code <= 37) next.fg = paletteColor(code - 30);
		else if (code === 38 || code === 48 || code === 58) {
			const [color, used] = extendedColor(parts, i);
			if (code === 38) next.fg = color;
			else if (code === 48) next.bg = color;
			i += used;
		} else if (code === 39) delete next.fg;
		else if (code >= 40 && code <= 47) next.bg = paletteColor(code - 40);
		else if (code === 49) delete next.bg;
		else if (code >= 90 && code <= 97) next.fg = paletteColor(code - 90 + 8);
		else if (code >= 100 && code <= 107) next.bg = paletteColor(code - 100 + 8);
	}
	if (next.fg === undefined) delete next.fg;
	if (next.bg === undefined) delete next.bg;
	return next;
}

function isEmpty(style: AnsiStyle): boolean {
	for (const _ in style) return false;
	return true;
}

/** Split a log message into styled segments. Adjacent segments never share a style object. */
export function parseAnsi(input: string): Segment[] {
	if (!needsParse(input)) return input === '' ? [] : [{ text: input, style: null }];

	const segments: Segment[] = [];
	let style: AnsiStyle = {};
	let buf = '';
	let lineStart = 0; // index in `segments` where the current line begins
	let pendingCR = false;

	const flush = () => {
		if (buf !== '') {
			segments.push({ text: buf, style: isEmpty(style) ? null : style });
			buf = '';
		}
	};
	const emit = (ch: string) => {
		if (pendingCR) {
			// A lone CR earlier on this line: the new text replaces the line (progress bars).
			segments.length = lineStart;
			buf = '';
			pendingCR = false;
		}
		buf += ch;
	};

	const n = input.length;
	let i = 0;
	while (i < n) {
		const c = input.charCodeAt(i);
		if (c === ESC) {
			const kind = input[i + 1];
			if (kind === '[') {
				// CSI: parameter bytes 0x30–0x3F, intermediate bytes 0x20–0x2F, one final byte 0x40–0x7E.
				let j = i + 2;
				while (j < n && input.charCodeAt(j) >= 0x30 && input.charCodeAt(j) <= 0x3f) j++;
				const params = input.slice(i + 2, j);
				while (j < n && input.charCodeAt(j) >= 0x20 && input.charCodeAt(j) <= 0x2f) j++;
				if (j >= n) break; // unterminated: drop the rest
				const final = input[j];
				if (final === 'm' && !/^[<=>?]/.test(params)) {
					const nextStyle = applySgr(style, params);
					flush();
					style = nextStyle;
				}
				i = j + 1;
				continue;
			}
			if (kind === ']' || kind === 'P' || kind === 'X' || kind === '^' || kind === '_') {
				// OSC / DCS / SOS / PM / APC string: ends with BEL or ESC \ (string terminator).
				let j = i + 2;
				while (j < n) {
					const d = input.charCodeAt(j);
					if (d === BEL) {
						j += 1;
						break;
					}
					if (d === ESC && input[j + 1] === '\\') {
						j += 2;
						break;
					}
					j++;
				}
				i = j;
				continue;
			}
			// Two-character escape (ESC 7, ESC =, …) or a lone ESC at the end.
			i += kind === undefined ? 1 : 2;
			continue;
		}
		if (c === 0x0d) {
			if (input.charCodeAt(i + 1) === 0x0a) {
				i++;
				continue; // CRLF: let the LF handle it
			}
			pendingCR = true;
			i++;
			continue;
		}
		if (c === 0x0a) {
			pendingCR = false;
			buf += '\n';
			flush();
			lineStart = segments.length;
			i++;
			continue;
		}
		if (c === 0x09) {
			emit('\t');
			i++;
			continue;
		}
		if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
			i++; // other control characters: dropped
			continue;
		}
		// Copy a run of ordinary characters at once.
		let j = i + 1;
		while (j < n) {
			const d = input.charCodeAt(j);
			if (d < 0x20 || (d >= 0x7f && d <= 0x9f)) break;
			j++;
		}
		emit(input.slice(i, j));
		i = j;
	}
	flush();
	return segments;
}

/** Class names and inline CSS for a segment's style (values come from applySgr, never from log text). */
export function styleAttrs(style: AnsiStyle | null): { cls: string; css: string } {
	if (!style) return { cls: '', css: '' };
	const cls: string[] = [];
	if (style.bold) cls.push('a-b');
	if (style.dim) cls.push('a-d');
	if (style.italic) cls.push('a-i');
	if (style.underline) cls.push('a-u');
	if (style.strike) cls.push('a-s');
	let fg = style.fg;
	let bg = style.bg;
	if (style.inverse) {
		fg = style.bg ?? 'var(--log-bg)';
		bg = style.fg ?? 'var(--log-fg)';
	}
	let css = '';
	if (fg) css += `color:${fg};`;
	if (bg) css += `background-color:${bg};`;
	return { cls: cls.join(' '), css };
}
