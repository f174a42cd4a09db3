// Plain-text tables for human output. Headers are bold only on a TTY (chalk loaded lazily then),
// so piped output stays plain and stable.
export async function printTable(headers: string[], rows: (string | number | null | undefined)[][]): Promise<void> {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : printable(String(c)))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  let head = line(headers);
  if (process.stdout.isTTY) {
    const chalk = (await import('chalk')).default;
    head = chalk.bold(head);
  }
  process.stdout.write([head, ...cells.map(line)].join('\n') + '\n');
}

/** 1536 -> "1.5 KiB" */
export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${u[i]}`;
}

export function isoTime(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
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
