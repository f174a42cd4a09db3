// The "features" unseen score: a low-rank Mahalanobis distance in a model's penultimate-layer
// space (Lee et al. 2018, class means with one shared covariance), from a task's FeatureStats.
// Pure and shared: the KB scores held-out samples with it to calibrate the threshold, the edge
// scores every sample with it, so both compute exactly the same number.
import type { FeatureStats } from './index-manifest.js';

/** float32 array <-> base64 (little-endian), the encoding of FeatureStats' matrices. */
export function f32ToBase64(a: Float32Array): string {
  const le = new Float32Array(a); // a copy with its own aligned buffer
  return Buffer.from(le.buffer, le.byteOffset, le.byteLength).toString('base64');
}

export function base64ToF32(s: string, what: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  if (b.length % 4 !== 0) throw new Error(`${what}: ${b.length} bytes is not a whole number of float32 values`);
  const out = new Float32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
  return out;
}

/** FeatureStats decoded once (per index) for scoring many samples. */
export class FeatureDistance {
  readonly dim: number;
  readonly classes: number;
  private readonly means: Float32Array;
  private readonly basis: Float32Array;
  private readonly invEigen: Float64Array;
  private readonly invResidual: number;
  /** basis . mean_c, per class: the projection of f - mu_c costs one projection of f */
  private readonly meanProj: Float64Array;
  private readonly proj: Float64Array;

  constructor(stats: FeatureStats) {
    const d = (this.dim = stats.dim);
    this.means = base64ToF32(stats.means, 'features.means');
    this.basis = base64ToF32(stats.basis, 'features.basis');
    const r = stats.eigen.length;
    if (this.means.length === 0 || this.means.length % d !== 0) throw new Error(`features.means holds ${this.means.length} values, not a multiple of dim ${d}`);
    if (this.basis.length !== r * d) throw new Error(`features.basis holds ${this.basis.length} values, expected ${r} x ${d}`);
    this.classes = this.means.length / d;
    this.invEigen = Float64Array.from(stats.eigen, (e) => 1 / e);
    this.invResidual = 1 / stats.residual;
    this.meanProj = new Float64Array(this.classes * r);
    for (let c = 0; c < this.classes; c++) for (let i = 0; i < r; i++) this.meanProj[c * r + i] = dot(this.basis, i * d, this.means, c * d, d);
    this.proj = new Float64Array(r);
  }

  /** Distance of one feature vector (sqrt of the smallest squared Mahalanobis distance to a class mean). */
  score(f: ArrayLike<number>): number {
    const d = this.dim;
    if (f.length !== d) throw new Error(`features output has ${f.length} values, the task's statistics ${d}`);
    const r = this.invEigen.length;
    for (let i = 0; i < r; i++) this.proj[i] = dot(this.basis, i * d, f, 0, d);
    let best = Infinity;
    for (let c = 0; c < this.classes; c++) {
      let sq = 0;
      const o = c * d;
      for (let j = 0; j < d; j++) {
        const v = f[j] - this.means[o + j];
        sq += v * v;
      }
      let inside = 0;
      let m = 0;
      for (let i = 0; i < r; i++) {
        const p = this.proj[i] - this.meanProj[c * r + i];
        inside += p * p;
        m += p * p * this.invEigen[i];
      }
      m += Math.max(0, sq - inside) * this.invResidual;
      if (m < best) best = m;
    }
    return Math.sqrt(best);
  }
}

function dot(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, n: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s += a[ao + j] * b[bo + j];
  return s;
}
