// A raw vector as one task's model input, per the index's `preprocessing`: scale, then
// (x - mean) / std, per value, per channel or one for all. The inference pipeline
// (runtime/preprocess.ts, which also lays out images) and the canary checks that the edge and
// the KB run (onnx/checked-model.ts) must compute the very same input, so it lives here at the
// bottom, below both runtime and kb. Pure: imports only format.
import type { Preprocessing, TaskEntry } from '../format/index-manifest.js';

/** scale, mean, std of `p` applied to v (length n, `channels` channels); v itself when p has none. */
export function normalise(v: Float32Array, p: Preprocessing, channels: number, channelLast: boolean, inPlace: boolean): Float32Array {
  const { scale, mean, std } = p;
  if (scale === undefined && !mean && !std) return v;
  const out = inPlace ? v : new Float32Array(v.length);
  const n = v.length;
  const per = (arr: number[] | undefined, what: string): ((i: number) => number) | null => {
    if (!arr || arr.length === 0) return null;
    if (arr.length === 1) return () => arr[0];
    if (arr.length === channels && channels > 1) return channelLast ? (i) => arr[i % channels] : (i) => arr[Math.floor(i / (n / channels))];
    if (arr.length === n) return (i) => arr[i];
    throw new Error(`preprocessing ${what} has ${arr.length} values; expected 1, ${channels > 1 ? `${channels} (channels) or ` : ''}${n}`);
  };
  const m = per(mean, 'mean');
  const s = per(std, 'std');
  const k = scale ?? 1;
  for (let i = 0; i < n; i++) {
    let x = v[i] * k;
    if (m) x -= m(i);
    if (s) x /= s(i);
    out[i] = x;
  }
  return out;
}

/**
 * The model input for a vector sample (length = features); v is never modified. A vector for an
 * image model is taken as the pixel tensor already in the model's layout. Throws a reason string.
 */
export function vectorInput(v: Float32Array, task: TaskEntry, features: number): Float32Array {
  if (v.length !== features) throw new Error(`x has ${v.length} values, task "${task.id}" takes ${features}`);
  const p = task.model.preprocessing;
  const ch = p.kind === 'image' ? (p.channels ?? 3) : 1;
  return normalise(v, p, ch, p.layout !== 'NCHW', false);
}
