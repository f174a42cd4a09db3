// Deterministic synthetic lifelong-learning data for the LEARN tests: Gaussian class blobs in d
// dims, one domain per site = the same blobs rotated (Givens rotations in planes (0,1), (2,3), ...)
// by the site's angle and shifted by the site's offset. Sites with close angles are related
// (transfer helps); far angles make a model of one site wrong on another. A label shift makes
// sites conflict outright (same inputs, other labels): no single global model can serve them.
import { mulberry32 } from '../../src/random.js';

export interface SiteSpec {
  angle: number; // radians
  offset?: number; // added to every coordinate
  /** concept shift: class c of the shared blobs is labelled (c + labelShift) mod k at this site */
  labelShift?: number;
  n: number;
  seed: number;
}

export interface Blobs {
  X: Float32Array;
  y: Int32Array;
  n: number;
  d: number;
}

export function classMeans(d: number, k: number, seed = 7, radius = 3): Float64Array[] {
  const r = mulberry32(seed);
  return Array.from({ length: k }, () => {
    const m = Float64Array.from({ length: d }, () => r() * 2 - 1);
    const norm = Math.hypot(...m);
    return m.map((v) => (v / norm) * radius);
  });
}

function gauss(r: () => number): number {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

export function siteBlobs(s: SiteSpec, d = 8, k = 4, noise = 0.9, meansSeed = 7): Blobs {
  const means = classMeans(d, k, meansSeed);
  const r = mulberry32(s.seed);
  const X = new Float32Array(s.n * d);
  const y = new Int32Array(s.n);
  const c = Math.cos(s.angle);
  const sn = Math.sin(s.angle);
  for (let i = 0; i < s.n; i++) {
    const cls = i % k;
    y[i] = (cls + (s.labelShift ?? 0)) % k;
    const v = Array.from({ length: d }, (_, j) => means[cls][j] + noise * gauss(r));
    for (let p = 0; p + 1 < d; p += 2) {
      const a = v[p];
      const b = v[p + 1];
      v[p] = c * a - sn * b;
      v[p + 1] = sn * a + c * b;
    }
    for (let j = 0; j < d; j++) X[i * d + j] = v[j] + (s.offset ?? 0);
  }
  return { X, y, n: s.n, d };
}

/** JSONL lines for `kb samples import`: {"id","x","label","attrs"} per sample. */
export function blobsJsonl(b: Blobs, idPrefix: string, attrs: Record<string, string> | null, labels = ['a', 'b', 'c', 'd']): string {
  const lines: string[] = [];
  for (let i = 0; i < b.n; i++) {
    const x = Array.from(b.X.subarray(i * b.d, (i + 1) * b.d), (v) => Math.round(v * 1e5) / 1e5);
    lines.push(JSON.stringify({ id: `${idPrefix}-${i}`, x, label: labels[b.y[i]], ...(attrs ? { attrs } : {}) }));
  }
  return lines.join('\n') + '\n';
}
