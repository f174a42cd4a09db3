// A self-contained HTML report with inline SVG charts: no scripts, no external assets, no
// network, so it opens from a file:// URL on an offline machine. Used by bench:lifelong and
// by the demo. Charts: accuracy-matrix heat map, lines over rounds, (stacked) bars. Layout
// arithmetic (ticks, text widths, wrapping legends) lives in chart-layout.ts; a report is a list
// of sections, so a bench adds one by pushing {heading, html, note}.
import { type LegendItem, SWATCH_W, legendRows, niceTicks, textWidth } from './chart-layout.js';

export const esc = (s: unknown): string =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

/** Categorical palette (colour-blind friendly, Okabe-Ito + extras), cycled. */
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000', '#8C564B', '#7F7F7F', '#17BECF', '#BCBD22'];
export const colour = (i: number): string => PALETTE[i % PALETTE.length];

/** Sequential colour for a value in [0, 1]: light yellow -> dark blue (viridis-like stops). */
export function heatColour(v: number): string {
  if (!Number.isFinite(v)) return '#eeeeee';
  const stops = [
    [253, 231, 37],
    [94, 201, 98],
    [33, 145, 140],
    [59, 82, 139],
    [68, 1, 84],
  ];
  const t = Math.min(1, Math.max(0, v)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t));
  const f = t - i;
  const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

const fmt = (v: number, digits = 2): string => (Number.isFinite(v) ? v.toFixed(digits) : '–');

/** ISO-8601 UTC for an epoch-ms number or a date string; anything else as text ('–' for none). */
export function isoTime(v: unknown): string {
  if (v === null || v === undefined || v === '') return '–';
  const d = typeof v === 'number' ? new Date(v) : typeof v === 'string' ? new Date(v) : null;
  return d && Number.isFinite(d.getTime()) ? d.toISOString().replace(/\.000Z$/, 'Z') : String(v);
}

/** Swatches drawn in legends (top-left corner x, y; SWATCH_W x 10). */
const lineSwatch = (c: string, dashed = false) => (x: number, y: number) =>
  `<line x1="${x}" x2="${x + SWATCH_W}" y1="${y + 5}" y2="${y + 5}" stroke="${c}" stroke-width="2"${dashed ? ' stroke-dasharray="4,3"' : ''}/>`;
const boxSwatch = (c: string) => (x: number, y: number) => `<rect x="${x + 3}" y="${y}" width="12" height="10" fill="${c}"/>`;
const hatchSwatch = (x: number, y: number) => `<rect x="${x + 3}" y="${y}" width="12" height="10" fill="#3b528b"/>${hatch(x + 3, y, 12, 10)}`;

/** A white veil with sparse diagonal stripes over a cell: marks heat-map cells unlike the others
 *  (the value stays readable in black). */
function hatch(x: number, y: number, w: number, h: number): string {
  const d: string[] = [];
  for (let k = -h + 5; k < w; k += 9) {
    const x1 = x + Math.max(0, k);
    const y1 = y + h - Math.max(0, -k);
    const len = Math.min(w - Math.max(0, k), h - Math.max(0, -k));
    d.push(`M${x1},${y1}l${len},${-len}`);
  }
  return `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="#fff" fill-opacity="0.55"/><path d="${d.join('')}" stroke="#fff" stroke-width="1.2" fill="none"/>`;
}

export interface HeatmapOptions {
  title: string;
  rowLabels: string[];
  colLabels: string[];
  /** values mapped to colours over [min, max] (default 0..1) */
  min?: number;
  max?: number;
  /** print the value in each cell (default: when the matrix is at most 12 wide) */
  showValues?: boolean;
  rowAxis?: string;
  colAxis?: string;
  /** cells drawn hatched (e.g. a site before it appeared), with this legend text */
  marked?: (row: number, col: number) => boolean;
  markedLabel?: string;
  /** a colour bar under each column label (the column's colour in the other charts) */
  colColours?: string[];
}

