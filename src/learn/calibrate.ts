// Calibration for the edge: a task's centroid and radius (allocation by nearest centroid) and
// the thresholds of its unseen methods (confidence, entropy, distance, features), set from the
// task's held-out data at a target false-positive rate: the share of the task's own samples that
// the edge would wrongly flag as unseen. The rate is that of the COMBINED flag the index
// configures (methods + any/all), not of each method alone: with "any" over three methods,
// each at 5 %, up to 15 % of in-domain samples would be flagged.
import { FeatureDistance } from '../format/feature-distance.js';
import type { FeatureStats, UnseenConfig, UnseenMethod } from '../format/index-manifest.js';
import { fitFeatureStats } from './feature-stats.js';

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
  return quantileSorted(Float64Array.from(values).sort(), q);
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
  /** the task's extent at the target rate (allocation by nearest centroid refuses beyond it) */
  radius: number;
  confidence: number;
  entropy: number;
  /** "distance" method threshold (the radius unless the combined calibration moved it) */
  distance: number;
  /** penultimate-layer statistics and the "features" threshold (null: the model has no features output) */
  features: FeatureStats | null;
  featuresThreshold: number | null;
  /** per-method quantile level used so that the combined flag hits the target rate */
  level: number;
  /** the combined flag's false-positive rate on the held-out samples at these thresholds */
  heldoutFpr: number | null;
  /** held-out samples the thresholds were set from */
  n: number;
}

/** What the combined calibration needs besides inputs and probabilities. */
export interface CalibrationExtras {
  /** the index's unseen methods and combine rule (default: each method at the rate alone) */
  unseen?: Pick<UnseenConfig, 'methods' | 'combine'>;
  /** penultimate-layer features of the training and held-out rows (the served model's) */
  features?: { output: string; dim: number; train: Float32Array; held: Float32Array; trainClasses: ArrayLike<number> };
}

/** Methods with a score per sample (attr is a yes/no fact, never wrong on in-domain data). */
export type ScoredMethod = 'confidence' | 'entropy' | 'distance' | 'features';

/**
 * The per-method thresholds at which the COMBINED flag fires on at most `fpr` of the given
 * in-domain samples. scores[m][i]: method m's score of sample i, oriented so higher means more
 * unseen (confidence: -max p). Every method is cut at the same quantile level q (its (1-q)
 * quantile); q is the largest level whose combined rate is <= fpr (bisection: the rate grows with
 * q). With one method q = fpr; with "any" over several q < fpr, with "all" q > fpr.
 */
export function calibrateCombined(
  scores: Partial<Record<ScoredMethod, ArrayLike<number>>>,
  combine: 'any' | 'all',
  fpr: number,
): { level: number; cuts: Partial<Record<ScoredMethod, number>>; fpr: number } {
  const ms = (Object.keys(scores) as ScoredMethod[]).filter((m) => scores[m]!.length > 0);
  if (ms.length === 0) return { level: fpr, cuts: {}, fpr: 0 };
  const n = scores[ms[0]]!.length;
  for (const m of ms) if (scores[m]!.length !== n) throw new Error(`calibrateCombined: ${m} has ${scores[m]!.length} scores, ${ms[0]} ${n}`);
  const sorted = ms.map((m) => Float64Array.from(scores[m]!).sort());
  const cutsAt = (q: number) => sorted.map((s) => quantileSorted(s, 1 - q));
  const rateAt = (cuts: number[]) => {
    let flagged = 0;
    for (let i = 0; i < n; i++) {
      let fires = combine === 'all';
      for (let k = 0; k < ms.length; k++) {
        const f = scores[ms[k]]![i] > cuts[k];
        if (combine === 'any' && f) {
          fires = true;
          break;
        }
        if (combine === 'all' && !f) {
          fires = false;
          break;
        }
      }
      if (fires) flagged++;
    }
    return flagged / n;
  };
  let lo = 0;
  let hi = 1;
  if (rateAt(cutsAt(hi)) <= fpr) lo = hi;
  else {
    for (let it = 0; it < 40; it++) {
      const mid = (lo + hi) / 2;
      if (rateAt(cutsAt(mid)) <= fpr) lo = mid;
      else hi = mid;
    }
  }
  const cuts = cutsAt(lo);
  return { level: lo, cuts: Object.fromEntries(ms.map((m, k) => [m, cuts[k]])), fpr: rateAt(cuts) };
}

