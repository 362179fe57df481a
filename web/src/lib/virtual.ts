/**
 * Virtual scrolling math for variable-height rows.
 *
 * `HeightIndex` is a Fenwick (binary indexed) tree over row heights: O(log n) to change one height,
 * to get the offset of a row and to find the row at an offset, O(1) amortised to append. That keeps
 * a 200,000-line log with wrapped rows cheap to scroll: only the rows in view are in the DOM, their
 * measured heights replace the estimates as they render, and the scroll position is anchored so
 * the rows in view do not jump when heights above them change.
 */

export class HeightIndex {
	private tree: Float64Array;
	private vals: Float64Array;
	private n = 0;

	constructor(capacity = 1024) {
		this.tree = new Float64Array(capacity + 1);
		this.vals = new Float64Array(capacity);
	}

	get length(): number {
		return this.n;
	}

	/** Replace everything with `heights`, in O(n). */
	reset(heights: ArrayLike<number>): void {
		const n = heights.length;
		if (n > this.vals.length) {
			const cap = Math.max(n, this.vals.length * 2);
			this.vals = new Float64Array(cap);
			this.tree = new Float64Array(cap + 1);
		} else {
			this.tree.fill(0, 0, Math.max(this.n, n) + 1);
		}
		this.n = n;
		for (let i = 0; i < n; i++) {
			this.vals[i] = heights[i];
			this.tree[i + 1] = heights[i];
		}
		for (let i = 1; i <= n; i++) {
			const j = i + (i & -i);
			if (j <= n) this.tree[j] += this.tree[i];
		}
	}

	push(h: number): void {
		if (this.n === this.vals.length) {
			const old = this.vals.subarray(0, this.n);
			const copy = Float64Array.from(old);
			this.vals = new Float64Array(this.vals.length * 2);
			this.tree = new Float64Array(this.vals.length + 1);
			this.reset(copy);
		}
		const k = ++this.n; // 1-based position of the new element
		this.vals[k - 1] = h;
		// tree[k] covers (k - lowbit(k), k]
		this.tree[k] = h + this.prefix(k - 1) - this.prefix(k - (k & -k));
	}

	get(i: number): number {
		return this.vals[i];
	}

	set(i: number, h: number): void {
		const delta = h - this.vals[i];
		if (delta === 0) return;
		this.vals[i] = h;
		for (let k = i + 1; k <= this.n; k += k & -k) this.tree[k] += delta;
	}

	/** Sum of heights of rows [0, i). */
	prefix(i: number): number {
		let s = 0;
		for (let k = Math.min(i, this.n); k > 0; k -= k & -k) s += this.tree[k];
		return s;
	}

	total(): number {
		return this.prefix(this.n);
	}

	/** Index of the row covering `offset` (clamped to [0, n-1]; 0 when empty). */
	indexAt(offset: number): number {
		if (this.n === 0 || offset <= 0) return 0;
		let pos = 0;
		let rem = offset;
		let step = 1;
		while (step * 2 <= this.n) step *= 2;
		for (; step > 0; step >>= 1) {
			const next = pos + step;
			if (next <= this.n && this.tree[next] <= rem) {
				pos = next;
				rem -= this.tree[next];
			}
		}
		return Math.min(pos, this.n - 1);
	}
}

export interface Range {
	/** First rendered row (inclusive). */
	start: number;
	/** Last rendered row (exclusive). */
	end: number;
	/** Offset in px of `start` from the top of the list. */
	offset: number;
}

/** Rows to render for a viewport, with `overscan` px of extra rows above and below. */
export function visibleRange(index: HeightIndex, scrollTop: number, viewport: number, overscan = 400): Range {
	const n = index.length;
	if (n === 0) return { start: 0, end: 0, offset: 0 };
	const start = index.indexAt(Math.max(0, scrollTop - overscan));
	const last = index.indexAt(scrollTop + viewport + overscan);
	return { start, end: Math.min(n, last + 1), offset: index.prefix(start) };
}

/**
 * Heights of list items keyed by a stable item key (so measurements survive filtering), feeding a
 * HeightIndex in display order. Unmeasured items use `estimate(key)`.
 */
export class ItemHeights {
	readonly index = new HeightIndex();
	private measured = new Map<number, number>();

	constructor(public estimate: (key: number) => number) {}

	/** Rebuild for a new display order. */
	reset(keys: ArrayLike<number>): void {
		const hs = new Float64Array(keys.length);
		for (let i = 0; i < keys.length; i++) hs[i] = this.heightOf(keys[i]);
		this.index.reset(hs);
	}

	/** Append keys[from..] (the display list grew at the end). */
	append(keys: ArrayLike<number>, from: number): void {
		for (let i = from; i < keys.length; i++) this.index.push(this.heightOf(keys[i]));
	}

	heightOf(key: number): number {
		return this.measured.get(key) ?? this.estimate(key);
	}

	/** Record a measured height for the item at display position `pos`; returns the change in px. */
	measure(pos: number, key: number, h: number): number {
		this.measured.set(key, h);
		const old = this.index.get(pos);
		if (old === h) return 0;
		this.index.set(pos, h);
		return h - old;
	}

	/** Forget all measurements (width, wrapping or font changed). Call reset() afterwards. */
	invalidate(): void {
		this.measured.clear();
	}
}

/**
 * Estimated wrapped height of a text row: one line per newline-separated part, each part taking
 * ceil(length / charsPerLine) lines when wrapping.
 */
export function estimateLines(text: string, charsPerLine: number, wrap: boolean): number {
	if (!wrap || charsPerLine <= 0) {
		let lines = 1;
		for (let i = text.indexOf('\n'); i !== -1 && i < text.length - 1; i = text.indexOf('\n', i + 1)) lines++;
		return lines;
	}
	let lines = 0;
	let start = 0;
	for (;;) {
		const nl = text.indexOf('\n', start);
		const end = nl === -1 ? text.length : nl;
		lines += Math.max(1, Math.ceil((end - start) / charsPerLine));
		if (nl === -1 || nl === text.length - 1) break;
		start = nl + 1;
	}
	return lines;
}