/** Heat map of a matrix (e.g. R[i][j] = accuracy on task j after round i). */
export function heatmapSvg(M: number[][], o: HeatmapOptions): string {
  const rows = M.length;
  const cols = rows ? M[0].length : 0;
  const show = o.showValues ?? cols <= 12;
  // wide enough for the column labels and the printed values
  const labelW = Math.max(0, ...o.colLabels.map((l) => textWidth(String(l), 10)));
  const cell = Math.max(cols > 12 ? 22 : cols > 8 ? 40 : 48, show ? 30 : 0, labelW + 6);
  const left = 30 + Math.max(12, ...o.rowLabels.map((l) => textWidth(String(l), 10)));
  const top = 54;
  const lo = o.min ?? 0;
  const hi = o.max ?? 1;
  const parts: string[] = [];
  parts.push(`<text x="8" y="16" class="t">${esc(o.title)}</text>`);
  parts.push(`<text x="${left + (cols * cell) / 2}" y="32" class="ax" text-anchor="middle">${esc(o.colAxis ?? 'task')}</text>`);
  parts.push(`<text x="12" y="${top + (rows * cell) / 2}" class="ax" transform="rotate(-90 12 ${top + (rows * cell) / 2})" text-anchor="middle">${esc(o.rowAxis ?? 'after round')}</text>`);
  for (let j = 0; j < cols; j++) {
    parts.push(`<text x="${left + j * cell + cell / 2}" y="${top - 9}" class="tick" text-anchor="middle">${esc(o.colLabels[j] ?? j)}</text>`);
    if (o.colColours?.[j]) parts.push(`<rect x="${left + j * cell + 2}" y="${top - 5}" width="${cell - 4}" height="3" fill="${o.colColours[j]}"/>`);
  }
  let anyMarked = false;
  for (let i = 0; i < rows; i++) {
    parts.push(`<text x="${left - 6}" y="${top + i * cell + cell / 2 + 4}" class="tick" text-anchor="end">${esc(o.rowLabels[i] ?? i)}</text>`);
    for (let j = 0; j < cols; j++) {
      const v = M[i][j];
      const norm = hi > lo ? (v - lo) / (hi - lo) : 0;
      const marked = o.marked?.(i, j) ?? false;
      anyMarked ||= marked;
      const x = left + j * cell;
      const y = top + i * cell;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${heatColour(norm)}"><title>${esc(o.rowLabels[i] ?? i)} / ${esc(o.colLabels[j] ?? j)}: ${fmt(v, 4)}${marked && o.markedLabel ? ` (${esc(o.markedLabel)})` : ''}</title></rect>`);
      if (marked) parts.push(hatch(x, y, cell, cell));
      if (show) {
        const dark = norm > 0.45 && !marked;
        parts.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" class="cell" fill="${dark ? '#fff' : '#000'}" text-anchor="middle"${marked ? ' font-style="italic"' : ''}>${fmt(v)}</text>`);
      }
    }
  }
  // colour scale, then the marked-cells legend
  const ly = top + rows * cell + 14;
  const loText = fmt(lo);
  const scaleX = left + textWidth(loText, 10) + 4;
  parts.push(`<text x="${left}" y="${ly + 9}" class="tick">${loText}</text>`);
  for (let k = 0; k <= 10; k++) parts.push(`<rect x="${scaleX + k * 12}" y="${ly}" width="12" height="10" fill="${heatColour(k / 10)}"/>`);
  const hiX = scaleX + 11 * 12 + 4;
  parts.push(`<text x="${hiX}" y="${ly + 9}" class="tick">${fmt(hi)}</text>`);
  let w = Math.max(left + cols * cell + 12, textWidth(o.title, 13, true) + 16, hiX + textWidth(fmt(hi), 10) + 8);
  let h = ly + 18;
  if (anyMarked && o.markedLabel) {
    const lg = legendRows([{ label: o.markedLabel, swatch: hatchSwatch }], left, h, Math.max(w - left - 8, 200), esc);
    parts.push(lg.svg);
    h += lg.height + 4;
    w = Math.max(w, left + SWATCH_W + 5 + textWidth(o.markedLabel, 10) + 8);
  }
  return svg(w, h, parts);
}