function quantileSorted(s: Float64Array, q: number): number {
  const n = s.length;
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
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
  extras: CalibrationExtras = {},
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
  const radius = dist.length ? round6(quantile(dist, 1 - fpr)) : 0;
  // each method alone at the rate: what a method not in the index's config gets
  const cal: Calibration = {
    centroid: Array.from(c, (v) => Math.fround(v)),
    radius,
    confidence: nHeld ? round6(quantile(maxP, fpr)) : 0,
    entropy: nHeld ? round6(quantile(ent, 1 - fpr)) : 1,
    distance: radius,
    features: null,
    featuresThreshold: null,
    level: fpr,
    heldoutFpr: null,
    n: nHeld,
  };
  let featScores: Float64Array | null = null;
  const fx = extras.features;
  if (fx && nTrain > 0) {
    cal.features = fitFeatureStats(fx.train, nTrain, fx.dim, fx.trainClasses, fx.output);
    if (cal.features) {
      const fd = new FeatureDistance(cal.features);
      featScores = new Float64Array(nHeld);
      for (let i = 0; i < nHeld; i++) featScores[i] = fd.score(fx.held.subarray(i * fx.dim, (i + 1) * fx.dim));
      // tiny held-out sets: the training rows' distances too (as for the radius)
      const ref = nHeld >= MIN_CALIBRATION_SAMPLES ? featScores : Float64Array.from([...featScores, ...Array.from({ length: nTrain }, (_, i) => fd.score(fx.train.subarray(i * fx.dim, (i + 1) * fx.dim)))]);
      cal.featuresThreshold = ref.length ? round6(quantile(ref, 1 - fpr)) : null;
    }
  }
  // the configured methods together: one quantile level for all, so the COMBINED flag hits fpr
  const methods = (extras.unseen?.methods ?? []).filter((m): m is ScoredMethod => m !== 'attr');
  const scores: Partial<Record<ScoredMethod, Float64Array>> = {};
  for (const m of new Set<UnseenMethod>(methods)) {
    if (m === 'confidence') scores.confidence = maxP.map((p) => -p);
    else if (m === 'entropy') scores.entropy = ent;
    else if (m === 'distance') scores.distance = distancesTo(heldX, nHeld, d, c);
    else if (m === 'features' && featScores) scores.features = featScores;
  }
  const applied = Object.keys(scores) as ScoredMethod[];
  if (applied.length > 1 && nHeld > 0) {
    const combine = extras.unseen!.combine;
    let cuts: Partial<Record<ScoredMethod, number>>;
    if (nHeld >= MIN_CALIBRATION_SAMPLES) {
      const r = calibrateCombined(scores, combine, fpr);
      cuts = r.cuts;
      cal.level = r.level;
      cal.heldoutFpr = r.fpr;
    } else {
      // too few samples to measure the combined rate: a union bound for "any" (each at fpr/m),
      // each at fpr for "all"
      cal.level = combine === 'any' ? fpr / applied.length : fpr;
      cuts = Object.fromEntries(applied.map((m) => [m, quantile(scores[m]!, 1 - cal.level)]));
    }
    if (cuts.confidence !== undefined) cal.confidence = round6(-cuts.confidence);
    if (cuts.entropy !== undefined) cal.entropy = round6(cuts.entropy);
    if (cuts.distance !== undefined) cal.distance = round6(cuts.distance);
    if (cuts.features !== undefined) cal.featuresThreshold = round6(cuts.features);
  }
  return cal;
}
