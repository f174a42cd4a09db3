// Continual-learning metric formulas on hand-computed matrices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acc, accSeenPerRound, accuracy, auroc, bwt, forgetting, fwt, median, samplesTransferRatio, summarise, tprAtFpr } from '../bench/lib/metrics.js';

const close = (a: number, b: number, eps = 1e-12) => assert.ok(Math.abs(a - b) <= eps, `${a} != ${b}`);

// 3 tasks. Row i = after round i.
const R = [
  [0.9, 0.3, 0.2],
  [0.7, 0.8, 0.4],
  [0.6, 0.75, 0.95],
];
const b = [0.1, 0.1, 0.1];

test('ACC is the mean of the last row', () => {
  close(acc(R), (0.6 + 0.75 + 0.95) / 3);
});

test('BWT: mean over j < T-1 of R[T-1][j] - R[j][j]', () => {
  // (0.6 - 0.9) + (0.75 - 0.8) = -0.35, / 2
  close(bwt(R), -0.175);
});

test('FWT: mean over j > 0 of R[j-1][j] - b[j]', () => {
  // (0.3 - 0.1) + (0.4 - 0.1) = 0.5, / 2
  close(fwt(R, b), 0.25);
});

test('forgetting (Chaudhry 2018): max over earlier rounds minus final, j < T-1', () => {
  // task 0: max(0.9, 0.7) - 0.6 = 0.3; task 1: max(0.3, 0.8) - 0.75 = 0.05
  close(forgetting(R), 0.175);
  // no forgetting when accuracy never drops
  const Rk = [
    [0.5, 0.1],
    [0.6, 0.9],
  ];
  close(forgetting(Rk), -0.1);
  close(bwt(Rk), 0.1);
});

test('a perfect retainer has BWT 0 and forgetting 0', () => {
  const P = [
    [0.9, 0.1, 0.1],
    [0.9, 0.8, 0.1],
    [0.9, 0.8, 0.7],
  ];
  const s = summarise(P, [0.1, 0.1, 0.1]);
  close(s.bwt, 0);
  close(s.forgetting, 0);
  close(s.fwt, 0);
  close(s.acc, 0.8);
});

test('accSeenPerRound averages the seen prefix of each row', () => {
  const r = accSeenPerRound(R);
  close(r[0], 0.9);
  close(r[1], 0.75);
  close(r[2], (0.6 + 0.75 + 0.95) / 3);
});

test('T = 1 gives NaN for BWT/FWT/forgetting, and a non-square matrix is refused', () => {
  assert.ok(Number.isNaN(bwt([[0.5]])));
  assert.ok(Number.isNaN(fwt([[0.5]], [0.1])));
  assert.ok(Number.isNaN(forgetting([[0.5]])));
  assert.throws(() => acc([[1, 2]]), /2x2|1x1/);
  assert.throws(() => fwt(R, [0.1]), /b has 1/);
});

test('samples_transfer_ratio', () => {
  close(samplesTransferRatio(35, 100), 0.35);
  close(samplesTransferRatio(0, 0), 0);
  assert.throws(() => samplesTransferRatio(-1, 3));
});

test('AUROC: perfect, inverted, random ties and a hand-counted case', () => {
  close(auroc([3, 4], [1, 2]), 1);
  close(auroc([1, 2], [3, 4]), 0);
  close(auroc([1, 1], [1, 1]), 0.5);
  // pairs (p, n): (2,1) win, (2,3) lose, (4,1) win, (4,3) win -> 3/4
  close(auroc([2, 4], [1, 3]), 0.75);
  // tie counts one half: (2,2) half, (2,1) win -> 1.5/2
  close(auroc([2], [2, 1]), 0.75);
  assert.throws(() => auroc([], [1]));
  assert.throws(() => auroc([NaN], [1]));
});

test('TPR at 5% FPR picks the best threshold within the FPR budget', () => {
  // 20 negatives 0..19, one false positive allowed (1/20 = 5%).
  const neg = Array.from({ length: 20 }, (_, i) => i);
  // positives: 3 above every negative, 1 between 18 and 19, 1 below
  const pos = [30, 25, 21, 18.5, 5];
  const r = tprAtFpr(pos, neg, 0.05);
  // threshold 19 flags 3 positives and 1 negative (FPR 0.05) -> TPR 3/5;
  // threshold 18.5 would add a positive but also negative 19 is already counted: FPR 1/20, TPR 4/5
  close(r.tpr, 4 / 5);
  close(r.fpr, 1 / 20);
  close(r.threshold, 18.5);
  // with a 0% budget only positives above the top negative count
  close(tprAtFpr(pos, neg, 0).tpr, 3 / 5);
  // perfect separation
  close(tprAtFpr([5, 6], [1, 2], 0.05).tpr, 1);
  // nothing can be flagged without exceeding the budget
  const none = tprAtFpr([1], [2], 0.05);
  close(none.tpr, 0);
  assert.equal(none.threshold, Infinity);
});

test('accuracy and median helpers', () => {
  close(accuracy([1, 2, 3, 4], [1, 2, 0, 4]), 0.75);
  assert.throws(() => accuracy([1], [1, 2]));
  close(median([3, 1, 2]), 2);
  close(median([4, 1, 2, 3]), 2.5);
});
