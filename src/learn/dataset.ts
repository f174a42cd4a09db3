// Turning KB samples into training data: payload bytes -> raw feature vectors -> model input
// (the task's preprocessing), labels -> class indices. Vector payloads (f32, npy) are raw
// features; image payloads (png, jpeg) are decoded straight into model input by the image
// preprocessing (image-samples.ts), for which preprocess() is then the identity.
import type { Preprocessing } from '../format/index-manifest.js';
import type { SampleRecord, SampleStore } from '../kb/store.js';
import { ImageDecoder, isImageKind } from './image-samples.js';

/** Raw float features of a payload, or null with the reason it cannot be used. */
export function decodePayload(kind: string, buf: Buffer | null): Float32Array | string {
  if (!buf) return 'no payload (device keeps payloads local)';
  if (kind === 'f32') {
    if (buf.length % 4 !== 0 || buf.length === 0) return `f32 payload of ${buf.length} bytes`;
    const out = new Float32Array(buf.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
    return out;
  }
  if (kind === 'npy') return decodeNpy(buf);
  return `payload kind "${kind}" is not supported`;
}

function decodeNpy(buf: Buffer): Float32Array | string {
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') return 'npy payload without NUMPY magic';
  const major = buf[6];
  const hlen = major >= 2 ? buf.readUInt32LE(8) : buf.readUInt16LE(8);
  const start = (major >= 2 ? 12 : 10) + hlen;
  const header = buf.toString('latin1', major >= 2 ? 12 : 10, start);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  if (/'fortran_order':\s*True/.test(header)) return 'npy payload in fortran order';
  const body = buf.subarray(start);
  const read: Record<string, [number, (o: number) => number]> = {
    '<f4': [4, (o) => body.readFloatLE(o)],
    '<f8': [8, (o) => body.readDoubleLE(o)],
    '|u1': [1, (o) => body[o]],
    '<i4': [4, (o) => body.readInt32LE(o)],
  };
  const r = descr ? read[descr] : undefined;
  if (!r) return `npy dtype ${descr} is not supported`;
  const n = Math.floor(body.length / r[0]);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r[1](i * r[0]);
  return out;
}

/**
 * Apply a vector preprocessing (scale, then (x - mean) / std; scalar or per-feature). Image
 * samples are decoded into model input already: for an image preprocessing this is the identity.
 */
export function preprocess(x: Float32Array, p: Preprocessing): Float32Array {
  if (p.kind === 'image') return x;
  const scale = p.scale ?? 1;
  const mean = p.mean ?? [];
  const std = p.std ?? [];
  if (scale === 1 && mean.length === 0 && std.length === 0) return x;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const m = mean.length === 0 ? 0 : mean.length === 1 ? mean[0] : mean[i];
    const s = std.length === 0 ? 1 : std.length === 1 ? std[0] : std[i];
    out[i] = (x[i] * scale - m) / s;
  }
  return out;
}

/**
 * The KB-wide preprocessing of models this learner makes: a single scale 1/RMS of the raw
 * values (no centring, so sparse inputs such as pixels stay sparse and training stays fast),
 * rounded to 4 significant digits. It is fixed at the first round and kept, so every task's
 * model and centroid live in the same input space (transfer and nearest-centroid allocation
 * compare like with like).
 */
export function chooseScale(vectors: Float32Array[]): Preprocessing {
  let ss = 0;
  let n = 0;
  for (const v of vectors) {
    for (let i = 0; i < v.length; i++) ss += v[i] * v[i];
    n += v.length;
  }
  const rms = n ? Math.sqrt(ss / n) : 1;
  if (!(rms > 0) || Math.abs(Math.log10(rms)) < 0.3) return { kind: 'vector' };
  return { kind: 'vector', scale: Number((1 / rms).toPrecision(4)) };
}

export interface LoadedSample {
  rec: SampleRecord;
  raw: Float32Array;
}

/**
 * All samples of the KB with a usable payload (paged); unusable ones are counted by reason.
 * Images are decoded with `image` (or a preprocessing taken from the first image, returned).
 */
export async function loadSamples(store: SampleStore, opts: { image?: Preprocessing | null; maxPixels?: number; resizeImages?: boolean } = {}): Promise<{ samples: LoadedSample[]; skipped: Record<string, number>; image: Preprocessing | null }> {
  const samples: LoadedSample[] = [];
  const skipped: Record<string, number> = {};
  const images = new ImageDecoder(opts.image ?? null, opts.maxPixels, opts.resizeImages);
  // one consistent snapshot of the whole training set, not a query per sample
  for await (const page of store.scanSamples({}, { batch: 2000 })) {
    for (const { payload, ...rec } of page) {
      const buf = rec.payload_kind === 'none' ? null : payload;
      const raw = isImageKind(rec.payload_kind) && buf ? images.decode(buf, rec.preprocessing) : decodePayload(rec.payload_kind, buf);
      if (typeof raw === 'string') skipped[raw] = (skipped[raw] ?? 0) + 1;
      else samples.push({ rec, raw });
    }
  }
  return { samples, skipped, image: images.preprocessing };
}

/** Sort labels naturally ("2" before "10"). */
export function sortLabels(labels: Iterable<string>): string[] {
  return [...new Set(labels)].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}
