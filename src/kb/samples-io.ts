// Moving samples and labels in and out of the KB as files:
//   importSamples: JSONL {"x": [...], "label"?, "attrs"?, "id"?, "task"?} -> initial training data;
//                  instead of x, "file" (an image path, relative to the JSONL file) or
//                  "payload_kind": "png"|"jpeg" with "payload_b64" (as exported); see image-import.ts
//   exportSamples: every stored sample as JSONL (import-compatible: f32 payloads become "x")
//   importLabels:  CSV "id,label" (with header) or JSONL {"id","label"} -> ground truth
// Files are streamed line by line; a bad line is reported through onBad and skipped (or, with
// strict, ends the run before the batch holding it is stored).
import { createReadStream } from 'node:fs';
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { DEFAULT_MAX_PIXELS } from '../format/image-header.js';
import type { Preprocessing } from '../format/index-manifest.js';
import { imageSample } from './image-import.js';
import { importedSample } from './imported-sample.js';
import type { Writable } from 'node:stream';
import { normaliseAttrs } from '../format/attrs.js';
import { ReportedError, BadRecordError, UsageError } from '../errors.js';
import { SAMPLE_ID_RULE, isSampleId } from '../format/protocol.js';
import { splitCsvLine } from '../format/csv.js';
import { lineChunks, lineTooLongReason } from '../streams/lines.js';
import { writeDrained } from '../streams/write-drained.js';
import { IMPORT_ID_PREFIX } from './store.js';
import type { CounterStore, NewSample, SampleFilter, SampleRecord, SampleStore } from './store.js';

const BATCH = 1000;

export type BadLine = (line: number, reason: string) => void;

/** Lines of file, numbered from 1; a line over the cap (streams/lines.ts) comes as null. */
async function* lines(file: string): AsyncGenerator<[number, string | null]> {
  const input = createReadStream(file);
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', (e: NodeJS.ErrnoException) => reject(new UsageError(`${file}: cannot read: ${e.code ?? e.message}`)));
  });
  await opened;
  let n = 0;
  for await (const chunk of lineChunks(input)) {
    for (const l of chunk) yield [++n, l];
  }
}

/** float32 little-endian bytes of x: the 'f32' payload of the sync protocol */
export function f32Bytes(x: number[]): Buffer {
  const b = Buffer.alloc(x.length * 4);
  for (let i = 0; i < x.length; i++) b.writeFloatLE(x[i], i * 4);
  return b;
}

export function f32Values(b: Buffer): number[] {
  const out = new Array<number>(b.length >> 2);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
  return out;
}

export interface ImportResult {
  lines: number;
  imported: number;
  /** already in the KB (same id): a re-import is harmless */
  existing: number;
  skipped: number;
}

