// Layout arithmetic of the report's SVG charts (bench/lib/report.ts): axis ticks at round
// numbers, text widths estimated without a browser, and a legend that wraps into rows instead
// of running off the right edge. Kept apart from the drawing so it can be tested alone.

/**
 * Axis ticks at 1, 2 or 5 x 10^k covering [lo, hi] with at most maxTicks ticks: the axis runs
 * from the first to the last tick (a bar chart of 0..1092 gets 0, 200, ..., 1200, not 273/546/...).
 */
export function niceTicks(lo: number, hi: number, maxTicks = 6): { lo: number; hi: number; step: number; ticks: number[]; digits: number } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    [lo, hi] = [lo - pad, hi + pad];
  }
  const intervals = Math.max(1, maxTicks - 1);
  let exp = Math.floor(Math.log10((hi - lo) / intervals));
  for (;;) {
    for (const m of [1, 2, 5]) {
      const step = m * 10 ** exp;
      const a = Math.floor(lo / step + 1e-9) * step;
      const b = Math.ceil(hi / step - 1e-9) * step;
      const n = Math.round((b - a) / step);
      if (n <= intervals) {
        const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
        const ticks = Array.from({ length: n + 1 }, (_, k) => Number((a + k * step).toFixed(digits)));
        return { lo: ticks[0], hi: ticks[ticks.length - 1], step, ticks, digits };
      }
    }
    exp++;
  }
}

/**
 * Width in px of a text at font size px, estimated on the wide side (no browser here): the
 * layout leaves room for the text as a sans-serif font renders it; the Chromium test checks
 * that nothing is cut.
 */
export function textWidth(s: string, px: number, bold = false): number {
  let em = 0;
  for (const ch of s) {
    if (/[il.,:;'|!()[\]°]/.test(ch)) em += 0.32;
    else if (/[mwMW@%]/.test(ch)) em += 0.92;
    else if (/[A-Z]/.test(ch)) em += 0.7;
    else if (ch === ' ') em += 0.3;
    else em += 0.6;
  }
  return Math.ceil(em * px * (bold ? 1.12 : 1));
}

export interface LegendItem {
  label: string;
  /** draws the swatch whose top-left corner is (x, y), SWATCH_W x 10 */
  swatch: (x: number, y: number) => string;
}

export const SWATCH_W = 18;
const ITEM_GAP = 16;
const ROW_H = 16;
const LEGEND_FONT = 10;

/** Legend items flowed left to right into rows no wider than width; returns SVG and height. */
export function legendRows(items: LegendItem[], x0: number, y0: number, width: number, esc: (s: string) => string): { svg: string; height: number } {
  if (!items.length) return { svg: '', height: 0 };
  const parts: string[] = [];
  let x = x0;
  let y = y0;
  for (const it of items) {
    const w = SWATCH_W + 5 + textWidth(it.label, LEGEND_FONT);
    if (x > x0 && x + w > x0 + width) {
      x = x0;
      y += ROW_H;
    }
    parts.push(it.swatch(x, y), `<text x="${x + SWATCH_W + 5}" y="${y + 9}" class="tick legend">${esc(it.label)}</text>`);
    x += w + ITEM_GAP;
  }
  return { svg: parts.join(''), height: y - y0 + ROW_H };
}
