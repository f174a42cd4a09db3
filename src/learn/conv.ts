// Kernels of the convolutional trainer (cnn.ts): two matrix products that every layer's forward
// and backward pass is written in, plus im2col / col2im for 3x3 "same" convolutions and 2x2 max
// pooling. Activations of a mini-batch are laid out channel-major over the whole batch,
// [C][B][H][W], so a convolution is one product W[cout x K] * colT[K x B*H*W] with long rows
// (K = cin * 9) that the SIMD kernel of simd.ts runs at full width, and its weight gradient is
// cout * K dot products of length B*H*W. Buffers inside the Arena take the WebAssembly SIMD
// path; anything else (or a row length that is not a multiple of 4) runs the plain loops below,
// so the trainer also works where WebAssembly SIMD does not.
import type { Arena } from './simd.js';

/** Columns per kernel call: one output chunk (4 KB) stays in L1 while K source rows stream by. */
const CHUNK = 1024;

/** Cached idx tables [0, n, 2n, ...] in the arena, one per (n, k). */
export class StrideTables {
  private tables = new Map<string, Int32Array>();
  constructor(private readonly arena: Arena | null) {}
  /** floats an arena needs for the tables of these (n, k) pairs */
  static size(pairs: [number, number][]): number {
    return pairs.reduce((s, [, k]) => s + k + 8, 0);
  }
  get(n: number, k: number): Int32Array | null {
    if (!this.arena) return null;
    const key = `${n}:${k}`;
    let t = this.tables.get(key);
    if (!t) {
      t = this.arena.i32(k);
      for (let p = 0; p < k; p++) t[p] = p * n;
      this.tables.set(key, t);
    }
    return t;
  }
}

/**
 * C[m x n] (=|+=) A[m x k] * B[k x n], all row-major, with optional per-row bias (C starts at
 * bias[i] when given, at 0 when not accumulating).
 */
export function gemm(A: Float32Array, B: Float32Array, C: Float32Array, m: number, k: number, n: number, opts: { accumulate?: boolean; rowBias?: Float32Array; colBias?: Float32Array; arena?: Arena | null; tables?: StrideTables } = {}): void {
  const { arena, tables } = opts;
  for (let i = 0; i < m; i++) {
    const c0 = i * n;
    if (!opts.accumulate) {
      if (opts.rowBias) C.fill(opts.rowBias[i], c0, c0 + n);
      else if (opts.colBias) C.set(opts.colBias.subarray(0, n), c0);
      else C.fill(0, c0, c0 + n);
    }
  }
  const idx = arena && tables && n % 4 === 0 && arena.owns(A) && arena.owns(B) && arena.owns(C) ? tables.get(n, k) : null;
  if (idx && arena) {
    for (let i = 0; i < m; i++) {
      for (let j0 = 0; j0 < n; j0 += CHUNK) {
        const len = Math.min(CHUNK, n - j0);
        arena.gaxpy(C, i * n + j0, len, idx, 0, A, i * k, k, B, j0);
      }
    }
    return;
  }
  for (let i = 0; i < m; i++) {
    const c0 = i * n;
    for (let p = 0; p < k; p++) {
      const a = A[i * k + p];
      if (a === 0) continue;
      const b0 = p * n;
      for (let j = 0; j < n; j++) C[c0 + j] += a * B[b0 + j];
    }
  }
}

/** C[m x n] (=|+=) A[m x k] * B[n x k]^T: m * n dot products of rows of length k. */
export function gemmABt(A: Float32Array, B: Float32Array, C: Float32Array, m: number, k: number, n: number, opts: { accumulate?: boolean; arena?: Arena | null } = {}): void {
  const { arena } = opts;
  const simd = !!arena && k % 4 === 0 && arena.owns(A) && arena.owns(B);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s: number;
      if (simd) s = arena!.dot(A, i * k, B, j * k, k);
      else {
        s = 0;
        const a0 = i * k;
        const b0 = j * k;
        for (let p = 0; p < k; p++) s += A[a0 + p] * B[b0 + p];
      }
      if (opts.accumulate) C[i * n + j] += s;
      else C[i * n + j] = s;
    }
  }
}

/** out[n x m] = in[m x n]^T */
export function transpose(src: Float32Array, m: number, n: number, out: Float32Array): void {
  for (let i = 0; i < m; i++) {
    const r = i * n;
    for (let j = 0; j < n; j++) out[j * m + i] = src[r + j];
  }
}

