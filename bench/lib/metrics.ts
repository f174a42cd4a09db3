// Continual-learning metrics over an accuracy matrix, plus detector quality.
//
// R is T x T: R[i][j] = test accuracy on task j after training round i (0-based).
// Definitions (GEM: Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory", section 2):
//   ACC = (1/T) sum_j R[T-1][j]
//   BWT = (1/(T-1)) sum_{j<T-1} (R[T-1][j] - R[j][j])
//   FWT = (1/(T-1)) sum_{j>0}   (R[j-1][j] - b[j])
// where b[j] is the test accuracy on task j of the model at random initialisation (before
// any training, GEM's "vector of test accuracies for each task at random initialization").
// Accuracies are fractions in [0, 1] (not percentages); BWT/FWT are in the same unit.
// Forgetting (Chaudhry et al. 2018, "Riemannian Walk"), measured after the last round:
//   f_j = max_{l < T-1} R[l][j] - R[T-1][j],  F = mean over j < T-1.
// Ianvs' samples_transfer_ratio = samples uploaded to the cloud / samples inferred at the edge.

export type Matrix = number[][];

function checkSquare(R: Matrix): number {
  const T = R.length;
  if (T === 0) throw new Error('accuracy matrix is empty');
  for (const row of R) if (row.length !== T) throw new Error(`accuracy matrix must be ${T}x${T}`);
  return T;
}

const mean = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/** GEM's average accuracy after the last round. */
export function acc(R: Matrix): number {
  const T = checkSquare(R);
  return mean(R[T - 1]);
}

/** GEM's backward transfer (negative = forgetting). NaN for T = 1. */
export function bwt(R: Matrix): number {
  const T = checkSquare(R);
  const d: number[] = [];
  for (let j = 0; j < T - 1; j++) d.push(R[T - 1][j] - R[j][j]);
  return mean(d);
}

/** GEM's forward transfer against b (random-init accuracies per task). NaN for T = 1. */
export function fwt(R: Matrix, b: number[]): number {
  const T = checkSquare(R);
  if (b.length !== T) throw new Error(`fwt: b has ${b.length} entries for ${T} tasks`);
  const d: number[] = [];
  for (let j = 1; j < T; j++) d.push(R[j - 1][j] - b[j]);
  return mean(d);
}

/** Chaudhry et al. 2018 average forgetting after the last round. NaN for T = 1. */
export function forgetting(R: Matrix): number {
  const T = checkSquare(R);
  const f: number[] = [];
  for (let j = 0; j < T - 1; j++) {
    let best = -Infinity;
    for (let l = 0; l < T - 1; l++) best = Math.max(best, R[l][j]);
    f.push(best - R[T - 1][j]);
  }
  return mean(f);
}

/** Mean accuracy over the tasks seen so far, after each round: (1/(i+1)) sum_{j<=i} R[i][j]. */
export function accSeenPerRound(R: Matrix): number[] {
  const T = checkSquare(R);
  const out: number[] = [];
  for (let i = 0; i < T; i++) out.push(mean(R[i].slice(0, i + 1)));
  return out;
}

/** Ianvs' samples_transfer_ratio: uploaded / inferred (0 when nothing was inferred). */
export function samplesTransferRatio(uploaded: number, inferred: number): number {
  if (uploaded < 0 || inferred < 0) throw new Error('samplesTransferRatio: negative count');
  return inferred === 0 ? 0 : uploaded / inferred;
}

export interface ContinualSummary {
  acc: number;
  bwt: number;
  fwt: number;
  forgetting: number;
}

export function summarise(R: Matrix, b: number[]): ContinualSummary {
  return { acc: acc(R), bwt: bwt(R), fwt: fwt(R, b), forgetting: forgetting(R) };
}

/**
 * Area under the ROC curve for scores where higher means "more likely positive"
 * (Mann-Whitney U with average ranks, so ties count one half).
 */
export function auroc(positives: number[], negatives: number[]): number {
  const P = positives.length;
  const N = negatives.length;
  if (P === 0 || N === 0) throw new Error('auroc: need at least one positive and one negative score');
  const all: { s: number; pos: boolean }[] = [];
  for (const s of positives) all.push({ s, pos: true });
  for (const s of negatives) all.push({ s, pos: false });
  for (const a of all) if (!Number.isFinite(a.s)) throw new Error(`auroc: score ${a.s} is not finite`);
  all.sort((a, b) => a.s - b.s);
  let rankSumPos = 0;
  for (let i = 0; i < all.length; ) {
    let k = i;
    while (k + 1 < all.length && all[k + 1].s === all[i].s) k++;
    const avgRank = (i + k) / 2 + 1; // ranks are 1-based
    for (let m = i; m <= k; m++) if (all[m].pos) rankSumPos += avgRank;
    i = k + 1;
  }
  return (rankSumPos - (P * (P + 1)) / 2) / (P * N);
}

/**
 * TPR at a false-positive-rate budget: the best true-positive rate of a rule
 * "positive iff score >= t" over thresholds t whose FPR is <= maxFpr.
 * Returns the TPR and the threshold achieving it (Infinity: nothing flagged).
 */
export function tprAtFpr(positives: number[], negatives: number[], maxFpr = 0.05): { tpr: number; fpr: number; threshold: number } {
  const P = positives.length;
  const N = negatives.length;
  if (P === 0 || N === 0) throw new Error('tprAtFpr: need at least one positive and one negative score');
  const thresholds = [...new Set([...positives, ...negatives])].sort((a, b) => b - a);
  const pos = [...positives].sort((a, b) => b - a);
  const neg = [...negatives].sort((a, b) => b - a);
  let best = { tpr: 0, fpr: 0, threshold: Infinity };
  let ip = 0;
  let iN = 0;
  for (const t of thresholds) {
    while (ip < P && pos[ip] >= t) ip++;
    while (iN < N && neg[iN] >= t) iN++;
    const fpr = iN / N;
    if (fpr > maxFpr) break; // thresholds only go down, FPR only grows
    const tpr = ip / P;
    if (tpr > best.tpr) best = { tpr, fpr, threshold: t };
  }
  return best;
}

/** Accuracy of predicted class ids against labels. */
export function accuracy(pred: ArrayLike<number>, y: ArrayLike<number>): number {
  if (pred.length !== y.length) throw new Error(`accuracy: ${pred.length} predictions for ${y.length} labels`);
  if (y.length === 0) return NaN;
  let ok = 0;
  for (let i = 0; i < y.length; i++) if (pred[i] === y[i]) ok++;
  return ok / y.length;
}

/** Median of a list (NaN when empty). */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
