// Hard-example filters (Sedna's lib/sedna/algorithms/hard_example_mining) as pure functions on
// one sample's output. Formulas, with Sedna's and ours side by side:
//
//  threshold      Sedna ThresholdFilter is an object-detection filter: the image score is the
//                 MEAN of the boxes' confidence scores (bbox[4]); hard when mean < t.
//                 A classification output is one prediction, i.e. one "box" whose score is the
//                 top-1 probability, so for classifiers the mean is max(p): hard when max p < t.
//                 No boxes: Sedna returns "not hard"; so do we.
//  cross_entropy  Sedna CrossEntropyFilter: c = 1 + (sum_i p_i ln p_i) / ln K, hard when c < t.
//                 c is 1 for a one-hot output and 0 for a uniform one. Sedna divides by ln 1 = 0
//                 when K = 1 and takes ln 0 when some p_i = 0; we use the limits instead:
//                 0 ln 0 = 0, and K = 1 means the model is certain (c = 1).
//  ibt            Sedna IBTFilter (image-box-thresholds): share of boxes whose score <= t_box;
//                 hard when share >= 1 - t_img. No boxes: not hard (as Sedna). A classification
//                 output is the single box with score max p.
//  margin         ours: top1 - top2 < t (top2 = 0 when K = 1).
//  random         Sedna RandomFilter: hard when u < ratio, u uniform in [0, 1) (seeded PRNG here).
//
// Sedna silently answers "not hard" for scores outside [0, 1]; we treat them (and NaN, and
// probability rows not summing to ~1) as an error of that record: validateProbabilities().
import type { HardFilterConfig } from '../format/index-manifest.js';

/** A detection box: [xmin, ymin, xmax, ymax, score, label?] (Sedna's layout). */
export type Box = ArrayLike<number>;

/** Largest and second largest value of a row. */
export function top2(p: ArrayLike<number>): { i1: number; p1: number; p2: number } {
  let i1 = 0;
  let p1 = -Infinity;
  let p2 = -Infinity;
  for (let i = 0; i < p.length; i++) {
    const v = p[i];
    if (v > p1) {
      p2 = p1;
      p1 = v;
      i1 = i;
    } else if (v > p2) p2 = v;
  }
  return { i1, p1, p2: p.length > 1 ? p2 : 0 };
}

/** Sedna's cross-entropy confidence c = 1 + sum p ln p / ln K (1 = certain, 0 = uniform). */
export function crossEntropyConfidence(p: ArrayLike<number>): number {
  const K = p.length;
  if (K <= 1) return 1;
  let s = 0;
  for (let i = 0; i < K; i++) {
    const v = p[i];
    if (v > 0) s += v * Math.log(v);
  }
  return 1 + s / Math.log(K);
}

/** Normalised entropy H(p) / ln K in [0, 1] (0 for K = 1): 1 - crossEntropyConfidence. */
export function normalisedEntropy(p: ArrayLike<number>): number {
  return 1 - crossEntropyConfidence(p);
}

export const thresholdHard = (meanScore: number, t: number): boolean => meanScore < t;

/** Mean box score (Sedna ThresholdFilter); null when there are no boxes. */
export function meanBoxScore(boxes: readonly Box[]): number | null {
  if (boxes.length === 0) return null;
  let s = 0;
  for (const b of boxes) s += b[4];
  return s / boxes.length;
}

export function ibtHard(boxScores: ArrayLike<number>, tBox: number, tImg: number): boolean {
  const n = boxScores.length;
  if (n === 0) return false;
  let low = 0;
  for (let i = 0; i < n; i++) if (boxScores[i] <= tBox) low++;
  return low / n >= 1 - tImg;
}

export const crossEntropyHard = (p: ArrayLike<number>, t: number): boolean => crossEntropyConfidence(p) < t;

export function marginHard(p: ArrayLike<number>, t: number): boolean {
  const { p1, p2 } = top2(p);
  return p1 - p2 < t;
}

export const randomHard = (u: number, ratio: number): boolean => u < ratio;

/** In-place softmax of a logits row (numerically stable). */
export function softmaxInPlace(z: Float32Array | number[]): void {
  let m = -Infinity;
  for (let i = 0; i < z.length; i++) if (z[i] > m) m = z[i];
  let s = 0;
  for (let i = 0; i < z.length; i++) {
    const e = Math.exp(z[i] - m);
    z[i] = e;
    s += e;
  }
  for (let i = 0; i < z.length; i++) z[i] /= s;
}

/**
 * Why a probability row is not a probability distribution, or null when it is.
 * Tolerance 1e-3 on the sum: float32 softmax rows of up to thousands of classes stay well inside.
 */
export function invalidProbabilities(p: ArrayLike<number>): string | null {
  if (p.length === 0) return 'empty output';
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const v = p[i];
    if (!(v >= 0 && v <= 1)) return Number.isNaN(v) ? `score ${i} is NaN` : `score ${i} = ${v} is outside [0, 1]`;
    s += v;
  }
  if (Math.abs(s - 1) > 1e-3) return `scores sum to ${s.toFixed(4)}, not 1`;
  return null;
}

/** Why detection boxes are invalid (a score outside [0, 1] or too few fields), or null. */
export function invalidBoxes(boxes: readonly Box[]): string | null {
  for (let i = 0; i < boxes.length; i++) {
    const b = boxes[i];
    if (b.length < 5) return `box ${i} has ${b.length} fields, expected >= 5`;
    const v = b[4];
    if (!(v >= 0 && v <= 1)) return `box ${i} score ${v} is outside [0, 1]`;
  }
  return null;
}

/** One sample's model output as the filters see it. */
export interface FilterInput {
  /** class probabilities (after softmax for logits); empty for detection outputs */
  probs: ArrayLike<number>;
  /** detection boxes, or null for a classification output */
  boxes: readonly Box[] | null;
  /** uniform [0, 1) draw for the random filter */
  u: number;
}

/** Does filter f call this sample hard? (no rate caps here: see rate-caps.ts) */
export function filterFires(f: HardFilterConfig, s: FilterInput): boolean {
  const t = f.threshold ?? 0.5;
  switch (f.type) {
    case 'threshold': {
      if (s.boxes) {
        const m = meanBoxScore(s.boxes);
        return m !== null && thresholdHard(m, t);
      }
      return thresholdHard(top2(s.probs).p1, t);
    }
    case 'cross_entropy':
      // defined on a class-probability list only; on detection boxes it does not apply
      return s.boxes ? false : crossEntropyHard(s.probs, t);
    case 'ibt': {
      const tBox = f.threshold_box ?? 0.5;
      const tImg = f.threshold_img ?? 0.5;
      if (s.boxes) return ibtHard(s.boxes.map((b) => b[4]), tBox, tImg);
      return ibtHard([top2(s.probs).p1], tBox, tImg);
    }
    case 'margin':
      return s.boxes ? false : marginHard(s.probs, t);
    case 'random':
      return randomHard(s.u, f.ratio ?? 0.3);
  }
}

/** A stable name for a filter in hard_reasons and in filter_counts (type, or type#n if repeated). */
export function filterNames(filters: readonly HardFilterConfig[]): string[] {
  const seen = new Map<string, number>();
  return filters.map((f) => {
    const n = seen.get(f.type) ?? 0;
    seen.set(f.type, n + 1);
    return n === 0 ? f.type : `${f.type}#${n + 1}`;
  });
}