/** An image line's sample: "file" (relative to the JSONL's directory) or png/jpeg payload_b64. */
function parseImageLine(o: Record<string, unknown>, label: string | null, attrs: Record<string, string>, ctx: { dir: string; maxPixels: number }): NewSample | string {
  let bytes: Buffer;
  if (o.file !== undefined) {
    if (typeof o.file !== 'string' || !o.file) return '"file" must be a non-empty path';
    const path = resolve(ctx.dir, o.file);
    try {
      bytes = readFileSync(path);
    } catch (e) {
      return `"file" ${o.file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    }
  } else {
    if (typeof o.payload_b64 !== 'string') return '"payload_b64" must be a base64 string';
    bytes = Buffer.from(o.payload_b64, 'base64');
  }
  if (o.id !== undefined && !isSampleId(o.id)) return `"id" must be ${SAMPLE_ID_RULE}`;
  // an exported edge sample carries the preprocessing the edge's model used: kept as it was
  const pp = o.preprocessing === undefined ? undefined : imagePreprocessing(o.preprocessing);
  if (typeof pp === 'string') return `"preprocessing": ${pp}`;
  const s = imageSample(bytes, label, attrs, o.id as string | undefined, ctx.maxPixels, o.task as string | null | undefined);
  if (typeof s !== 'string' && pp) s.preprocessing = pp;
  return typeof s === 'string' ? `${o.file !== undefined ? `image ${o.file}` : 'payload_b64'}: ${s}` : s;
}

function parseImportLine(text: string, ctx: { dir: string; maxPixels: number }): NewSample | string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text);
  } catch (e) {
    return `not valid JSON: ${(e as Error).message}`;
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) return 'expected a JSON object';
  const x = o.x;
  const image = x === undefined && (o.file !== undefined || o.payload_kind === 'png' || o.payload_kind === 'jpeg');
  if (!image && (!Array.isArray(x) || x.length === 0 || !x.every((v) => typeof v === 'number' && Number.isFinite(v)))) return '"x" must be a non-empty array of finite numbers (or give an image: "file", or "payload_kind" png/jpeg with "payload_b64")';
  let label: string | null = null;
  if (o.label !== undefined && o.label !== null) {
    if (typeof o.label !== 'string' && typeof o.label !== 'number') return '"label" must be a string or number';
    label = String(o.label);
    if (!label) return '"label" is empty';
  }
  if (o.attrs !== undefined && (typeof o.attrs !== 'object' || o.attrs === null || Array.isArray(o.attrs))) return '"attrs" must be an object';
  const attrs = normaliseAttrs(o.attrs as Record<string, string> | undefined);
  // null (or absent): no task, as exported for a sample the edge had no task for
  if (o.task !== undefined && o.task !== null && (typeof o.task !== 'string' || !o.task)) return '"task" must be a non-empty string or null';
  if (image) return parseImageLine(o, label, attrs, ctx);
  if (o.id !== undefined && !isSampleId(o.id)) return `"id" must be ${SAMPLE_ID_RULE}`;
  return importedSample('f32', f32Bytes(x as number[]), label, attrs, o.id as string | undefined, o.task as string | null | undefined, IMPORT_ID_PREFIX);
}

export async function importSamples(store: SampleStore & CounterStore, file: string, opts: { strict?: boolean; maxPixels?: number; onBad: BadLine }): Promise<ImportResult> {
  const ctx = { dir: dirname(resolve(file)), maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS };
  const res: ImportResult = { lines: 0, imported: 0, existing: 0, skipped: 0 };
  let batch: NewSample[] = [];
  let batchLines: number[] = [];
  const flush = async () => {
    if (!batch.length) return;
    const r = await store.putSamples(null, batch);
    res.imported += r.inserted;
    res.existing += r.stored.length - r.inserted;
    for (const rej of r.rejected) {
      res.skipped++;
      opts.onBad(batchLines[batch.findIndex((s) => s.id === rej.id)], `id "${rej.id}": ${rej.reason}`);
    }
    batch = [];
    batchLines = [];
  };
  for await (const [n, text] of lines(file)) {
    if (text !== null && !text.trim()) continue;
    res.lines++;
    const s = text === null ? lineTooLongReason() : parseImportLine(text, ctx);
    if (typeof s === 'string') {
      res.skipped++;
      opts.onBad(n, s);
      if (opts.strict) throw new BadRecordError(`${file}:${n}: ${s} (--strict: stopped; ${res.imported} sample(s) stored before this batch)`);
      continue;
    }
    batch.push(s);
    batchLines.push(n);
    if (batch.length >= BATCH) await flush();
  }
  await flush();
  if (opts.strict && res.skipped) throw new BadRecordError(`${file}: ${res.skipped} line(s) refused (--strict)`);
  await store.logEvent('samples_import', { file: basename(file), ...res });
  return res;
}

/** One exported line: the sample's metadata plus its payload ("x" for f32, else base64). */
export function exportRecord(s: SampleRecord, payload: Buffer | null): Record<string, unknown> {
  const { seq: _seq, ...meta } = s;
  const out: Record<string, unknown> = { ...meta };
  if (payload && s.payload_kind === 'f32') out.x = f32Values(payload);
  else if (payload) out.payload_b64 = payload.toString('base64');
  return out;
}

/** Every matching sample, read in one consistent snapshot (SampleStore.scanSamples). */
export async function exportSamples(store: SampleStore, out: Writable, filter: SampleFilter = {}): Promise<number> {
  let n = 0;
  for await (const page of store.scanSamples(filter, { batch: 1000 })) {
    let buf = '';
    for (const s of page) {
      buf += JSON.stringify(exportRecord(s, s.payload)) + '\n';
      n++;
    }
    await writeDrained(out, buf);
  }
  return n;
}

/** Fields of one CSV line (format/csv.ts, RFC 4180 quoting), trimmed. Throws on an unterminated quote. */
function csvFields(line: string): string[] {
  return splitCsvLine(line).map((f) => f.trim());
}

export interface LabelImportResult {
  lines: number;
  stored: number;
  newly_labelled: number;
  unknown: string[];
  skipped: number;
}

export async function importLabels(store: SampleStore & CounterStore, file: string, opts: { strict?: boolean; onBad: BadLine }): Promise<LabelImportResult> {
  const res: LabelImportResult = { lines: 0, stored: 0, newly_labelled: 0, unknown: [], skipped: 0 };
  const source = `import:${basename(file)}`;
  let batch: { id: string; label: string }[] = [];
  const flush = async () => {
    if (!batch.length) return;
    const r = await store.setLabels(batch, source, null);
    res.stored += r.stored.length;
    res.newly_labelled += r.newly_labelled;
    res.unknown.push(...r.unknown);
    batch = [];
  };
  let format: 'csv' | 'jsonl' | null = null;
  let cols: { id: number; label: number } | null = null;
  const bad = (n: number, reason: string) => {
    res.skipped++;
    opts.onBad(n, reason);
    if (opts.strict) throw new BadRecordError(`${file}:${n}: ${reason} (--strict: stopped)`);
  };
  for await (const [n, text] of lines(file)) {
    if (text === null) {
      if (format === null) throw new ReportedError(`${file}:${n}: first line: ${lineTooLongReason()}`);
      res.lines++;
      bad(n, lineTooLongReason());
      continue;
    }
    if (!text.trim()) continue;
    if (format === null) {
      format = text.trimStart().startsWith('{') ? 'jsonl' : 'csv';
      if (format === 'csv') {
        let h: string[];
        try {
          h = csvFields(text).map((f) => f.toLowerCase());
        } catch (e) {
          throw new ReportedError(`${file}:${n}: CSV header: ${(e as Error).message}`);
        }
        const id = h.indexOf('id');
        const label = h.indexOf('label');
        if (id < 0 || label < 0) throw new ReportedError(`${file}:${n}: CSV header must name the columns "id" and "label" (got "${text}")`);
        cols = { id, label };
        continue;
      }
    }
    res.lines++;
    let id: unknown;
    let label: unknown;
    if (format === 'jsonl') {
      try {
        const o = JSON.parse(text);
        id = o?.id;
        label = o?.label;
      } catch (e) {
        bad(n, `not valid JSON: ${(e as Error).message}`);
        continue;
      }
      if (typeof label === 'number') label = String(label);
    } else {
      let f: string[];
      try {
        f = csvFields(text);
      } catch (e) {
        bad(n, (e as Error).message);
        continue;
      }
      id = f[cols!.id];
      label = f[cols!.label];
    }
    if (id === undefined || id === '') {
      bad(n, 'missing "id"');
      continue;
    }
    if (!isSampleId(id)) {
      bad(n, `"id" ${JSON.stringify(id)}: not a sample id (${SAMPLE_ID_RULE})`);
      continue;
    }
    if (typeof label !== 'string' || !label || label.length > 256) {
      bad(n, `id "${id}": missing or invalid "label"`);
      continue;
    }
    batch.push({ id, label });
    if (batch.length >= 5000) await flush();
  }
  await flush();
  await store.logEvent('labels_import', { file: basename(file), stored: res.stored, newly_labelled: res.newly_labelled, unknown: res.unknown.length, skipped: res.skipped });
  return res;
}

/** A logged image preprocessing (as the edge uploads it), or why it is not one. */
export function imagePreprocessing(v: unknown): Preprocessing | string {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'expected an object';
  const p = v as Record<string, unknown>;
  const posInt = (x: unknown) => Number.isInteger(x) && (x as number) >= 1;
  const nums = (x: unknown) => x === undefined || (Array.isArray(x) && x.length <= 3 && x.every((n) => typeof n === 'number' && Number.isFinite(n)));
  if (p.kind !== 'image' || !posInt(p.width) || !posInt(p.height)) return 'expected kind "image" with integer width and height';
  if (p.channels !== undefined && p.channels !== 1 && p.channels !== 3) return 'channels must be 1 or 3';
  if (p.layout !== undefined && p.layout !== 'NCHW' && p.layout !== 'NHWC') return 'layout must be NCHW or NHWC';
  if ((p.scale !== undefined && (typeof p.scale !== 'number' || !Number.isFinite(p.scale))) || !nums(p.mean) || !nums(p.std)) return 'scale, mean, std must be finite numbers';
  const known = new Set(['kind', 'width', 'height', 'channels', 'layout', 'scale', 'mean', 'std']);
  const extra = Object.keys(p).find((k) => !known.has(k));
  if (extra) return `unknown key "${extra}"`;
  return p as unknown as Preprocessing;
}
