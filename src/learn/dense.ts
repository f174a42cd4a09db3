// Dense networks (softmax regression and ReLU MLPs) as plain Float32Arrays, and the row-major
// kernels the trainer and the gate share. No dependencies: the same forward pass runs in the
// main thread (evaluation, calibration), in training workers, and is what ONNX export writes.
//
// Layout: layer l maps inDim -> outDim with W row-major [inDim][outDim] (the layout
// writeDenseOnnx stores for Gemm without transB) and bias b[outDim]. Hidden layers use ReLU,
// the last layer yields logits; probabilities are softmax(logits).
import { mulberry32 } from '../random.js';
import type { Arena } from './simd.js';

export interface Layer {
  inDim: number;
  outDim: number;
  W: Float32Array;
  b: Float32Array;
}

export interface DenseNet {
  layers: Layer[];
}

export type Arch = 'softmax' | 'mlp';

/** Layer sizes of an architecture: softmax = [d, k]; mlp = [d, ...hidden, k]. */
export function archDims(arch: Arch, inDim: number, numClasses: number, hidden: readonly number[] = [128]): number[] {
  if (arch === 'softmax') return [inDim, numClasses];
  if (hidden.length === 0) throw new Error('mlp: at least one hidden layer size is needed');
  return [inDim, ...hidden, numClasses];
}

/**
 * Seeded initialisation: He-uniform for layers followed by ReLU, Glorot-uniform for the output
 * layer, zero biases. Same seed and dims -> bit-identical weights on every machine.
 */
export function initNet(dims: readonly number[], seed: number): DenseNet {
  const rand = mulberry32(seed);
  const layers: Layer[] = [];
  for (let l = 0; l + 1 < dims.length; l++) {
    const inDim = dims[l];
    const outDim = dims[l + 1];
    const last = l + 2 === dims.length;
    const limit = last ? Math.sqrt(6 / (inDim + outDim)) : Math.sqrt(6 / inDim);
    const W = new Float32Array(inDim * outDim);
    for (let i = 0; i < W.length; i++) W[i] = (rand() * 2 - 1) * limit;
    layers.push({ inDim, outDim, W, b: new Float32Array(outDim) });
  }
  return { layers };
}

export function cloneNet(net: DenseNet): DenseNet {
  return { layers: net.layers.map((l) => ({ inDim: l.inDim, outDim: l.outDim, W: l.W.slice(), b: l.b.slice() })) };
}

export function netDims(net: DenseNet): number[] {
  return [net.layers[0].inDim, ...net.layers.map((l) => l.outDim)];
}

export function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function paramCount(net: DenseNet): number {
  let n = 0;
  for (const l of net.layers) n += l.W.length + l.b.length;
  return n;
}

/** Scratch space for the sparse gathers of the kernels below (grown on demand, per thread). */
let nzIdx = new Int32Array(1024);
let nzVal = new Float32Array(1024);
function scratch(n: number): void {
  if (nzIdx.length < n) {
    nzIdx = new Int32Array(n);
    nzVal = new Float32Array(n);
  }
}

/**
 * C[m][n] = A[m][k] * B[k][n] + bias (all row-major). Rows of A are read from aRows (row
 * indices into A, so mini-batches need no copy) or from aStart on. Each row's non-zeros are
 * gathered first (MNIST pixels and ReLU activations are mostly zero), then applied four rows of
 * B at a time so every element of the C row is loaded and stored once per four products; the
 * inner loop walks rows of B and C contiguously.
 */
