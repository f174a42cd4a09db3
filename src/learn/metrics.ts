// Classification metrics of the eval gate and the reports: accuracy, micro precision, macro F1.
// Note: for single-label multi-class data micro precision equals accuracy (every wrong
// prediction is one false positive); it is offered because Sedna's gate names it.

export type MetricName = 'accuracy' | 'micro_precision' | 'macro_f1';
export const METRICS: readonly MetricName[] = ['accuracy', 'micro_precision', 'macro_f1'];

export interface Scores {
  accuracy: number;
  micro_precision: number;
  macro_f1: number;
  /** samples scored */
  n: number;
}

/** Scores of predictions against truth (class indices 0..k-1). Empty input scores 0. */
export function score(truth: ArrayLike<number>, pred: ArrayLike<number>, k: number): Scores {
  const n = truth.length;
  if (pred.length !== n) throw new Error(`score: ${n} labels but ${pred.length} predictions`);
  if (n === 0) return { accuracy: 0, micro_precision: 0, macro_f1: 0, n: 0 };
  const tp = new Float64Array(k);
  const fp = new Float64Array(k);
  const fn = new Float64Array(k);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const t = truth[i];
    const p = pred[i];
    if (t === p) {
      correct++;
      tp[t]++;
    } else {
      if (p >= 0 && p < k) fp[p]++;
      if (t >= 0 && t < k) fn[t]++;
    }
  }
  let tpSum = 0;
  let fpSum = 0;
  let f1Sum = 0;
  let classes = 0;
  for (let c = 0; c < k; c++) {
    tpSum += tp[c];
    fpSum += fp[c];
    // like scikit-learn: classes that occur in truth or predictions
    if (tp[c] + fp[c] + fn[c] === 0) continue;
    classes++;
    const denom = 2 * tp[c] + fp[c] + fn[c];
    f1Sum += denom === 0 ? 0 : (2 * tp[c]) / denom;
  }
  return {
    accuracy: correct / n,
    micro_precision: tpSum + fpSum === 0 ? 0 : tpSum / (tpSum + fpSum),
    macro_f1: classes === 0 ? 0 : f1Sum / classes,
    n,
  };
}

export function parseMetric(s: string): MetricName {
  if ((METRICS as readonly string[]).includes(s)) return s as MetricName;
  throw new Error(`metric "${s}": expected one of ${METRICS.join(', ')}`);
}

/** Scores of predicted label names against true label names (any label sets). */
export function scoreLabels(truth: readonly string[], pred: readonly string[]): Scores {
  const index = new Map<string, number>();
  const id = (s: string) => {
    let v = index.get(s);
    if (v === undefined) index.set(s, (v = index.size));
    return v;
  };
  const t = truth.map(id);
  const p = pred.map(id);
  return score(t, p, index.size);
}

/** Round scores for reports and the index (4 decimals). */
export function roundScores(s: Scores): Scores {
  const r = (v: number) => Math.round(v * 1e4) / 1e4;
  return { accuracy: r(s.accuracy), micro_precision: r(s.micro_precision), macro_f1: r(s.macro_f1), n: s.n };
}