/**
 * colT[K x P] for a 3x3 convolution with zero padding 1 over x [C][B][H][W] (rows of stride P >=
 * B*H*W): row k = (c, dy, dx) holds x shifted by (dy - 1, dx - 1), zeros where it falls off the
 * image and in the padding columns.
 */
export function im2col(x: Float32Array, C: number, B: number, H: number, W: number, P: number, colT: Float32Array): void {
  const plane = H * W;
  for (let c = 0; c < C; c++) {
    for (let dy = 0; dy < 3; dy++) {
      for (let dx = 0; dx < 3; dx++) {
        const row = (c * 9 + dy * 3 + dx) * P;
        colT.fill(0, row + B * plane, row + P);
        const sx = dx - 1;
        const x0 = Math.max(0, -sx);
        const x1 = Math.min(W, W - sx);
        for (let b = 0; b < B; b++) {
          const src = c * P + b * plane;
          const dst = row + b * plane;
          for (let y = 0; y < H; y++) {
            const yy = y + dy - 1;
            const o = dst + y * W;
            if (yy < 0 || yy >= H) {
              colT.fill(0, o, o + W);
              continue;
            }
            const s = src + yy * W + sx;
            if (x0 > 0) colT[o] = 0;
            if (x1 < W) colT[o + W - 1] = 0;
            for (let xx = x0; xx < x1; xx++) colT[o + xx] = x[s + xx];
          }
        }
      }
    }
  }
}

/** dx[C][B][H][W] (row stride P) = dColT's rows shifted back and summed (the adjoint of im2col). */
export function col2im(dColT: Float32Array, C: number, B: number, H: number, W: number, P: number, dx: Float32Array): void {
  const plane = H * W;
  dx.fill(0, 0, C * P);
  for (let c = 0; c < C; c++) {
    for (let dy = 0; dy < 3; dy++) {
      for (let ddx = 0; ddx < 3; ddx++) {
        const row = (c * 9 + dy * 3 + ddx) * P;
        const sx = ddx - 1;
        const x0 = Math.max(0, -sx);
        const x1 = Math.min(W, W - sx);
        for (let b = 0; b < B; b++) {
          const dst = c * P + b * plane;
          const src = row + b * plane;
          for (let y = 0; y < H; y++) {
            const yy = y + dy - 1;
            if (yy < 0 || yy >= H) continue;
            const o = src + y * W;
            const d = dst + yy * W + sx;
            for (let xx = x0; xx < x1; xx++) dx[d + xx] += dColT[o + xx];
          }
        }
      }
    }
  }
}

/**
 * 2x2 max pooling, stride 2, floor (ONNX MaxPool's default ceil_mode 0) of x [C][B][H][W] (row
 * stride P) into out [C][B][H/2][W/2] (row stride Po). arg records the winning index into x for
 * the backward pass; ties go to the first in row-major order, as onnxruntime does.
 */
export function maxPool(x: Float32Array, C: number, B: number, H: number, W: number, P: number, Po: number, out: Float32Array, arg: Int32Array): void {
  const Ho = H >> 1;
  const Wo = W >> 1;
  for (let c = 0; c < C; c++) {
    for (let b = 0; b < B; b++) {
      const src = c * P + b * H * W;
      const dst = c * Po + b * Ho * Wo;
      for (let y = 0; y < Ho; y++) {
        for (let xx = 0; xx < Wo; xx++) {
          const a = src + 2 * y * W + 2 * xx;
          let at = a;
          let best = x[a];
          if (x[a + 1] > best) (best = x[a + 1]), (at = a + 1);
          if (x[a + W] > best) (best = x[a + W]), (at = a + W);
          if (x[a + W + 1] > best) (best = x[a + W + 1]), (at = a + W + 1);
          out[dst + y * Wo + xx] = best;
          arg[dst + y * Wo + xx] = at;
        }
      }
    }
  }
}

/** dx (cleared over dxLen first) = the pooled gradient dOut [C][B][hw] (row stride Po) routed back to the winners. */
export function maxPoolBack(dOut: Float32Array, arg: Int32Array, C: number, B: number, hw: number, Po: number, dx: Float32Array, dxLen: number): void {
  dx.fill(0, 0, dxLen);
  for (let c = 0; c < C; c++) {
    const e = c * Po + B * hw;
    for (let i = c * Po; i < e; i++) dx[arg[i]] += dOut[i];
  }
}