export function gemmRows(
  A: Float32Array,
  k: number,
  aRows: Int32Array | null,
  aStart: number,
  m: number,
  B: Float32Array,
  n: number,
  bias: Float32Array,
  C: Float32Array,
  arena: Arena | null = null,
  aIdx: Int32Array | null = null,
  aVal: Float32Array | null = null,
): void {
  if (arena && aIdx && aVal && n % 4 === 0 && arena.owns(B) && arena.owns(C)) {
    // SIMD path: gather the row's non-zeros into the arena, one kernel call per row
    for (let i = 0; i < m; i++) {
      const aBase = (aRows ? aRows[aStart + i] : aStart + i) * k;
      let nnz = 0;
      for (let p = 0; p < k; p++) {
        const a = A[aBase + p];
        if (a !== 0) {
          aIdx[nnz] = p * n;
          aVal[nnz++] = a;
        }
      }
      const c = i * n;
      for (let j = 0; j < n; j++) C[c + j] = bias[j];
      arena.gaxpy(C, c, n, aIdx, 0, aVal, 0, nnz, B, 0);
    }
    return;
  }
  scratch(k);
  const idx = nzIdx;
  const val = nzVal;
  for (let i = 0; i < m; i++) {
    const aBase = (aRows ? aRows[aStart + i] : aStart + i) * k;
    const c = i * n;
    let nnz = 0;
    for (let p = 0; p < k; p++) {
      const a = A[aBase + p];
      if (a !== 0) {
        idx[nnz] = p * n;
        val[nnz++] = a;
      }
    }
    for (let j = 0; j < n; j++) C[c + j] = bias[j];
    let t = 0;
    for (; t + 7 < nnz; t += 8) {
      const b0 = idx[t], b1 = idx[t + 1], b2 = idx[t + 2], b3 = idx[t + 3];
      const b4 = idx[t + 4], b5 = idx[t + 5], b6 = idx[t + 6], b7 = idx[t + 7];
      const a0 = val[t], a1 = val[t + 1], a2 = val[t + 2], a3 = val[t + 3];
      const a4 = val[t + 4], a5 = val[t + 5], a6 = val[t + 6], a7 = val[t + 7];
      for (let j = 0; j < n; j++) {
        C[c + j] += a0 * B[b0 + j] + a1 * B[b1 + j] + a2 * B[b2 + j] + a3 * B[b3 + j] + a4 * B[b4 + j] + a5 * B[b5 + j] + a6 * B[b6 + j] + a7 * B[b7 + j];
      }
    }
    for (; t + 3 < nnz; t += 4) {
      const b0 = idx[t], b1 = idx[t + 1], b2 = idx[t + 2], b3 = idx[t + 3];
      const a0 = val[t], a1 = val[t + 1], a2 = val[t + 2], a3 = val[t + 3];
      for (let j = 0; j < n; j++) C[c + j] += a0 * B[b0 + j] + a1 * B[b1 + j] + a2 * B[b2 + j] + a3 * B[b3 + j];
    }
    for (; t < nnz; t++) {
      const b0 = idx[t];
      const a0 = val[t];
      for (let j = 0; j < n; j++) C[c + j] += a0 * B[b0 + j];
    }
  }
}

/**
 * G[k][n] = A^T D for the m rows of A (selected like gemmRows) and D[m][n]: the weight gradient
 * of a dense layer. The batch is transposed into per-column lists of non-zeros first, so each
 * row of G is written once per four samples and zero inputs cost nothing.
 */
export function gemmTN(
  A: Float32Array,
  k: number,
  aRows: Int32Array | null,
  aStart: number,
  m: number,
  D: Float32Array,
  n: number,
  G: Float32Array,
  arena: Arena | null = null,
  aIdx: Int32Array | null = null,
  aVal: Float32Array | null = null,
): void {
  const simd = !!arena && !!aIdx && !!aVal && n % 4 === 0 && arena.owns(D) && arena.owns(G);
  if (!simd) scratch(m * k + k + 1);
  // counting sort of the batch's non-zeros by column p: colStart[p]..colStart[p+1]
  const colStart = new Int32Array(k + 1);
  for (let i = 0; i < m; i++) {
    const aBase = (aRows ? aRows[aStart + i] : aStart + i) * k;
    for (let p = 0; p < k; p++) if (A[aBase + p] !== 0) colStart[p + 1]++;
  }
  for (let p = 0; p < k; p++) colStart[p + 1] += colStart[p];
  const fill = colStart.slice(0, k);
  const idx = simd ? aIdx! : nzIdx;
  const val = simd ? aVal! : nzVal;
  for (let i = 0; i < m; i++) {
    const aBase = (aRows ? aRows[aStart + i] : aStart + i) * k;
    for (let p = 0; p < k; p++) {
      const a = A[aBase + p];
      if (a !== 0) {
        const at = fill[p]++;
        idx[at] = i * n;
        val[at] = a;
      }
    }
  }
  if (simd) {
    for (let p = 0; p < k; p++) {
      const g = p * n;
      G.fill(0, g, g + n);
      const t = colStart[p];
      const cnt = colStart[p + 1] - t;
      if (cnt) arena!.gaxpy(G, g, n, idx, t, val, t, cnt, D, 0);
    }
    return;
  }
  for (let p = 0; p < k; p++) {
    const g = p * n;
    const end = colStart[p + 1];
    let t = colStart[p];
    if (t === end) {
      for (let j = 0; j < n; j++) G[g + j] = 0;
      continue;
    }
    {
      // first group assigns, so G needs no separate clearing
      const d0 = idx[t];
      const a0 = val[t];
      for (let j = 0; j < n; j++) G[g + j] = a0 * D[d0 + j];
      t++;
    }
    for (; t + 7 < end; t += 8) {
      const d0 = idx[t], d1 = idx[t + 1], d2 = idx[t + 2], d3 = idx[t + 3];
      const d4 = idx[t + 4], d5 = idx[t + 5], d6 = idx[t + 6], d7 = idx[t + 7];
      const a0 = val[t], a1 = val[t + 1], a2 = val[t + 2], a3 = val[t + 3];
      const a4 = val[t + 4], a5 = val[t + 5], a6 = val[t + 6], a7 = val[t + 7];
      for (let j = 0; j < n; j++) {
        G[g + j] += a0 * D[d0 + j] + a1 * D[d1 + j] + a2 * D[d2 + j] + a3 * D[d3 + j] + a4 * D[d4 + j] + a5 * D[d5 + j] + a6 * D[d6 + j] + a7 * D[d7 + j];
      }
    }
    for (; t + 3 < end; t += 4) {
      const d0 = idx[t], d1 = idx[t + 1], d2 = idx[t + 2], d3 = idx[t + 3];
      const a0 = val[t], a1 = val[t + 1], a2 = val[t + 2], a3 = val[t + 3];
      for (let j = 0; j < n; j++) G[g + j] += a0 * D[d0 + j] + a1 * D[d1 + j] + a2 * D[d2 + j] + a3 * D[d3 + j];
    }
    for (; t < end; t++) {
      const d0 = idx[t];
      const a0 = val[t];
      for (let j = 0; j < n; j++) G[g + j] += a0 * D[d0 + j];
    }
  }
}