export interface Series {
  name: string;
  /** one value per x position; null = no point */
  values: (number | null)[];
  dashed?: boolean;
  /** fixed colour (e.g. one colour per site in every chart); default: the palette by position */
  colour?: string;
  /** points before this x index are drawn hollow, and the segments leading to them dashed
   *  (e.g. a site's accuracy before it appeared), in the series' own colour */
  dashedBefore?: number;
}

export interface LineChartOptions {
  title: string;
  xLabels: string[];
  xAxis?: string;
  yAxis?: string;
  /** fixed axis bounds; default: the data's range, widened to round ticks */
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
  /** one more legend line explaining the dashed/hollow part of the series */
  dashedLabel?: string;
}

/**
 * Plot geometry shared by the line and bar charts: the plot area, with room on the left for the
 * y tick labels and below it for the x ticks, the axis title and a legend that wraps in rows.
 */
function chartFrame(W: number, plotH: number, yTickLabels: string[], title: string) {
  const left = 30 + Math.max(...yTickLabels.map((l) => textWidth(l, 10)));
  const right = 16;
  const top = 30;
  const width = Math.max(W, textWidth(title, 13, true) + 16);
  const pw = width - left - right;
  return { W: width, left, top, pw, ph: plotH, legendY: top + plotH + 42 };
}

/** X tick labels every `step` positions so that neighbours do not overlap. */
function xTickStep(labels: string[], pw: number): number {
  const n = labels.length;
  const widest = Math.max(1, ...labels.map((l) => textWidth(l, 10))) + 8;
  return Math.max(1, Math.ceil((n * widest) / Math.max(1, pw)));
}

