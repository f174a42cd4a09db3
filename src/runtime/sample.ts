// What the decoders hand to the pipeline: one input sample (not yet allocated to a task), or
// a bad record that is reported on stderr and skipped (or stops the run with --strict).

import type { ImageHeader } from '../format/image-header.js';

export type PayloadKind = 'f32' | 'png' | 'jpeg' | 'npy';

export interface Sample {
  bad?: undefined;
  /** where it came from, for error messages: "line 12", "row 3", "file cat.png" */
  where: string;
  /** the caller's id if the input had one, else the 1-based line / row number or file name */
  id: string | number;
  /** normalised attributes (src/format/attrs.ts) */
  attrs: Record<string, string>;
  /** explicit task id (record field "task" or --task), null: allocate */
  task: string | null;
  /** vector input: the raw features, before any preprocessing */
  vec: Float32Array | null;
  /** image input: the encoded file, its header (read before decoding) and the edge's image policy */
  image: { kind: 'png' | 'jpeg'; bytes: Buffer; header: ImageHeader; resize: boolean; maxPixels: number } | null;
  /** what the outbox stores for this sample */
  payloadKind: PayloadKind;
  payload: () => Buffer;
  /** one-slot cache of the model input (preprocessing is the same for most tasks) */
  cacheKey?: string;
  cacheVal?: Float32Array;
}

export interface BadRecord {
  bad: true;
  where: string;
  id: string | number | null;
  reason: string;
}

export type Item = Sample | BadRecord;

export const badRecord = (where: string, id: string | number | null, reason: string): BadRecord => ({ bad: true, where, id, reason });

/** The raw float32 little-endian bytes of a vector (the "f32" payload), without a copy. */
export function f32Bytes(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
