// JSONL input: one record per line, {"id"?: string|number, "x": number[], "attrs"?: {k: v},
// "task"?: string}. x is flat; the pipeline reshapes it to the model's input shape.
import { normaliseAttrs, type RawAttrs } from '../format/attrs.js';
import { fastRecord } from './fast-json.js';
import { badRecord, f32Bytes, type Item } from './sample.js';

/**
 * One JSONL line given as bytes buf[start, end): the byte-level fast path for plain records,
 * else JSON.parse of the decoded text (which also words any error).
 */
export function decodeJsonBytes(buf: Buffer, start: number, end: number, lineNo: number, defaultTask: string | null, defaultAttrs: Record<string, string> | null): Item | null {
  const fr = fastRecord(buf, start, end);
  if (fr) {
    if (fr.id === undefined && fr.attrs === undefined && fr.task === undefined) return sampleOf(`line ${lineNo}`, lineNo, fr.x, defaultAttrs ?? {}, defaultTask);
    try {
      const o = {
        id: fr.id === undefined ? undefined : JSON.parse(fr.id),
        attrs: fr.attrs === undefined ? undefined : JSON.parse(fr.attrs),
        task: fr.task === undefined ? undefined : JSON.parse(fr.task),
      };
      return decodeFields(o, fr.x, `line ${lineNo}`, lineNo, defaultTask, defaultAttrs);
    } catch {
      /* not valid JSON after all: the slow path reports it */
    }
  }
  let s = start;
  while (s < end && (buf[s] === 0x20 || buf[s] === 0x09)) s++;
  if (s === end) return null; // blank line
  return decodeJsonLine(buf.toString('utf8', start, end), lineNo, defaultTask, defaultAttrs);
}

function sampleOf(where: string, id: string | number, vec: Float32Array, attrs: Record<string, string>, task: string | null): Item {
  return { where, id, attrs, task, vec, image: null, payloadKind: 'f32', payload: () => f32Bytes(vec) };
}

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
  return decodeFields(r, vec, where, defaultId, defaultTask, defaultAttrs);
}

/** id / attrs / task of a record whose x is already decoded. */
function decodeFields(r: { id?: unknown; attrs?: unknown; task?: unknown }, vec: Float32Array, where: string, defaultId: string | number, defaultTask: string | null, defaultAttrs: Record<string, string> | null): Item {
  let id: string | number = defaultId;
  if (r.id !== undefined && r.id !== null) {
    if (typeof r.id !== 'string' && typeof r.id !== 'number') return badRecord(where, null, '"id" must be a string or a number');
    id = r.id;
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
  return sampleOf(where, id, vec, attrs, task);
}
