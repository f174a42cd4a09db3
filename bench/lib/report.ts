// A self-contained HTML report with inline SVG charts: no scripts, no external assets, no
// network, so it opens from a file:// URL on an offline machine. Used by bench:lifelong and
// by the demo. Charts: accuracy-matrix heat map, lines over rounds, (stacked) bars.

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
}

/** Heat map of a matrix (e.g. R[i][j] = accuracy on task j after round i). */
export function heatmapSvg(M: number[][], o: HeatmapOptions): string {
  const rows = M.length;
  const cols = rows ? M[0].length : 0;
  const cell = cols > 12 ? 22 : 40;
  const left = 70;
  const top = 46;
  const w = left + cols * cell + 20;
  const h = top + rows * cell + 40;
  const lo = o.min ?? 0;
  const hi = o.max ?? 1;
  const show = o.showValues ?? cols <= 12;
  const parts: string[] = [];
  parts.push(`<text x="${left}" y="16" class="t">${esc(o.title)}</text>`);
  parts.push(`<text x="${left + (cols * cell) / 2}" y="34" class="ax" text-anchor="middle">${esc(o.colAxis ?? 'task')}</text>`);
  parts.push(`<text x="12" y="${top + (rows * cell) / 2}" class="ax" transform="rotate(-90 12 ${top + (rows * cell) / 2})" text-anchor="middle">${esc(o.rowAxis ?? 'after round')}</text>`);
  for (let j = 0; j < cols; j++) {
    parts.push(`<text x="${left + j * cell + cell / 2}" y="${top - 4}" class="tick" text-anchor="middle">${esc(o.colLabels[j] ?? j)}</text>`);
  }
  for (let i = 0; i < rows; i++) {
    parts.push(`<text x="${left - 4}" y="${top + i * cell + cell / 2 + 4}" class="tick" text-anchor="end">${esc(o.rowLabels[i] ?? i)}</text>`);
    for (let j = 0; j < cols; j++) {
      const v = M[i][j];
      const norm = hi > lo ? (v - lo) / (hi - lo) : 0;
      parts.push(`<rect x="${left + j * cell}" y="${top + i * cell}" width="${cell}" height="${cell}" fill="${heatColour(norm)}"><title>${esc(o.rowLabels[i] ?? i)} / ${esc(o.colLabels[j] ?? j)}: ${fmt(v, 4)}</title></rect>`);
      if (show) {
        parts.push(`<text x="${left + j * cell + cell / 2}" y="${top + i * cell + cell / 2 + 4}" class="cell" fill="${norm > 0.45 ? '#fff' : '#000'}" text-anchor="middle">${fmt(v)}</text>`);
      }
    }
  }
  // legend
  const ly = top + rows * cell + 14;
  for (let k = 0; k <= 10; k++) parts.push(`<rect x="${left + k * 16}" y="${ly}" width="16" height="10" fill="${heatColour(k / 10)}"/>`);
  parts.push(`<text x="${left - 4}" y="${ly + 9}" class="tick" text-anchor="end">${fmt(lo)}</text>`);
  parts.push(`<text x="${left + 11 * 16 + 4}" y="${ly + 9}" class="tick">${fmt(hi)}</text>`);
  return svg(w, h, parts);
}

export interface Series {
  name: string;
  /** one value per x position; null = no point */
  values: (number | null)[];
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabels: string[];
  xAxis?: string;
  yAxis?: string;
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
}

function niceRange(values: number[], lo?: number, hi?: number): [number, number] {
  const finite = values.filter(Number.isFinite);
  let a = lo ?? (finite.length ? Math.min(...finite) : 0);
  let b = hi ?? (finite.length ? Math.max(...finite) : 1);
  if (a === b) {
    a -= 0.5;
    b += 0.5;
  }
  return [a, b];
}

/** Plot geometry shared by the line and bar charts: margins leave room for axes and a legend. */
function chartFrame(W: number, H: number) {
  const left = 56;
  const right = 150;
  const top = 30;
  const bottom = 44;
  return { W, H, left, right, top, bottom, pw: W - left - right, ph: H - top - bottom };
}

