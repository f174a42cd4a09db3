// Image training data into the KB: `kb samples import DIR --labels labels.csv` (every PNG/JPEG
// under DIR; the CSV maps file names to labels, extra columns become attributes) and JSONL lines
// that name an image file ({"file": "img/7.png", "label": "7"}) or carry one as exported
// ({"payload_kind": "png", "payload_b64": "..."}). Each image is checked before it is stored:
// a PNG/JPEG header, within the pixel cap (refused before decoding: a decompression bomb declares
// its size), and a full decode; a bad one gets one line (file and reason) and is skipped.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { normaliseAttrs } from '../format/attrs.js';
import { splitCsvLine } from '../format/csv.js';
import { UsageError, BadRecordError } from '../errors.js';
import { DEFAULT_MAX_PIXELS } from '../format/image-header.js';
import { validateImage } from '../onnx/image-input.js';
import { importedSample } from './imported-sample.js';
import { IMPORT_ID_PREFIX, type CounterStore, type NewSample, type SampleStore } from './store.js';
import type { ImportResult } from './samples-io.js';

const IMAGE_EXT = /\.(png|jpe?g)$/i;

/** A stored-sample record for image bytes, or the reason they are refused. */
export function imageSample(bytes: Buffer, label: string | null, attrs: Record<string, string>, id: string | undefined, maxPixels: number, task?: string | null): NewSample | string {
  const kind = validateImage(bytes, maxPixels);
  if (kind !== 'png' && kind !== 'jpeg') return kind;
  return importedSample(kind, bytes, label, attrs, id, task, IMPORT_ID_PREFIX);
}

function imageFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && IMAGE_EXT.test(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** labels.csv: a header with a file column (file, name or path) and label; other columns are attributes. */
function readLabels(csv: string, onBad: (where: string, reason: string) => void): Map<string, { label: string | null; attrs: Record<string, string> }> {
  let text: string;
  try {
    text = readFileSync(csv, 'utf8');
  } catch (e) {
    throw new UsageError(`${csv}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const lines = text.split(/\r?\n/);
  const head = splitCsvLine(lines[0] ?? '').map((h) => h.trim().toLowerCase());
  const fileCol = head.findIndex((h) => h === 'file' || h === 'name' || h === 'path');
  const labelCol = head.indexOf('label');
  if (fileCol < 0 || labelCol < 0) throw new UsageError(`${csv}: the header must name a file column (file, name or path) and a label column; it has ${head.join(',')}`);
  const out = new Map<string, { label: string | null; attrs: Record<string, string> }>();
  for (let i = 1; i < lines.length; i++) {
    if (!lines[i].trim()) continue;
    let f: string[];
    try {
      f = splitCsvLine(lines[i]).map((v) => v.trim());
    } catch (e) {
      onBad(`${csv}:${i + 1}`, (e as Error).message);
      continue;
    }
    if (!f[fileCol]) {
      onBad(`${csv}:${i + 1}`, 'no file name');
      continue;
    }
    const attrs: Record<string, string> = {};
    head.forEach((h, j) => {
      if (j !== fileCol && j !== labelCol && f[j]) attrs[h] = f[j];
    });
    out.set(f[fileCol].replace(/\\/g, '/'), { label: f[labelCol] || null, attrs: normaliseAttrs(attrs) });
  }
  return out;
}

export async function importImageDir(store: SampleStore & CounterStore, dir: string, opts: { labels?: string; strict?: boolean; maxPixels?: number; onBad: (where: string, reason: string) => void }): Promise<ImportResult> {
  const res: ImportResult = { lines: 0, imported: 0, existing: 0, skipped: 0 };
  const bad = (where: string, reason: string) => {
    res.skipped++;
    opts.onBad(where, reason);
    if (opts.strict) throw new BadRecordError(`${where}: ${reason} (--strict: stopped; ${res.imported} sample(s) stored before this batch)`);
  };
  const labels = opts.labels ? readLabels(opts.labels, bad) : null;
  const files = imageFiles(dir);
  const seen = new Set<string>();
  let batch: NewSample[] = [];
  const flush = async () => {
    if (!batch.length) return;
    const r = await store.putSamples(null, batch);
    res.imported += r.inserted;
    res.existing += r.stored.length - r.inserted;
    for (const rej of r.rejected) bad(`sample ${rej.id}`, rej.reason);
    batch = [];
  };
  for (const file of files) {
    const rel = relative(dir, file).split('\\').join('/');
    seen.add(rel);
    res.lines++;
    const meta = labels?.get(rel) ?? { label: null, attrs: {} };
    const s = imageSample(readFileSync(file), meta.label, meta.attrs, undefined, opts.maxPixels ?? DEFAULT_MAX_PIXELS);
    if (typeof s === 'string') {
      bad(file, s);
      continue;
    }
    batch.push(s);
    if (batch.length >= 500) await flush();
  }
  await flush();
  if (labels) for (const name of labels.keys()) if (!seen.has(name)) bad(opts.labels!, `"${name}" is not an image file under ${dir}`);
  await store.logEvent('samples_import', { dir, ...res });
  return res;
}

/** Is this path a directory (image import) rather than a JSONL file? */
export function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
