// Input sources for `infer`: a FILE or stdin, as JSONL, CSV, .npy or images (one image file or
// a directory of them). Each yields arrays of items (samples or bad records) as input arrives.
import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { normaliseAttrs, parseAttrPairs } from '../format/attrs.js';
import { UsageError, ReportedError } from '../errors.js';
import { csvLayout, decodeCsvLine } from './decode-csv.js';
import { decodeJsonBytes } from './decode-jsonl.js';
import { npyItems } from './decode-npy.js';
import { sniffImage } from '../onnx/image.js';
import { checkImage, DEFAULT_MAX_PIXELS } from '../format/image-header.js';
import { byteLineChunks, lineChunks, lineTooLongReason } from '../streams/lines.js';
import { badRecord, type Item } from './sample.js';

export type InputFormat = 'jsonl' | 'csv' | 'npy' | 'image';

export interface SourceOptions {
  /** FILE, a directory of images, or "-" / undefined for stdin */
  file?: string;
  format?: InputFormat;
  /** CSV feature columns */
  features?: string;
  /** CSV: attribute columns; jsonl / npy / image: key=value pairs applied to every sample */
  attrs?: string;
  /** explicit task for every sample (a JSONL record's "task" wins) */
  task?: string | null;
  /** image inputs declaring more pixels are refused from their header, before decoding (config images.max_pixels) */
  maxPixels?: number;
  /** resize images whose size differs from the model's input instead of refusing them (config images.resize) */
  resize?: boolean;
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg']);
/** Largest image file read (the decoded size is capped separately, onnx/image.ts). */
const MAX_IMAGE_FILE_BYTES = 256 * 1024 * 1024;

export function detectFormat(file: string | undefined): InputFormat {
  if (!file || file === '-') return 'jsonl';
  let isDir = false;
  try {
    isDir = statSync(file).isDirectory();
  } catch (e) {
    throw new UsageError(`${file}: cannot read input: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (isDir) return 'image';
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.npy') return 'npy';
  if (IMAGE_EXT.has(ext)) return 'image';
  return 'jsonl';
}

/** key=value[,key=value] as normalised attrs (for formats without attribute columns). */
function pairAttrs(spec: string | undefined): Record<string, string> | null {
  if (!spec) return null;
  try {
    return normaliseAttrs(parseAttrPairs(spec.split(',').map((s) => s.trim()).filter(Boolean)));
  } catch (e) {
    throw new UsageError((e as Error).message.replace('--attr', '--attrs'));
  }
}

function open(file: string | undefined): Readable {
  if (!file || file === '-') return process.stdin;
  try {
    if (statSync(file).isDirectory()) throw new UsageError(`${file}: is a directory (use --format image for a directory of images)`);
  } catch (e) {
    if (e instanceof ReportedError) throw e;
    throw new UsageError(`${file}: cannot read input: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return createReadStream(file, { highWaterMark: 256 * 1024 });
}

export function itemSource(o: SourceOptions): AsyncGenerator<Item[]> {
  const format = o.format ?? detectFormat(o.file);
  const task = o.task ?? null;
  if (format !== 'csv' && o.features) throw new UsageError('--features applies to CSV input only');
  switch (format) {
    case 'jsonl':
      return jsonlSource(open(o.file), task, pairAttrs(o.attrs));
    case 'csv':
      return csvSource(open(o.file), o, task);
    case 'npy':
      return npyItems(open(o.file), o.file && o.file !== '-' ? o.file : 'stdin', task, pairAttrs(o.attrs) ?? {});
    case 'image':
      return imageSource(o.file, task, pairAttrs(o.attrs) ?? {}, { maxPixels: o.maxPixels ?? DEFAULT_MAX_PIXELS, resize: o.resize ?? false });
  }
}

async function* jsonlSource(input: Readable, task: string | null, attrs: Record<string, string> | null): AsyncGenerator<Item[]> {
  let lineNo = 0;
  for await (const { buf, starts, ends, tooLong } of byteLineChunks(input)) {
    const items: Item[] = [];
    for (let k = 0; k < starts.length; k++) {
      lineNo++;
      const it = tooLong?.includes(k) ? badRecord(`line ${lineNo}`, null, lineTooLongReason()) : decodeJsonBytes(buf, starts[k], ends[k], lineNo, task, attrs);
      if (it) items.push(it);
    }
    if (items.length) yield items;
  }
}

async function* csvSource(input: Readable, o: SourceOptions, task: string | null): AsyncGenerator<Item[]> {
  let lineNo = 0;
  let layout: ReturnType<typeof csvLayout> | null = null;
  for await (const lines of lineChunks(input)) {
    const items: Item[] = [];
    for (const l of lines) {
      lineNo++;
      if (l === null) {
        if (!layout) throw new UsageError(`${o.file ?? 'stdin'}: CSV header ${lineTooLongReason()}`);
        items.push(badRecord(`line ${lineNo}`, null, lineTooLongReason()));
        continue;
      }
      if (!layout) {
        if (l.trim() === '') continue;
        layout = csvLayout(l, o.features, o.attrs);
        continue;
      }
      const it = decodeCsvLine(l, lineNo, layout, task);
      if (it) items.push(it);
    }
    if (items.length) yield items;
  }
  if (!layout) throw new UsageError(`${o.file ?? 'stdin'}: empty CSV (no header row)`);
}

/** Image files: one file, a directory (sorted by name, non-images ignored), or stdin bytes. */
async function* imageSource(file: string | undefined, task: string | null, attrs: Record<string, string>, policy: ImagePolicy): AsyncGenerator<Item[]> {
  let files: string[];
  if (!file || file === '-') {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of process.stdin as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > MAX_IMAGE_FILE_BYTES) throw new UsageError(`stdin: image larger than ${MAX_IMAGE_FILE_BYTES / (1024 * 1024)} MiB`);
      chunks.push(c);
    }
    yield [imageItem('stdin', Buffer.concat(chunks), task, attrs, policy)];
    return;
  }
  if (statSync(file).isDirectory()) {
    files = readdirSync(file)
      .filter((f) => IMAGE_EXT.has(extname(f).toLowerCase()))
      .sort()
      .map((f) => join(file, f));
    if (files.length === 0) throw new UsageError(`${file}: no .png/.jpg/.jpeg files`);
  } else files = [file];
  for (const f of files) {
    let bytes: Buffer;
    try {
      // a FIFO or device named e.png would block the run forever (or never end)
      const st = statSync(f);
      if (!st.isFile()) {
        yield [badRecord(`file ${f}`, f, 'not a regular file')];
        continue;
      }
      if (st.size > MAX_IMAGE_FILE_BYTES) {
        yield [badRecord(`file ${f}`, f, `${st.size} bytes, over the ${MAX_IMAGE_FILE_BYTES / (1024 * 1024)} MiB image file cap`)];
        continue;
      }
      bytes = readFileSync(f);
    } catch (e) {
      yield [badRecord(`file ${f}`, f, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)];
      continue;
    }
    yield [imageItem(f, bytes, task, attrs, policy)];
  }
}

interface ImagePolicy {
  maxPixels: number;
  resize: boolean;
}

/**
 * One image file as a sample. Its header is read here, before any decoding: an image over the
 * pixel cap (a decompression bomb declares its size up front: a 100 KB JPEG can declare 36 MP,
 * which jpeg-js takes ~14 s and 256 MB to decode) is a bad record naming the file.
 */
function imageItem(name: string, bytes: Buffer, task: string | null, attrs: Record<string, string>, policy: ImagePolicy): Item {
  const kind = sniffImage(bytes);
  if (!kind) return badRecord(`file ${name}`, name, 'not a PNG or JPEG file');
  const h = checkImage(bytes, policy.maxPixels);
  if (typeof h === 'string') return badRecord(`file ${name}`, name, /pixels/.test(h) ? `${h} (config images.max_pixels)` : `undecodable ${kind.toUpperCase()}: ${h}`);
  const id = name.split(/[\\/]/).pop() ?? name;
  return { where: `file ${name}`, id, attrs, task, vec: null, image: { kind, bytes, header: h, resize: policy.resize, maxPixels: policy.maxPixels }, payloadKind: kind, payload: () => bytes };
}