/** Line chart of several series over shared x positions (e.g. accuracy per task over rounds). */
export function lineChartSvg(series: Series[], o: LineChartOptions): string {
  const n = o.xLabels.length;
  const values = series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const t = niceTicks(o.yMin ?? (values.length ? Math.min(...values) : 0), o.yMax ?? (values.length ? Math.max(...values) : 1), 7);
  const lo = o.yMin ?? t.lo;
  const hi = o.yMax ?? t.hi;
  const ticks = t.ticks.filter((v) => v >= lo - 1e-9 && v <= hi + 1e-9);
  const { W, left, top, pw, ph, legendY } = chartFrame(o.width ?? 720, (o.height ?? 320) - 74, ticks.map((v) => v.toFixed(t.digits)), o.title);
  const X = (i: number) => left + (n <= 1 ? pw / 2 : (i * pw) / (n - 1));
  const Y = (v: number) => top + ph - ((v - lo) / (hi - lo || 1)) * ph;
  const parts: string[] = [`<text x="8" y="18" class="t">${esc(o.title)}</text>`];
  for (const v of ticks) {
    parts.push(`<line x1="${left}" x2="${left + pw}" y1="${Y(v)}" y2="${Y(v)}" class="grid"/>`);
    parts.push(`<text x="${left - 6}" y="${Y(v) + 4}" class="tick" text-anchor="end">${v.toFixed(t.digits)}</text>`);
  }
  const step = xTickStep(o.xLabels, pw);
  for (let i = 0; i < n; i += step) parts.push(`<text x="${X(i)}" y="${top + ph + 16}" class="tick" text-anchor="middle">${esc(o.xLabels[i])}</text>`);
  if (o.xAxis) parts.push(`<text x="${left + pw / 2}" y="${top + ph + 32}" class="ax" text-anchor="middle">${esc(o.xAxis)}</text>`);
  if (o.yAxis) parts.push(`<text x="14" y="${top + ph / 2}" class="ax" text-anchor="middle" transform="rotate(-90 14 ${top + ph / 2})">${esc(o.yAxis)}</text>`);
  parts.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" class="frame"/>`);
  const legend: LegendItem[] = [];
  series.forEach((s, si) => {
    const c = s.colour ?? colour(si);
    const before = s.dashedBefore ?? 0;
    // one path per run of consecutive segments with the same dash style
    const runs: { d: string; dashed: boolean; end: number }[] = [];
    const pt = (i: number) => `${X(i).toFixed(1)},${Y(s.values[i]!).toFixed(1)}`;
    let prev: number | null = null;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        prev = null;
        return;
      }
      if (prev !== null) {
        const dashed = !!s.dashed || i <= before;
        const last = runs[runs.length - 1];
        if (last && last.dashed === dashed && last.end === prev) last.d += `L${pt(i)}`;
        else runs.push({ d: `M${pt(prev)}L${pt(i)}`, dashed, end: i });
        runs[runs.length - 1].end = i;
      }
      prev = i;
    });
    for (const r of runs) parts.push(`<path d="${r.d}" fill="none" stroke="${c}" stroke-width="1.8"${r.dashed ? ' stroke-dasharray="5,3"' : ''}><title>${esc(s.name)}</title></path>`);
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      const hollow = i < before;
      parts.push(`<circle cx="${X(i).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="${hollow ? 2.6 : 2.2}" fill="${hollow ? '#fff' : c}"${hollow ? ` stroke="${c}" stroke-width="1.2"` : ''}><title>${esc(s.name)} @ ${esc(o.xLabels[i])}: ${fmt(v, 4)}</title></circle>`);
    });
    legend.push({ label: s.name, swatch: lineSwatch(c, s.dashed) });
  });
  if (o.dashedLabel) legend.push({ label: o.dashedLabel, swatch: lineSwatch('#777', true) });
  const lg = legendRows(legend, left, legendY, pw, esc);
  parts.push(lg.svg);
  return svg(W, legendY + lg.height + 4, parts);
}

export interface BarChartOptions {
  title: string;
  xLabels: string[];
  xAxis?: string;
  yAxis?: string;
  width?: number;
  height?: number;
}

/** Stacked bar chart: one bar per x position, one stacked segment per series. */
export function barChartSvg(series: Series[], o: BarChartOptions): string {
  const n = o.xLabels.length;
  const totals = o.xLabels.map((_, i) => series.reduce((a, s) => a + (s.values[i] ?? 0), 0));
  const t = niceTicks(0, Math.max(1, ...totals), 7);
  const hi = t.hi;
  const { W, left, top, pw, ph, legendY } = chartFrame(o.width ?? 720, (o.height ?? 280) - 74, t.ticks.map((v) => v.toFixed(t.digits)), o.title);
  const bw = n ? (pw / n) * 0.7 : 0;
  const X = (i: number) => left + (pw / Math.max(1, n)) * (i + 0.5);
  const Y = (v: number) => top + ph - (v / hi) * ph;
  const parts: string[] = [`<text x="8" y="18" class="t">${esc(o.title)}</text>`];
  for (const v of t.ticks) {
    parts.push(`<line x1="${left}" x2="${left + pw}" y1="${Y(v)}" y2="${Y(v)}" class="grid"/>`);
    parts.push(`<text x="${left - 6}" y="${Y(v) + 4}" class="tick" text-anchor="end">${v.toFixed(t.digits)}</text>`);
  }
  const step = xTickStep(o.xLabels, pw);
  for (let i = 0; i < n; i++) {
    if (i % step === 0) parts.push(`<text x="${X(i)}" y="${top + ph + 16}" class="tick" text-anchor="middle">${esc(o.xLabels[i])}</text>`);
    let base = 0;
    series.forEach((s, si) => {
      const v = s.values[i] ?? 0;
      if (v <= 0) return;
      parts.push(`<rect x="${(X(i) - bw / 2).toFixed(1)}" y="${Y(base + v).toFixed(1)}" width="${bw.toFixed(1)}" height="${(Y(base) - Y(base + v)).toFixed(1)}" fill="${s.colour ?? colour(si)}"><title>${esc(s.name)} @ ${esc(o.xLabels[i])}: ${v}</title></rect>`);
      base += v;
    });
  }
  if (o.xAxis) parts.push(`<text x="${left + pw / 2}" y="${top + ph + 32}" class="ax" text-anchor="middle">${esc(o.xAxis)}</text>`);
  if (o.yAxis) parts.push(`<text x="14" y="${top + ph / 2}" class="ax" text-anchor="middle" transform="rotate(-90 14 ${top + ph / 2})">${esc(o.yAxis)}</text>`);
  const lg = legendRows(
    series.map((s, si) => ({ label: s.name, swatch: boxSwatch(s.colour ?? colour(si)) })),
    left,
    legendY,
    pw,
    esc,
  );
  parts.push(lg.svg);
  return svg(W, legendY + lg.height + 4, parts);
}

