// Fitting the "features" unseen statistics of a task (format/feature-distance.ts scores them):
// class means of the penultimate-layer features of its training samples and their shared
// within-class covariance, kept as its top principal directions plus one residual variance, and
// shrunk towards a multiple of the identity (Ledoit-Wolf style) so a small task or a layer with
// dead units still gives an invertible metric.
import { f32ToBase64 } from '../format/feature-distance.js';
import type { FeatureStats } from '../format/index-manifest.js';
import { mulberry32 } from '../random.js';

/** principal directions kept: 16 of a 128-wide layer hold most of the within-class variance */
export const FEATURE_RANK = 16;
/** rows used for the covariance (a deterministic prefix): bounds the O(n d^2) cost */
const MAX_ROWS = 4000;
const POWER_ITERATIONS = 60;

/**
 * F: n x d features (row-major), cls: class index per row. Classes without a row get no mean.
 * Returns null when there is nothing to fit (no rows).
 */
export function fitFeatureStats(F0: Float32Array, n0: number, d: number, cls0: ArrayLike<number>, output: string, rank = FEATURE_RANK): FeatureStats | null {
  if (n0 === 0 || d === 0) return null;
  // at most MAX_ROWS rows, evenly strided (a prefix would be the oldest sites only)
  const step = Math.ceil(n0 / MAX_ROWS);
  const n = Math.ceil(n0 / step);
  let F = F0;
  let cls: ArrayLike<number> = cls0;
  if (step > 1) {
    F = new Float32Array(n * d);
    const c = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      F.set(F0.subarray(i * step * d, (i * step + 1) * d), i * d);
      c[i] = cls0[i * step];
    }
    cls = c;
  }
  const sums = new Map<number, Float64Array>();
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const c = cls[i];
    let s = sums.get(c);
    if (!s) sums.set(c, (s = new Float64Array(d)));
    for (let j = 0; j < d; j++) s[j] += F[i * d + j];
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  const classes = [...sums.keys()].sort((a, b) => a - b);
  const means = new Float32Array(classes.length * d);
  const meanOf = new Map<number, Float64Array>();
  classes.forEach((c, k) => {
    const m = sums.get(c)!.map((v) => v / counts.get(c)!);
    meanOf.set(c, m);
    for (let j = 0; j < d; j++) means[k * d + j] = m[j];
  });
  // within-class scatter S (d x d), upper triangle then mirrored
  const S = new Float64Array(d * d);
  const v = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const m = meanOf.get(cls[i])!;
    for (let j = 0; j < d; j++) v[j] = F[i * d + j] - m[j];
    for (let a = 0; a < d; a++) {
      const va = v[a];
      if (va === 0) continue;
      const o = a * d;
      for (let b = a; b < d; b++) S[o + b] += va * v[b];
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      S[a * d + b] /= n;
      S[b * d + a] = S[a * d + b];
    }
  }
  let trace = 0;
  for (let a = 0; a < d; a++) trace += S[a * d + a];
  const mu = Math.max(trace / d, 1e-12);
  const r = Math.max(1, Math.min(rank, d - 1, n));
  const { vectors, values } = topEigen(S, d, r);
  const alpha = d / (d + n); // more shrinkage when there are few samples per dimension
  const eigen = values.map((l) => (1 - alpha) * Math.max(l, 0) + alpha * mu);
  const rest = Math.max(0, trace - values.reduce((s, l) => s + Math.max(l, 0), 0));
  const residual = (1 - alpha) * (d > r ? rest / (d - r) : 0) + alpha * mu;
  return {
    output,
    dim: d,
    means: f32ToBase64(means),
    basis: f32ToBase64(Float32Array.from(vectors)),
    eigen: eigen.map((e) => Math.fround(e)),
    residual: Math.fround(residual),
  };
}

/**
 * Top r eigenpairs of a symmetric d x d matrix: orthogonal (block power) iteration from a seeded
 * start, then Rayleigh-Ritz (Jacobi on the r x r projection) so the returned directions
 * diagonalise S within their span. vectors: r x d row-major, values descending.
 */