/** Row-wise softmax in place over m rows of width n; returns nothing. Stable (max-shifted). */
export function softmaxRows(Z: Float32Array, m: number, n: number): void {
  for (let i = 0; i < m; i++) {
    const o = i * n;
    let max = -Infinity;
    for (let j = 0; j < n; j++) if (Z[o + j] > max) max = Z[o + j];
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const e = Math.exp(Z[o + j] - max);
      Z[o + j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = 0; j < n; j++) Z[o + j] *= inv;
  }
}

/**
 * Probabilities for n rows of X (row-major, n x inDim), computed in chunks so memory stays
 * bounded for large evaluation sets. Returns n x numClasses.
 */
export function predictProba(net: DenseNet, X: Float32Array, n: number, chunk = 256): Float32Array {
  return forwardChunks(net, X, n, chunk, null);
}

/**
 * predictProba that also keeps the last hidden layer's activations (n x its width): the
 * "features" output the exported ONNX declares (null for a net without hidden layers).
 */
export function forwardRows(net: DenseNet, X: Float32Array, n: number, chunk = 256): { probs: Float32Array; features: Float32Array | null } {
  const L = net.layers.length;
  const h = L > 1 ? net.layers[L - 2].outDim : 0;
  const features = L > 1 ? new Float32Array(n * h) : null;
  const probs = forwardChunks(net, X, n, chunk, features);
  return { probs, features };
}

function forwardChunks(net: DenseNet, X: Float32Array, n: number, chunk: number, features: Float32Array | null): Float32Array {
  const d = net.layers[0].inDim;
  if (X.length < n * d) throw new Error(`predict: input holds ${X.length} values, expected ${n} x ${d}`);
  const k = net.layers[net.layers.length - 1].outDim;
  const out = new Float32Array(n * k);
  const bufs = net.layers.map((l) => new Float32Array(chunk * l.outDim));
  for (let s = 0; s < n; s += chunk) {
    const m = Math.min(chunk, n - s);
    let inp = X;
    let start = s;
    for (let l = 0; l < net.layers.length; l++) {
      const L = net.layers[l];
      const buf = bufs[l];
      gemmRows(inp, L.inDim, null, start, m, L.W, L.outDim, L.b, buf);
      if (l + 1 < net.layers.length) {
        const len = m * L.outDim;
        for (let i = 0; i < len; i++) if (buf[i] < 0) buf[i] = 0;
        if (features && l + 2 === net.layers.length) features.set(buf.subarray(0, len), s * L.outDim);
      }
      inp = buf;
      start = 0;
    }
    softmaxRows(inp, m, k);
    out.set(inp.subarray(0, m * k), s * k);
  }
  return out;
}

/** Index of the largest value in each row. */
export function argmaxRows(P: Float32Array, n: number, k: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = P[i * k];
    for (let j = 1; j < k; j++) if (P[i * k + j] > bv) (bv = P[i * k + j]), (best = j);
    out[i] = best;
  }
  return out;
}

/** Serialisable form (for worker messages and JSON-free persistence). */
export interface NetData {
  dims: number[];
  W: Float32Array[];
  b: Float32Array[];
}

