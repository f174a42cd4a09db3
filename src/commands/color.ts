// Colour for human output, decided once per stream from the environment. chalk stays the
// colour library, but its own detection ignores NO_COLOR, so its level is set here:
//   FORCE_COLOR=0|false -> none, FORCE_COLOR=1|2|3 (or empty/true: 1) -> that level, also when piped
//   (Node's rule: FORCE_COLOR wins over NO_COLOR); NO_COLOR set and non-empty -> none (no-color.org);
//   TERM=dumb -> none; not a terminal -> none; else chalk's detection (COLORTERM, TERM).
// chalk is imported only when a stream gets colour, so piped runs never load it.
import type { Writable } from 'node:stream';

export type ColorLevel = 0 | 1 | 2 | 3;

export function colorLevel(stream: Writable, env: NodeJS.ProcessEnv = process.env): ColorLevel {
  const force = env.FORCE_COLOR;
  if (force !== undefined) {
    if (force === '' || force === 'true') return 1;
    if (force === 'false') return 0;
    const n = Number(force);
    if (Number.isInteger(n) && n >= 0) return Math.min(n, 3) as ColorLevel;
  }
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 0;
  if (env.TERM === 'dumb') return 0;
  if (!(stream as NodeJS.WriteStream).isTTY) return 0;
  if (env.COLORTERM === 'truecolor' || env.COLORTERM === '24bit') return 3;
  if (/-256(color)?$/i.test(env.TERM ?? '')) return 2;
  return 1;
}

/** The few styles human output uses; identity functions when the stream gets no colour. */
export interface Paint {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

const PLAIN: Paint = { bold: (s) => s, dim: (s) => s, red: (s) => s, green: (s) => s, yellow: (s) => s, cyan: (s) => s };
const cache = new Map<Writable, Paint>();

/** Styles for text written to `stream` (process.stdout or process.stderr). */
export async function paint(stream: Writable): Promise<Paint> {
  const hit = cache.get(stream);
  if (hit) return hit;
  const level = colorLevel(stream);
  let p = PLAIN;
  if (level > 0) {
    const { Chalk } = await import('chalk');
    const c = new Chalk({ level });
    p = { bold: (s) => c.bold(s), dim: (s) => c.dim(s), red: (s) => c.red(s), green: (s) => c.green(s), yellow: (s) => c.yellow(s), cyan: (s) => c.cyan(s) };
  }
  cache.set(stream, p);
  return p;
}

/** Colour a verdict word a person scans for: good green, bad red, in-between yellow. */
export function verdict(p: Paint, word: string): string {
  if (/^(ok|pass|passed|accepted|active|committed|yes)$/i.test(word)) return p.green(word);
  if (/^(fail|failed|rejected|error|revoked|aborted)$/i.test(word)) return p.red(word);
  if (/^(trial|staged|pending|rolling|skipped|kept|pinned)$/i.test(word)) return p.yellow(word);
  return word;
}
