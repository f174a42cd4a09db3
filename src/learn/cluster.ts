// Task definition for samples without attributes: k-means++ (seeded) in model input space, with
// k chosen from the data by the mean silhouette over k = 2..kMax. k = 1 ("one group") wins
// unless the best silhouette reaches minSilhouette (0.5 = "reasonable structure" on Kaufman &
// Rousseeuw's scale), because silhouette is undefined for a single cluster.
import { mulberry32 } from '../random.js';

export interface KMeansResult {
  k: number;
  centroids: Float64Array[];
  assign: Int32Array;
  inertia: number;
}

function sqDist(X: Float32Array, i: number, d: number, c: Float64Array): number {
  let s = 0;
  const o = i * d;
  for (let j = 0; j < d; j++) {
    const v = X[o + j] - c[j];
    s += v * v;
  }
  return s;
}

/** k-means++ initialisation and Lloyd iterations; deterministic for a seed. */
export function kmeans(X: Float32Array, n: number, d: number, k: number, seed: number, maxIter = 100): KMeansResult {
  if (k < 1 || k > n) throw new Error(`kmeans: k=${k} with ${n} points`);
  const rand = mulberry32(seed);
  const centroids: Float64Array[] = [];
  const row = (i: number) => Float64Array.from(X.subarray(i * d, (i + 1) * d));
  centroids.push(row(Math.floor(rand() * n)));
  const best = new Float64Array(n).fill(Infinity);
  while (centroids.length < k) {
    const c = centroids[centroids.length - 1];
    let total = 0;
    for (let i = 0; i < n; i++) {
      const v = sqDist(X, i, d, c);
      if (v < best[i]) best[i] = v;
      total += best[i];
    }
    let r = rand() * total;
    let pick = n - 1;
    for (let i = 0; i < n; i++) {
      r -= best[i];
      if (r <= 0) {
        pick = i;
        break;
      }
    }
    centroids.push(row(pick));
  }
  const assign = new Int32Array(n).fill(-1);
  let inertia = 0;
  for (let it = 0; it < maxIter; it++) {
    let changed = 0;
    inertia = 0;
    for (let i = 0; i < n; i++) {
      let bc = 0;
      let bd = Infinity;
      for (let c = 0; c < k; c++) {
        const v = sqDist(X, i, d, centroids[c]);
        if (v < bd) (bd = v), (bc = c);
      }
      inertia += bd;
      if (assign[i] !== bc) (assign[i] = bc), changed++;
    }
    if (changed === 0) break;
    const counts = new Int32Array(k);
    for (const c of centroids) c.fill(0);
    for (let i = 0; i < n; i++) {
      const c = centroids[assign[i]];
      counts[assign[i]]++;
      const o = i * d;
      for (let j = 0; j < d; j++) c[j] += X[o + j];
    }
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) {
        centroids[c] = row(Math.floor(rand() * n)); // re-seed an empty cluster
        continue;
      }
      for (let j = 0; j < d; j++) centroids[c][j] /= counts[c];
    }
  }
  return { k, centroids, assign, inertia };
}

/** Mean silhouette of a clustering over (at most `sample`) points, seeded subsample. */
export function silhouette(X: Float32Array, n: number, d: number, assign: Int32Array, k: number, seed: number, sample = 600): number {
  let idx = Array.from({ length: n }, (_, i) => i);
  if (n > sample) {
    const rand = mulberry32(seed);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    idx = idx.slice(0, sample);
  }
  const m = idx.length;
  let total = 0;
  const sums = new Float64Array(k);
  const counts = new Int32Array(k);
  for (let a = 0; a < m; a++) {
    sums.fill(0);
    counts.fill(0);
    const i = idx[a];
    for (let b = 0; b < m; b++) {
      if (a === b) continue;
      const j = idx[b];
      let s = 0;
      const oi = i * d;
      const oj = j * d;
      for (let t = 0; t < d; t++) {
        const v = X[oi + t] - X[oj + t];
        s += v * v;
      }
      sums[assign[j]] += Math.sqrt(s);
      counts[assign[j]]++;
    }
    const own = assign[i];
    if (counts[own] === 0) continue; // singleton: silhouette 0
    const ai = sums[own] / counts[own];
    let bi = Infinity;
    for (let c = 0; c < k; c++) if (c !== own && counts[c] > 0) bi = Math.min(bi, sums[c] / counts[c]);
    if (!Number.isFinite(bi)) continue;
    total += (bi - ai) / Math.max(ai, bi);
  }
  return m ? total / m : 0;
}

export interface ClusterChoice {
  k: number;
  result: KMeansResult;
  /** silhouette per k tried (k >= 2) */
  silhouettes: Record<number, number>;
  /** why this k: the rule in words, with the numbers that decided */
  why: string;
}

/** Cluster with k chosen from the data (see the header). */
export function clusterAuto(X: Float32Array, n: number, d: number, opts: { kMax: number; seed: number; minSilhouette?: number }): ClusterChoice {
  const minSil = opts.minSilhouette ?? 0.5;
  const kMax = Math.min(opts.kMax, n);
  const silhouettes: Record<number, number> = {};
  let best: KMeansResult = kmeans(X, n, d, 1, opts.seed);
  let bestSil = -Infinity;
  for (let k = 2; k <= kMax; k++) {
    const r = kmeans(X, n, d, k, opts.seed + k);
    const s = silhouette(X, n, d, r.assign, k, opts.seed);
    silhouettes[k] = Math.round(s * 1e4) / 1e4;
    if (s > bestSil + 1e-9) {
      bestSil = s;
      if (s >= minSil) best = r;
    }
  }
  const top = Object.entries(silhouettes).sort((a, b) => b[1] - a[1] || Number(a[0]) - Number(b[0]))[0];
  const why =
    kMax < 2
      ? `k=1: too few samples to try 2 groups (kMax ${kMax})`
      : best.k > 1
        ? `k=${best.k}: the best silhouette (${silhouettes[best.k]}) of k=2..${kMax}, >= ${minSil}`
        : `k=1: the best silhouette (k=${top[0]}: ${top[1]}) is under ${minSil}, so no k separates the samples clearly; they stay one group`;
  return { k: best.k, result: best, silhouettes, why };
}
