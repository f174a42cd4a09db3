// Plain-text tables for human output. Headers are bold only when stdout takes colour
// (color.ts: a terminal, NO_COLOR / FORCE_COLOR / TERM=dumb honoured), so piped output stays
// plain and stable.
import { type Paint, paint } from './color.js';

/** The colour codes color.ts (chalk) writes: bold, dim, red, green, yellow, cyan and their resets. */
// eslint-disable-next-line no-control-regex
const OUR_SGR = /(\x1b\[(?:1|2|22|31|32|33|36|39)m)/;
// eslint-disable-next-line no-control-regex
const OUR_SGR_ALL = /\x1b\[(?:1|2|22|31|32|33|36|39)m/g;

export type Cell = string | number | null | undefined;
/** A table's columns: header -> the cell of a row (null/undefined shows as "-"). */
export type Columns<R> = Record<string, (r: R, p: Paint) => Cell>;

/** One line per row under bold headers, columns padded to their widest visible cell. */
export async function printRows<R>(rows: R[], columns: Columns<R>): Promise<void> {
  const p = await paint(process.stdout);
  const cells = Object.values(columns);
  await printTable(Object.keys(columns), rows.map((r) => cells.map((c) => c(r, p))));
}

async function printTable(headers: string[], rows: Cell[][]): Promise<void> {
  // cells may be coloured by verdict(): our own colour codes stay, every other control
  // character (device-supplied text) is shown escaped; widths count visible characters only.
  // A cell that puts device text next to a verdict must pass that text through printable()
  // itself: here our codes and the same bytes from a device look alike.
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c).split(OUR_SGR).map((part, i) => (i % 2 ? part : printable(part))).join(''))));
  const width = (c: string) => c.replace(OUR_SGR_ALL, '').length;
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => width(r[i] ?? ''))));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(Math.max(0, widths[i] - width(c))))).join('  ');
  const p = await paint(process.stdout);
  process.stdout.write([p.bold(line(headers)), ...cells.map(line)].join('\n') + '\n');
}

/**
 * Control characters (C0, DEL, C1: terminal escapes, carriage returns, newlines) shown as \xNN.
 * Cells hold device-supplied text (labels, task names): printed raw, an escape sequence in a
 * label would drive the operator's terminal.
 */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
