// `kb train --when EXPR --window HH:MM-HH:MM`: is a learning round due? Conditions over the
// KB's counters with Sedna's operators and aliases (ge gt eq ne le lt), joined with "and";
// the time window may wrap midnight (22:00-04:00). Pure functions, so cron decisions are testable.

export type CmpOp = '>=' | '>' | '==' | '!=' | '<=' | '<';
const OPS: Record<string, CmpOp> = { '>=': '>=', '>': '>', '==': '==', '=': '==', '!=': '!=', '<=': '<=', '<': '<', ge: '>=', gt: '>', eq: '==', ne: '!=', le: '<=', lt: '<' };

export interface Condition {
  counter: string;
  op: CmpOp;
  value: number;
}

/** Parse "labelled_new >= 500 and samples_new gt 10"; throws naming the bad part. */
export function parseWhen(expr: string): Condition[] {
  const parts = expr
    .split(/\s+and\s+|\s*&&\s*/i)
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new Error(`--when "${expr}": empty condition`);
  return parts.map((p) => {
    const m = /^([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|==|!=|=|>|<|\s(?:ge|gt|eq|ne|le|lt)\s)\s*(-?\d+(?:\.\d+)?)$/i.exec(p);
    if (!m) throw new Error(`--when "${p}": expected COUNTER OP NUMBER (OP one of >= > == != <= < ge gt eq ne le lt)`);
    return { counter: m[1], op: OPS[m[2].trim().toLowerCase()], value: Number(m[3]) };
  });
}

function holds(v: number, op: CmpOp, t: number): boolean {
  switch (op) {
    case '>=': return v >= t;
    case '>': return v > t;
    case '==': return v === t;
    case '!=': return v !== t;
    case '<=': return v <= t;
    case '<': return v < t;
  }
}

export interface WhenResult {
  due: boolean;
  /** one line per condition: "labelled_new 120 >= 500: no" */
  detail: string[];
}

/** Evaluate conditions; an unknown counter name is an error (a typo must not mean "never"). */
export function evaluateWhen(conds: Condition[], counters: Record<string, number>, known: readonly string[]): WhenResult {
  const detail: string[] = [];
  let due = true;
  for (const c of conds) {
    if (!(c.counter in counters) && !known.includes(c.counter)) {
      throw new Error(`--when: unknown counter "${c.counter}" (known: ${[...new Set([...known, ...Object.keys(counters)])].sort().join(', ')})`);
    }
    const v = counters[c.counter] ?? 0;
    const ok = holds(v, c.op, c.value);
    if (!ok) due = false;
    detail.push(`${c.counter} ${v} ${c.op} ${c.value}: ${ok ? 'yes' : 'no'}`);
  }
  return { due, detail };
}

export interface TimeWindow {
  start: number; // minutes after midnight
  end: number;
  text: string;
}

export function parseWindow(s: string): TimeWindow {
  const m = /^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$/.exec(s.trim());
  const bad = () => new Error(`--window "${s}": expected HH:MM-HH:MM (local time, may wrap midnight)`);
  if (!m) throw bad();
  const [h1, m1, h2, m2] = m.slice(1).map(Number);
  if (h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59) throw bad();
  return { start: h1 * 60 + m1, end: h2 * 60 + m2, text: s.trim() };
}

/** Is `now` (local time) inside the window? start == end means all day. End is exclusive. */
export function inWindow(w: TimeWindow, now: Date): boolean {
  const t = now.getHours() * 60 + now.getMinutes();
  if (w.start === w.end) return true;
  return w.start < w.end ? t >= w.start && t < w.end : t >= w.start || t < w.end;
}
