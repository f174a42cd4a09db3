// Calibration for the edge: a task's centroid and radius (allocation by nearest centroid and
// "distance" unseen detection) and its confidence / entropy thresholds, all set from the task's
// held-out data at a target false-positive rate: the share of the task's own samples that the
// edge would wrongly flag as unseen.

/** Mean of n rows (the centroid of a task's training inputs, in model input space). */
export function centroidOf(X: Float32Array, n: number, d: number): Float64Array {
  const c = new Float64Array(d);
  if (n === 0) return c;
  for (let i = 0; i < n; i++) {
    const o = i * d;
    for (let j = 0; j < d; j++) c[j] += X[o + j];
  }
  for (let j = 0; j < d; j++) c[j] /= n;
  return c;
}

export function distancesTo(X: Float32Array, n: number, d: number, c: ArrayLike<number>): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let s = 0;
    for (let j = 0; j < d; j++) {
      const v = X[o + j] - c[j];
      s += v * v;
    }
    out[i] = Math.sqrt(s);
  }
  return out;
}

/** Quantile with linear interpolation between order statistics (type 7, numpy's default). */
export function quantile(values: ArrayLike<number>, q: number): number {
  const n = values.length;
  if (n === 0) return NaN;
  const s = Float64Array.from(values).sort();
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

/** Normalised entropy H(p)/ln K in [0,1] (the edge's "entropy" unseen score). */
export function normalisedEntropy(p: ArrayLike<number>, off = 0, k = p.length): number {
  if (k <= 1) return 0;
  let h = 0;
  for (let j = 0; j < k; j++) {
    const v = p[off + j];
    if (v > 0) h -= v * Math.log(v);
  }
  return h / Math.log(k);
}

export interface Calibration {
  centroid: number[];
  radius: number;
  confidence: number;
  entropy: number;
  /** held-out samples the thresholds were set from */
  n: number;
}

/** Below this many held-out samples the quantiles also use the training distances. */
export const MIN_CALIBRATION_SAMPLES = 20;

/**
 * Calibrate one task. trainX: its training inputs (centroid); heldX/heldP: held-out inputs and
 * the task model's probabilities on them. fpr: target false-positive rate (e.g. 0.05 -> the
 * radius is the 95th percentile of held-out distances, the confidence threshold the 5th
 * percentile of held-out max-probabilities). Tiny held-out sets borrow the training distances
 * so a radius is never set from two or three points.
 */
export function calibrate(
  trainX: Float32Array,
  nTrain: number,
  heldX: Float32Array,
  nHeld: number,
  heldP: Float32Array,
  k: number,
  d: number,
  fpr: number,
): Calibration {
  const c = centroidOf(trainX, nTrain, d);
  let dist = distancesTo(heldX, nHeld, d, c);
  if (nHeld < MIN_CALIBRATION_SAMPLES) {
    const t = distancesTo(trainX, nTrain, d, c);
    const both = new Float64Array(dist.length + t.length);
    both.set(dist);
    both.set(t, dist.length);
    dist = both;
  }
  const maxP = new Float64Array(nHeld);
  const ent = new Float64Array(nHeld);
  for (let i = 0; i < nHeld; i++) {
    let m = 0;
    for (let j = 0; j < k; j++) if (heldP[i * k + j] > m) m = heldP[i * k + j];
    maxP[i] = m;
    ent[i] = normalisedEntropy(heldP, i * k, k);
  }
  const round6 = (v: number) => Math.round(v * 1e6) / 1e6;
  return {
    centroid: Array.from(c, (v) => Math.fround(v)),
    radius: dist.length ? round6(quantile(dist, 1 - fpr)) : 0,
    confidence: nHeld ? round6(quantile(maxP, fpr)) : 0,
    entropy: nHeld ? round6(quantile(ent, 1 - fpr)) : 1,
    n: nHeld,
  };
}
