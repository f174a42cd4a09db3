// .npy input (NumPy format 1.0-3.0): float32 or float64, C order, either byte order. Each row of
// the leading dimension is one sample. Streamed: the header is parsed by hand, rows are cut
// from the chunks as they arrive, so a multi-GB tensor never sits in memory.
// The outbox payload of a row is itself a small .npy (shape (1, ...rest), original dtype).
import type { Readable } from 'node:stream';
import { UsageError } from '../errors.js';
import { badRecord, type Item } from './sample.js';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** Largest header accepted (NumPy writes ~100 bytes; v2/v3 headers may declare up to 4 GB). */
const MAX_HEADER_BYTES = 64 * 1024;
/** Largest sample (one row of the leading dimension) accepted: 256 MiB. */
export const MAX_NPY_ROW_BYTES = 256 * 1024 * 1024;

export interface NpyHeader {
  dtype: 'f4' | 'f8';
  littleEndian: boolean;
  shape: number[];
  /** bytes before the data */
  dataOffset: number;
}

/** Parse the header at the start of buf; null when buf is too short yet. Throws on a bad header. */
export function parseNpyHeader(buf: Buffer, what: string): NpyHeader | null {
  if (buf.length < 10) return null;
  if (!buf.subarray(0, 6).equals(MAGIC)) throw new UsageError(`${what}: not a .npy file (bad magic)`);
  const major = buf[6];
  let hlen: number;
  let start: number;
  if (major === 1) {
    hlen = buf.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) return null;
    hlen = buf.readUInt32LE(8);
    start = 12;
  } else throw new UsageError(`${what}: unsupported .npy version ${major}`);
  if (hlen > MAX_HEADER_BYTES) throw new UsageError(`${what}: .npy header of ${hlen} bytes (over ${MAX_HEADER_BYTES}): not a NumPy-written file`);
  if (buf.length < start + hlen) return null;
  const h = buf.subarray(start, start + hlen).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([<>|=]?)([a-zA-Z]\d*)'/.exec(h);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(h);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(h);
  if (!descr || !fortran || !shape) throw new UsageError(`${what}: malformed .npy header: ${JSON.stringify(h.trim().slice(0, 200))}`);
  const t = descr[2];
  if (t !== 'f4' && t !== 'f8') throw new UsageError(`${what}: dtype ${JSON.stringify(descr[1] + t)} not supported (float32 or float64 only)`);
  if (fortran[1] === 'True') throw new UsageError(`${what}: Fortran-order arrays are not supported (save with C order)`);
  // header text quoted in messages on one line: a corrupt header may hold any byte
  const shown = shape[1].replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 200);
  const dims = shape[1]
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (dims.length === 0 || dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new UsageError(`${what}: shape (${shown}) needs a leading sample dimension`);
  // a zero-size feature dimension makes every row 0 bytes: the row loop would never need data
  // and yield 1e11 empty samples out of a 128-byte file
  if (dims.slice(1).some((d) => d === 0)) throw new UsageError(`${what}: shape (${shown}) has a zero-size feature dimension (a sample with no values)`);
  const rowBytes = dims.slice(1).reduce((a, b) => a * b, 1) * (t === 'f4' ? 4 : 8);
  if (rowBytes > MAX_NPY_ROW_BYTES) throw new UsageError(`${what}: one sample of shape (${dims.slice(1).join(', ')}) is ${rowBytes} bytes, over the ${MAX_NPY_ROW_BYTES / (1024 * 1024)} MiB cap`);
  return { dtype: t, littleEndian: descr[1] !== '>', shape: dims, dataOffset: start + hlen };
}

/** A .npy file holding one row (shape (1, ...rest)) in the source dtype and byte order. */
export function npyRowFile(h: NpyHeader, row: Buffer): Buffer {
  const rest = h.shape.slice(1);
  const shapeStr = `(1,${rest.map((d) => ` ${d},`).join('')})`;
  let dict = `{'descr': '${h.littleEndian ? '<' : '>'}${h.dtype}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const total = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  MAGIC.copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  return Buffer.concat([head, Buffer.from(dict, 'latin1'), row]);
}

function rowToF32(h: NpyHeader, row: Buffer, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(row.buffer, row.byteOffset, row.byteLength);
  if (h.dtype === 'f4') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, h.littleEndian);
  else for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, h.littleEndian);
  return out;
}

/** Stream samples out of a .npy; yields arrays of items per chunk. */
export async function* npyItems(input: Readable, what: string, task: string | null, attrs: Record<string, string>): AsyncGenerator<Item[]> {
  let h: NpyHeader | null = null;
  // bytes not yet cut into rows, as a list of chunks: joined only once a whole row (or the
  // header) is there, so a large row costs one copy, not one per chunk
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let row = 0;
  let rowBytes = 0;
  let feats = 0;
  let extra = 0;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    pending.push(chunk);
    pendingLen += chunk.length;
    if (!h) {
      const head = Buffer.concat(pending, pendingLen);
      pending = [head];
      h = parseNpyHeader(head, what);
      if (!h) continue;
      pending = [head.subarray(h.dataOffset)];
      pendingLen -= h.dataOffset;
      feats = h.shape.slice(1).reduce((a, b) => a * b, 1);
      rowBytes = feats * (h.dtype === 'f4' ? 4 : 8);
    }
    if (row >= h.shape[0]) {
      // every row is out: bytes after the last one are only counted (reported below)
      extra += pendingLen;
      pending = [];
      pendingLen = 0;
      continue;
    }
    if (pendingLen < rowBytes) continue;
    const buf = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingLen);
    const items: Item[] = [];
    let off = 0;
    while (buf.length - off >= rowBytes && row < h.shape[0]) {
      // copy the row: the payload must outlive the chunk
      const bytes = Buffer.from(buf.subarray(off, off + rowBytes));
      off += rowBytes;
      row++;
      items.push(rowItem(h, bytes, row, feats, task, attrs));
    }
    pending = [buf.subarray(off)];
    pendingLen = buf.length - off;
    if (items.length) yield items;
  }
  if (!h) throw new UsageError(`${what}: truncated .npy header`);
  const tail: Item[] = [];
  if (row < h.shape[0]) tail.push(badRecord(`row ${row + 1}`, row + 1, `file ends after ${row} of ${h.shape[0]} rows (truncated)`));
  else if (extra + pendingLen > 0) tail.push(badRecord(`row ${row + 1}`, null, `${extra + pendingLen} bytes after the last row`));
  if (tail.length) yield tail;
}

function rowItem(h: NpyHeader, bytes: Buffer, row: number, feats: number, task: string | null, attrs: Record<string, string>): Item {
  const where = `row ${row}`;
  const vec = rowToF32(h, bytes, feats);
  for (let i = 0; i < feats; i++) {
    if (!Number.isFinite(vec[i])) return badRecord(where, row, `value ${i} is ${vec[i]} (not a finite float32)`);
  }
  return { where, id: row, attrs, task, vec, image: null, payloadKind: 'npy', payload: () => npyRowFile(h, bytes) };
}