export function topEigen(S: Float64Array, d: number, r: number): { vectors: Float64Array; values: number[] } {
  const rand = mulberry32(12345);
  let V = new Float64Array(r * d);
  for (let i = 0; i < V.length; i++) V[i] = rand() - 0.5;
  orthonormalise(V, r, d);
  const W = new Float64Array(r * d);
  for (let it = 0; it < POWER_ITERATIONS; it++) {
    mulRows(S, d, V, r, W);
    V.set(W);
    orthonormalise(V, r, d);
  }
  // B = V S V^T (r x r)
  mulRows(S, d, V, r, W);
  const B = new Float64Array(r * r);
  for (let i = 0; i < r; i++) for (let k = 0; k < r; k++) B[i * r + k] = dotRow(V, i, W, k, d);
  const { vectors: Q, values } = jacobiEigen(B, r);
  // rotate: new_i = sum_k Q[k][i] V_k, ordered by eigenvalue
  const order = values.map((_, i) => i).sort((a, b) => values[b] - values[a]);
  const out = new Float64Array(r * d);
  order.forEach((src, i) => {
    for (let k = 0; k < r; k++) {
      const q = Q[k * r + src];
      if (q === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += q * V[k * d + j];
    }
  });
  V = out;
  return { vectors: V, values: order.map((i) => values[i]) };
}

/** W_i = S V_i for each of the r rows of V (S symmetric). */
function mulRows(S: Float64Array, d: number, V: Float64Array, r: number, W: Float64Array): void {
  for (let i = 0; i < r; i++) {
    const o = i * d;
    for (let a = 0; a < d; a++) {
      let s = 0;
      const so = a * d;
      for (let b = 0; b < d; b++) s += S[so + b] * V[o + b];
      W[o + a] = s;
    }
  }
}

function dotRow(A: Float64Array, i: number, B: Float64Array, k: number, d: number): number {
  let s = 0;
  for (let j = 0; j < d; j++) s += A[i * d + j] * B[k * d + j];
  return s;
}

/** Modified Gram-Schmidt on the rows; a row that vanishes becomes a fresh unit vector. */
function orthonormalise(V: Float64Array, r: number, d: number): void {
  for (let i = 0; i < r; i++) {
    for (let k = 0; k < i; k++) {
      const p = dotRow(V, i, V, k, d);
      for (let j = 0; j < d; j++) V[i * d + j] -= p * V[k * d + j];
    }
    let nrm = Math.sqrt(dotRow(V, i, V, i, d));
    if (nrm < 1e-12) {
      // rank-deficient S: any direction orthogonal to the previous ones will do
      for (let j = 0; j < d; j++) V[i * d + j] = j === i % d ? 1 : 0;
      for (let k = 0; k < i; k++) {
        const p = dotRow(V, i, V, k, d);
        for (let j = 0; j < d; j++) V[i * d + j] -= p * V[k * d + j];
      }
      nrm = Math.sqrt(dotRow(V, i, V, i, d)) || 1;
    }
    for (let j = 0; j < d; j++) V[i * d + j] /= nrm;
  }
}

/** Cyclic Jacobi eigen-decomposition of a small symmetric matrix: columns of vectors are eigenvectors. */
export function jacobiEigen(A0: Float64Array, n: number): { vectors: Float64Array; values: number[] } {
  const A = Float64Array.from(A0);
  const Q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) Q[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p * n + q] ** 2;
    if (off < 1e-24) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p];
          const akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k];
          const aqk = A[q * n + k];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const qkp = Q[k * n + p];
          const qkq = Q[k * n + q];
          Q[k * n + p] = c * qkp - s * qkq;
          Q[k * n + q] = s * qkp + c * qkq;
        }
      }
    }
  }
  return { vectors: Q, values: Array.from({ length: n }, (_, i) => A[i * n + i]) };
}