/** Line chart of several series over shared x positions (e.g. accuracy per task over rounds). */
export function lineChartSvg(series: Series[], o: LineChartOptions): string {
  const { W, H, left, top, pw, ph } = chartFrame(o.width ?? 720, o.height ?? 320);
  const n = o.xLabels.length;
  const [lo, hi] = niceRange(series.flatMap((s) => s.values.filter((v): v is number => v !== null)), o.yMin, o.yMax);
  const X = (i: number) => left + (n <= 1 ? pw / 2 : (i * pw) / (n - 1));
  const Y = (v: number) => top + ph - ((v - lo) / (hi - lo)) * ph;
  const parts: string[] = [`<text x="${left}" y="18" class="t">${esc(o.title)}</text>`];
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    parts.push(`<line x1="${left}" x2="${left + pw}" y1="${Y(v)}" y2="${Y(v)}" class="grid"/>`);
    parts.push(`<text x="${left - 6}" y="${Y(v) + 4}" class="tick" text-anchor="end">${fmt(v)}</text>`);
  }
  const step = Math.max(1, Math.ceil(n / 20));
  for (let i = 0; i < n; i += step) parts.push(`<text x="${X(i)}" y="${top + ph + 16}" class="tick" text-anchor="middle">${esc(o.xLabels[i])}</text>`);
  if (o.xAxis) parts.push(`<text x="${left + pw / 2}" y="${H - 6}" class="ax" text-anchor="middle">${esc(o.xAxis)}</text>`);
  if (o.yAxis) parts.push(`<text x="14" y="${top + ph / 2}" class="ax" text-anchor="middle" transform="rotate(-90 14 ${top + ph / 2})">${esc(o.yAxis)}</text>`);
  parts.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" class="frame"/>`);
  series.forEach((s, si) => {
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${X(i).toFixed(1)},${Y(v).toFixed(1)}`;
      pen = true;
    });
    const c = colour(si);
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5,3"' : ''}><title>${esc(s.name)}</title></path>`);
    s.values.forEach((v, i) => {
      if (v !== null && Number.isFinite(v)) parts.push(`<circle cx="${X(i).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="2.2" fill="${c}"><title>${esc(s.name)} @ ${esc(o.xLabels[i])}: ${fmt(v, 4)}</title></circle>`);
    });
    const ly = top + 4 + si * 15;
    if (ly < H - 10) {
      parts.push(`<line x1="${left + pw + 10}" x2="${left + pw + 28}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`);
      parts.push(`<text x="${left + pw + 32}" y="${ly + 4}" class="tick">${esc(s.name)}</text>`);
    }
  });
  return svg(W, H, parts);
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
  const { W, H, left, top, pw, ph } = chartFrame(o.width ?? 720, o.height ?? 280);
  const n = o.xLabels.length;
  const totals = o.xLabels.map((_, i) => series.reduce((a, s) => a + (s.values[i] ?? 0), 0));
  const hi = Math.max(1, ...totals);
  const bw = n ? (pw / n) * 0.7 : 0;
  const X = (i: number) => left + (pw / Math.max(1, n)) * (i + 0.5);
  const Y = (v: number) => top + ph - (v / hi) * ph;
  const parts: string[] = [`<text x="${left}" y="18" class="t">${esc(o.title)}</text>`];
  for (let k = 0; k <= 4; k++) {
    const v = (hi * k) / 4;
    parts.push(`<line x1="${left}" x2="${left + pw}" y1="${Y(v)}" y2="${Y(v)}" class="grid"/>`);
    parts.push(`<text x="${left - 6}" y="${Y(v) + 4}" class="tick" text-anchor="end">${Math.round(v)}</text>`);
  }
  const step = Math.max(1, Math.ceil(n / 20));
  for (let i = 0; i < n; i++) {
    if (i % step === 0) parts.push(`<text x="${X(i)}" y="${top + ph + 16}" class="tick" text-anchor="middle">${esc(o.xLabels[i])}</text>`);
    let base = 0;
    series.forEach((s, si) => {
      const v = s.values[i] ?? 0;
      if (v <= 0) return;
      parts.push(`<rect x="${(X(i) - bw / 2).toFixed(1)}" y="${Y(base + v).toFixed(1)}" width="${bw.toFixed(1)}" height="${(Y(base) - Y(base + v)).toFixed(1)}" fill="${colour(si)}"><title>${esc(s.name)} @ ${esc(o.xLabels[i])}: ${v}</title></rect>`);
      base += v;
    });
  }
  if (o.xAxis) parts.push(`<text x="${left + pw / 2}" y="${H - 6}" class="ax" text-anchor="middle">${esc(o.xAxis)}</text>`);
  if (o.yAxis) parts.push(`<text x="14" y="${top + ph / 2}" class="ax" text-anchor="middle" transform="rotate(-90 14 ${top + ph / 2})">${esc(o.yAxis)}</text>`);
  series.forEach((s, si) => {
    const ly = top + 4 + si * 15;
    parts.push(`<rect x="${left + pw + 10}" y="${ly - 5}" width="12" height="10" fill="${colour(si)}"/>`);
    parts.push(`<text x="${left + pw + 28}" y="${ly + 4}" class="tick">${esc(s.name)}</text>`);
  });
  return svg(W, H, parts);
}

function svg(w: number, h: number, parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img">${parts.join('')}</svg>`;
}

/** An HTML table; cells are escaped, numbers formatted with `digits`. */
export function tableHtml(headers: string[], rows: (string | number | null)[][], digits = 3): string {
  const cell = (v: string | number | null) => (v === null ? '–' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : fmt(v, digits)) : esc(v));
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((v) => `<td${typeof v === 'number' ? ' class="num"' : ''}>${cell(v)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
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
svg .grid{stroke:#e4e4e4}svg .frame{fill:none;stroke:#999}p.note{color:#555;max-width:900px}code{background:#f4f4f4;padding:1px 4px}`;
  const body = sections.map((s) => `<h2>${esc(s.heading)}</h2>${s.note ? `<p class="note">${esc(s.note)}</p>` : ''}${s.html}`).join('\n');
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${css}</style></head><body><h1>${esc(title)}</h1><p>${esc(intro)}</p>\n${body}\n</body></html>\n`;
}
