// JSONL input: one record per line, {"id"?: string|number, "x": number[], "attrs"?: {k: v},
// "task"?: string}. x is flat; the pipeline reshapes it to the model's input shape.
import { normaliseAttrs, type RawAttrs } from '../format/attrs.js';
import { badRecord, f32Bytes, type Item } from './sample.js';

export function decodeJsonLine(text: string, lineNo: number, defaultTask: string | null, defaultAttrs: Record<string, string> | null): Item | null {
  if (text.length === 0 || text.trim().length === 0) return null; // blank lines are not records
  const where = `line ${lineNo}`;
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    return badRecord(where, null, `malformed JSON: ${(e as Error).message}`);
  }
  return decodeJsonRecord(o, where, lineNo, defaultTask, defaultAttrs);
}

/** One parsed record (a JSONL line, or an element of a serve request) -> sample or bad record. */
export function decodeJsonRecord(o: unknown, where: string, defaultId: string | number, defaultTask: string | null, defaultAttrs: Record<string, string> | null): Item {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return badRecord(where, null, 'expected a JSON object {"x": [...]}');
  const r = o as { id?: unknown; x?: unknown; attrs?: unknown; task?: unknown };
  let id: string | number = defaultId;
  if (r.id !== undefined && r.id !== null) {
    if (typeof r.id !== 'string' && typeof r.id !== 'number') return badRecord(where, null, '"id" must be a string or a number');
    id = r.id;
  }
  const x = r.x;
  if (!Array.isArray(x)) return badRecord(where, id, 'missing "x" (an array of numbers)');
  const vec = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (typeof v !== 'number') return badRecord(where, id, `x[${i}] is not a number`);
    vec[i] = v;
    // JSON has no NaN, but 1e999 parses to Infinity and 1e39 overflows float32
    if (!Number.isFinite(vec[i])) return badRecord(where, id, `x[${i}] = ${v} is not a finite float32`);
  }
  let attrs = defaultAttrs ?? {};
  if (r.attrs !== undefined && r.attrs !== null) {
    if (typeof r.attrs !== 'object' || Array.isArray(r.attrs)) return badRecord(where, id, '"attrs" must be an object');
    for (const [k, v] of Object.entries(r.attrs)) {
      if (v !== null && typeof v === 'object') return badRecord(where, id, `attrs.${k} must be a string or a number`);
    }
    attrs = defaultAttrs ? { ...defaultAttrs, ...normaliseAttrs(r.attrs as RawAttrs) } : normaliseAttrs(r.attrs as RawAttrs);
  }
  let task = defaultTask;
  if (r.task !== undefined && r.task !== null) {
    if (typeof r.task !== 'string') return badRecord(where, id, '"task" must be a string');
    task = r.task;
  }
  return { where, id, attrs, task, vec, image: null, payloadKind: 'f32', payload: () => f32Bytes(vec) };
}