function svg(w: number, h: number, parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img">${parts.join('')}</svg>`;
}

/**
 * An HTML table; cells are escaped, numbers formatted with `digits`. rowClass names a CSS class
 * per row: "bad" (e.g. a rejected gate decision) is highlighted.
 */
export function tableHtml(headers: string[], rows: (string | number | null)[][], digits = 3, rowClass?: (row: number) => string | undefined): string {
  const cell = (v: string | number | null) => (v === null ? '–' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : fmt(v, digits)) : esc(v));
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r, i) => {
      const cls = rowClass?.(i);
      return `<tr${cls ? ` class="${esc(cls)}"` : ''}>${r.map((v) => `<td${typeof v === 'number' ? ' class="num"' : ''}>${cell(v)}</td>`).join('')}</tr>`;
    })
    .join('')}</tbody></table>`;
}

/** A two-column table of facts: name (a row header), value. */
export function factsHtml(facts: [string, string | number | null][], digits = 3): string {
  const v = (x: string | number | null) => (x === null ? '–' : typeof x === 'number' ? (Number.isInteger(x) ? String(x) : fmt(x, digits)) : esc(x));
  return `<table class="facts"><tbody>${facts.map(([k, x]) => `<tr><th>${esc(k)}</th><td>${v(x)}</td></tr>`).join('')}</tbody></table>`;
}

export interface ReportSection {
  heading: string;
  /** raw HTML (already escaped: use the helpers above) */
  html: string;
  /** one-paragraph explanation (plain text, escaped here) */
  note?: string;
}

/** A full standalone HTML page. */
export function htmlPage(title: string, intro: string, sections: ReportSection[]): string {
  const css = `body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 8px}th{background:#f4f4f4;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
svg{display:block;margin:8px 0;max-width:100%;height:auto}svg .t{font-weight:600;font-size:13px}svg .tick{font-size:10px;fill:#333}svg .ax{font-size:11px;fill:#333}svg .cell{font-size:9px}
svg .grid{stroke:#e4e4e4}svg .frame{fill:none;stroke:#999}p.note{color:#555;max-width:900px}code{background:#f4f4f4;padding:1px 4px}
pre{white-space:pre-wrap;overflow-wrap:anywhere}tr.bad td{background:#fde0dc}tr.bad td:first-child{box-shadow:inset 3px 0 #c0392b}.scroll{overflow-x:auto;max-width:100%}`;
  const body = sections.map((s) => `<h2>${esc(s.heading)}</h2>${s.note ? `<p class="note">${esc(s.note)}</p>` : ''}${s.html}`).join('\n');
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${css}</style></head><body><h1>${esc(title)}</h1><p>${esc(intro)}</p>\n${body}\n</body></html>\n`;
}
