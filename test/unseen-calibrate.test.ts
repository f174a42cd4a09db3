// The pure scoring and calibration code of unseen detection, in-process: the combined-flag
// calibration (learn/calibrate.ts), the feature statistics fit (learn/feature-stats.ts) and the
// Mahalanobis score the edge computes from them (format/feature-distance.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calibrate, calibrateCombined } from '../src/learn/calibrate.js';
import { fitFeatureStats, jacobiEigen, topEigen } from '../src/learn/feature-stats.js';
import { FeatureDistance, base64ToF32, f32ToBase64 } from '../src/format/feature-distance.js';
import { mulberry32 } from '../src/random.js';

function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
}

test('calibrateCombined: the COMBINED flag hits the target rate; any cuts each method deeper, all shallower', () => {
  const r = mulberry32(3);
  const n = 4000;
  const three = { confidence: Float64Array.from({ length: n }, () => gauss(r)), entropy: Float64Array.from({ length: n }, () => gauss(r)), distance: Float64Array.from({ length: n }, () => gauss(r)) };
  const rate = (s: typeof three, cuts: Record<string, number>, all: boolean) => {
    let k = 0;
    for (let i = 0; i < n; i++) {
      const f = (Object.keys(s) as (keyof typeof s)[]).map((m) => s[m][i] > cuts[m]);
      if (all ? f.every(Boolean) : f.some(Boolean)) k++;
    }
    return k / n;
  };
  const one = calibrateCombined({ confidence: three.confidence }, 'any', 0.05);
  assert.ok(Math.abs(one.level - 0.05) < 0.002 && Math.abs(one.fpr - 0.05) < 0.002, JSON.stringify(one));
  const any = calibrateCombined(three, 'any', 0.05);
  assert.ok(any.fpr <= 0.05 && any.fpr > 0.045, `any: ${any.fpr}`);
  assert.equal(rate(three, any.cuts, false), any.fpr);
  // three independent methods: each at ~1.7 % so that their union is 5 %
  assert.ok(any.level > 0.014 && any.level < 0.02, `any level ${any.level}`);
  const all = calibrateCombined(three, 'all', 0.05);
  assert.ok(all.fpr <= 0.05 && all.fpr > 0.045 && all.level > 0.3, JSON.stringify({ fpr: all.fpr, level: all.level }));
  assert.equal(rate(three, all.cuts, true), all.fpr);
  // identical scores everywhere: nothing can be cut without flagging everyone -> nothing flagged
  const flat = calibrateCombined({ entropy: new Float64Array(100).fill(0.3) }, 'any', 0.05);
  assert.equal(flat.fpr, 0);
});

test('calibrate: methods of the index share one level; confidence threshold is a max-probability floor', () => {
  const r = mulberry32(9);
  const n = 500;
  const d = 4;
  const k = 3;
  const X = Float32Array.from({ length: n * d }, () => gauss(r));
  const P = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    const a = r() * 0.6 + 0.4;
    P[i * k] = a;
    P[i * k + 1] = (1 - a) * 0.7;
    P[i * k + 2] = (1 - a) * 0.3;
  }
  const alone = calibrate(X, n, X, n, P, k, d, 0.1);
  const both = calibrate(X, n, X, n, P, k, d, 0.1, { unseen: { methods: ['attr', 'confidence', 'distance'], combine: 'any' } });
  assert.ok(alone.confidence > both.confidence, 'any over two methods: a lower confidence floor');
  assert.ok(both.distance > alone.distance, 'and a larger distance threshold');
  assert.equal(both.radius, alone.radius, 'the radius (allocation extent) stays at the rate itself');
  assert.ok(both.heldoutFpr! <= 0.1 && both.heldoutFpr! > 0.08, String(both.heldoutFpr));
  let flagged = 0;
  for (let i = 0; i < n; i++) {
    let dist = 0;
    for (let j = 0; j < d; j++) dist += (X[i * d + j] - both.centroid[j]) ** 2;
    if (P[i * k] < both.confidence || Math.sqrt(dist) > both.distance) flagged++;
  }
  assert.ok(Math.abs(flagged / n - both.heldoutFpr!) < 0.01, `edge rule on the same samples: ${flagged / n}`);
});

test('topEigen finds the top eigenpairs of a symmetric matrix (checked against Jacobi on the whole matrix)', () => {
  const r = mulberry32(5);
  const d = 12;
  const A = new Float64Array(d * d);
  const B = Float64Array.from({ length: d * d }, () => gauss(r));
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let m = 0; m < d; m++) A[i * d + j] += B[i * d + m] * B[j * d + m];
  const full = jacobiEigen(A, d).values.sort((a, b) => b - a);
  const top = topEigen(A, d, 4);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(top.values[i] - full[i]) < 1e-6 * full[0], `${top.values[i]} vs ${full[i]}`);
  // A v = lambda v for the returned vectors
  for (let i = 0; i < 4; i++) {
    for (let a = 0; a < d; a++) {
      let s = 0;
      for (let b = 0; b < d; b++) s += A[a * d + b] * top.vectors[i * d + b];
      assert.ok(Math.abs(s - top.values[i] * top.vectors[i * d + a]) < 1e-6 * full[0]);
    }
  }
});

test('feature statistics: zero at a class mean, Mahalanobis (not euclidean) away from it, compact and round-trips', () => {
  const r = mulberry32(11);
  const n = 3000;
  const d = 6;
  // class c centred at 4c on axis 0; axis 1 has variance 100, the others 1
  const F = new Float32Array(n * d);
  const cls = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    cls[i] = i % 2;
    for (let j = 0; j < d; j++) F[i * d + j] = gauss(r) * (j === 1 ? 10 : 1) + (j === 0 ? 4 * cls[i] : 0);
  }
  const st = fitFeatureStats(F, n, d, cls, 'features', 3)!;
  assert.equal(st.eigen.length, 3);
  assert.ok(st.eigen[0] > 80 && st.eigen[0] < 120, `largest variance ~100: ${st.eigen[0]}`);
  const fd = new FeatureDistance(st);
  assert.ok(fd.score([0, 0, 0, 0, 0, 0]) < 0.1); // the fitted mean is off by sampling noise
  assert.ok(fd.score([4, 0, 0, 0, 0, 0]) < 0.1);
  // 10 along the high-variance axis is ~1 sigma; 3 along a unit axis is ~3 sigma
  const along = fd.score([0, 10, 0, 0, 0, 0]);
  const across = fd.score([0, 0, 3, 0, 0, 0]);
  assert.ok(along < across, `${along} < ${across}`);
  assert.ok(Math.abs(along - 1) < 0.15 && Math.abs(across - 3) < 0.3, `${along} ${across}`);
  assert.deepEqual(Array.from(base64ToF32(f32ToBase64(Float32Array.from([1.5, -2, 3e-8])), 'x')), [1.5, -2, Math.fround(3e-8)]);
  assert.throws(() => fd.score([1, 2]), /features output has 2 values, the task's statistics 6/);
});