export function toNetData(net: DenseNet): NetData {
  return { dims: netDims(net), W: net.layers.map((l) => l.W), b: net.layers.map((l) => l.b) };
}

export function fromNetData(d: NetData): DenseNet {
  const layers: Layer[] = [];
  for (let l = 0; l + 1 < d.dims.length; l++) {
    layers.push({ inDim: d.dims[l], outDim: d.dims[l + 1], W: new Float32Array(d.W[l]), b: new Float32Array(d.b[l]) });
  }
  return { layers };
}

/**
 * A dataset's non-zeros by row, precomputed once per training run so the first layer's
 * products skip the per-batch scan of every input value. idx holds p * n (the element offset of
 * row p of the first layer's W, n = its width) and lives in the arena with val; col holds p.
 */
export interface SparseRows {
  rowPtr: Int32Array;
  col: Int32Array;
  idx: Int32Array;
  val: Float32Array;
  n: number;
}

/** Non-zeros of X (n rows of k) for a first layer of width `width`, or null when they would not fit. */
export function sparseRows(X: Float32Array, rows: number, k: number, width: number, arena: Arena, maxNnz = 32_000_000): SparseRows | null {
  let nnz = 0;
  for (let i = 0; i < rows * k; i++) if (X[i] !== 0) nnz++;
  if (nnz > maxNnz) return null;
  const rowPtr = new Int32Array(rows + 1);
  const col = new Int32Array(nnz);
  const idx = arena.i32(nnz);
  const val = arena.f32(nnz);
  let t = 0;
  for (let i = 0; i < rows; i++) {
    rowPtr[i] = t;
    const o = i * k;
    for (let p = 0; p < k; p++) {
      const a = X[o + p];
      if (a !== 0) {
        col[t] = p;
        idx[t] = p * width;
        val[t++] = a;
      }
    }
  }
  rowPtr[rows] = t;
  return { rowPtr, col, idx, val, n: width };
}

/** sparseRows needs this many float32 slots of arena space (idx + val), or 0 when over the cap. */
export function sparseRowsSize(X: Float32Array, rows: number, k: number, maxNnz = 32_000_000): number {
  let nnz = 0;
  for (let i = 0; i < rows * k; i++) if (X[i] !== 0) nnz++;
  return nnz > maxNnz ? 0 : 2 * nnz + 8;
}

/** First layer forward over batch rows (rows[start..start+m)) with precomputed non-zeros. */
export function gemmSparse(S: SparseRows, rows: Int32Array, start: number, m: number, W: Float32Array, bias: Float32Array, C: Float32Array, arena: Arena): void {
  const n = S.n;
  for (let i = 0; i < m; i++) {
    const r = rows[start + i];
    const t = S.rowPtr[r];
    const c = i * n;
    for (let j = 0; j < n; j++) C[c + j] = bias[j];
    arena.gaxpy(C, c, n, S.idx, t, S.val, t, S.rowPtr[r + 1] - t, W, 0);
  }
}

/**
 * First layer weight gradient G[k][n] = X_batch^T D from precomputed non-zeros: only the
 * batch's non-zeros are bucketed by column (no scan of the zeros), then one kernel call per
 * column that occurs in the batch.
 */
export function gemmTNSparse(S: SparseRows, rows: Int32Array, start: number, m: number, k: number, D: Float32Array, G: Float32Array, arena: Arena, sIdx: Int32Array, sVal: Float32Array, colStart: Int32Array): void {
  const n = S.n;
  colStart.fill(0);
  for (let i = 0; i < m; i++) {
    const r = rows[start + i];
    for (let t = S.rowPtr[r]; t < S.rowPtr[r + 1]; t++) colStart[S.col[t] + 1]++;
  }
  for (let p = 0; p < k; p++) colStart[p + 1] += colStart[p];
  // fill[p] = next free slot of column p (reuses the tail of colStart's buffer pattern)
  const fill = colStart.slice(0, k);
  for (let i = 0; i < m; i++) {
    const r = rows[start + i];
    const dOff = i * n;
    for (let t = S.rowPtr[r]; t < S.rowPtr[r + 1]; t++) {
      const at = fill[S.col[t]]++;
      sIdx[at] = dOff;
      sVal[at] = S.val[t];
    }
  }
  G.fill(0);
  for (let p = 0; p < k; p++) {
    const t = colStart[p];
    const cnt = colStart[p + 1] - t;
    if (cnt) arena.gaxpy(G, p * n, n, sIdx, t, sVal, t, cnt, D, 0);
  }
}
