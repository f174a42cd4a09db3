// A straightforward reference implementation of the built-in CNN (same network, same math,
// same initial weights and Adam), for bench/cnn.ts to measure src/learn/cnn.ts against: the
// textbook layout (rows = pixels of the batch, columns = channels), im2col into a
// [batch*H*W x cin*9] matrix, and the dense trainer's own kernels (gemmRows / gemmTN of
// src/learn/dense.ts, on the SIMD arena where they can run there) for every product; the rest
// (dcol = dz W^T, col2im, pooling) as plain loops.
import { initCnn, type CnnNet } from '../../src/learn/cnn.js';
import { gemmRows, gemmTN } from '../../src/learn/dense.js';
import { Arena } from '../../src/learn/simd.js';
import { adam, softmaxXent } from '../../src/learn/trainer.js';

interface RefLayer {
  cin: number;
  cout: number;
  H: number;
  W: number;
  Wt: Float32Array; // [K][cout]
  b: Float32Array;
}

/** One epoch of mini-batch Adam over X (n x 784-style CHW rows) in `order`; returns the mean training loss. */
export function referenceEpoch(X: Float32Array, y: Int32Array, n: number, order: Int32Array, start: CnnNet, B: number, lr: number, l2: number): number {
  const [C0, H0, W0] = start.shape;
  const k = start.head.layers[start.head.layers.length - 1].outDim;
  // sizes, then one arena for everything the kernels touch
  const convs: RefLayer[] = [];
  let h = H0;
  let w = W0;
  let floats = 0;
  start.convs.forEach((c) => {
    const K = c.cin * 9;
    floats += 2 * B * h * w * K + 4 * B * h * w * c.cout + 4 * K * c.cout + 4 * c.cout + B * h * w * K;
    h >>= 1;
    w >>= 1;
  });
  for (const l of start.head.layers) floats += 4 * (l.W.length + l.b.length) + 4 * B * (l.inDim + l.outDim);
  // gemmTN gathers up to rows x k non-zeros (indices and values)
  let gather = Math.max(...start.head.layers.map((l) => B * l.inDim + l.inDim));
  h = H0;
  w = W0;
  for (const c of start.convs) {
    gather = Math.max(gather, B * h * w * c.cin * 9 + c.cin * 9);
    h >>= 1;
    w >>= 1;
  }
  const arena = Arena.create(floats + 2 * gather + 4096);
  const alloc = (m: number) => (arena ? arena.f32(m) : new Float32Array(m));
  h = H0;
  w = W0;
  for (const c of start.convs) {
    const K = c.cin * 9;
    const Wt = alloc(K * c.cout);
    for (let o = 0; o < c.cout; o++) for (let p = 0; p < K; p++) Wt[p * c.cout + o] = c.W[o * K + p];
    const b = alloc(c.cout);
    b.set(c.b);
    convs.push({ cin: c.cin, cout: c.cout, H: h, W: w, Wt, b });
    h >>= 1;
    w >>= 1;
  }
  const flat = start.head.layers[0].inDim;
  const head = start.head.layers.map((l) => {
    const W = alloc(l.W.length);
    const b = alloc(l.b.length);
    W.set(l.W);
    b.set(l.b);
    return { inDim: l.inDim, outDim: l.outDim, W, b };
  });
  const sIdx = arena ? arena.i32(gather) : null;
  const sVal = arena ? arena.f32(gather) : null;
  const params: Float32Array[] = [...convs.flatMap((c) => [c.Wt, c.b]), ...head.flatMap((l) => [l.W, l.b])];
  const grads = params.map((p) => alloc(p.length));
  const m1 = params.map((p) => alloc(p.length));
  const m2 = params.map((p) => alloc(p.length));
  const cols = convs.map((c) => alloc(B * c.H * c.W * c.cin * 9));
  const zs = convs.map((c) => alloc(B * c.H * c.W * c.cout));
  const dzs = convs.map((c) => alloc(B * c.H * c.W * c.cout));
  const pooled = convs.map((c) => new Float32Array(B * (c.H >> 1) * (c.W >> 1) * c.cout));
  const args = convs.map((c) => new Int32Array(B * (c.H >> 1) * (c.W >> 1) * c.cout));
  const F = alloc(B * flat);
  const acts = head.map((l) => alloc(B * l.outDim));
  const dActs = head.map((l) => alloc(B * l.outDim));
  const dF = new Float32Array(B * flat);
  const input = new Float32Array(B * H0 * W0 * C0);
  let step = 0;
  let lossSum = 0;
  for (let s = 0; s < n; s += B) {
    const m = Math.min(B, n - s);
    // input rows (b, y, x) x channels
    for (let i = 0; i < m; i++) {
      const src = order[s + i] * C0 * H0 * W0;
      for (let c = 0; c < C0; c++) for (let p = 0; p < H0 * W0; p++) input[(i * H0 * W0 + p) * C0 + c] = X[src + c * H0 * W0 + p];
    }
    let cur: Float32Array = input;
    convs.forEach((L, l) => {
      const K = L.cin * 9;
      const rows = m * L.H * L.W;
      const col = cols[l];
      for (let i = 0; i < m; i++) {
        for (let yy = 0; yy < L.H; yy++) {
          for (let xx = 0; xx < L.W; xx++) {
            const r = (i * L.H + yy) * L.W + xx;
            for (let c = 0; c < L.cin; c++) {
              for (let dy = 0; dy < 3; dy++) {
                for (let dx = 0; dx < 3; dx++) {
                  const sy = yy + dy - 1;
                  const sx = xx + dx - 1;
                  col[r * K + c * 9 + dy * 3 + dx] = sy >= 0 && sy < L.H && sx >= 0 && sx < L.W ? cur[((i * L.H + sy) * L.W + sx) * L.cin + c] : 0;
                }
              }
            }
          }
        }
      }
      const z = zs[l];
      gemmRows(col, K, null, 0, rows, L.Wt, L.cout, L.b, z, arena, sIdx, sVal);
      for (let i = 0; i < rows * L.cout; i++) if (z[i] < 0) z[i] = 0;
      const Ho = L.H >> 1;
      const Wo = L.W >> 1;
      const out = pooled[l];
      for (let i = 0; i < m; i++) {
        for (let yy = 0; yy < Ho; yy++) {
          for (let xx = 0; xx < Wo; xx++) {
            for (let c = 0; c < L.cout; c++) {
              let at = ((i * L.H + 2 * yy) * L.W + 2 * xx) * L.cout + c;
              let best = z[at];
              for (const [oy, ox] of [[0, 1], [1, 0], [1, 1]]) {
                const q = ((i * L.H + 2 * yy + oy) * L.W + 2 * xx + ox) * L.cout + c;
                if (z[q] > best) (best = z[q]), (at = q);
              }
              const o = ((i * Ho + yy) * Wo + xx) * L.cout + c;
              out[o] = best;
              args[l][o] = at;
            }
          }
        }
      }
      cur = out;
    });
    const last = convs[convs.length - 1];
    const hw = (last.H >> 1) * (last.W >> 1);
    for (let i = 0; i < m; i++) for (let c = 0; c < last.cout; c++) for (let p = 0; p < hw; p++) F[i * flat + c * hw + p] = cur[(i * hw + p) * last.cout + c];
    let inp = F;
    head.forEach((L, j) => {
      gemmRows(inp, L.inDim, null, 0, m, L.W, L.outDim, L.b, acts[j], arena, sIdx, sVal);
      if (j + 1 < head.length) for (let i = 0; i < m * L.outDim; i++) if (acts[j][i] < 0) acts[j][i] = 0;
      inp = acts[j];
    });
    lossSum += softmaxXent(acts[head.length - 1], dActs[head.length - 1], m, k, y, order, s);
    // backward: head
    const base = 2 * convs.length;
    for (let j = head.length - 1; j >= 0; j--) {
      const L = head[j];
      const prev = j === 0 ? F : acts[j - 1];
      const dz = dActs[j];
      gemmTN(prev, L.inDim, null, 0, m, dz, L.outDim, grads[base + 2 * j], arena, sIdx, sVal);
      const gb = grads[base + 2 * j + 1];
      gb.fill(0);
      for (let i = 0; i < m; i++) for (let q = 0; q < L.outDim; q++) gb[q] += dz[i * L.outDim + q];
      const dPrev = j === 0 ? dF : dActs[j - 1];
      for (let i = 0; i < m; i++) {
        for (let p = 0; p < L.inDim; p++) {
          if (j > 0 && prev[i * L.inDim + p] <= 0) {
            dPrev[i * L.inDim + p] = 0;
            continue;
          }
          let a = 0;
          for (let q = 0; q < L.outDim; q++) a += dz[i * L.outDim + q] * L.W[p * L.outDim + q];
          dPrev[i * L.inDim + p] = a;
        }
      }
    }
    // backward: convolutions
    let dOut = new Float32Array(m * hw * last.cout);
    for (let i = 0; i < m; i++) for (let c = 0; c < last.cout; c++) for (let p = 0; p < hw; p++) dOut[(i * hw + p) * last.cout + c] = dF[i * flat + c * hw + p];
    for (let l = convs.length - 1; l >= 0; l--) {
      const L = convs[l];
      const K = L.cin * 9;
      const rows = m * L.H * L.W;
      const dz = dzs[l];
      dz.fill(0, 0, rows * L.cout);
      const outLen = m * (L.H >> 1) * (L.W >> 1) * L.cout;
      for (let i = 0; i < outLen; i++) dz[args[l][i]] += dOut[i];
      for (let i = 0; i < rows * L.cout; i++) if (zs[l][i] <= 0) dz[i] = 0;
      gemmTN(cols[l], K, null, 0, rows, dz, L.cout, grads[2 * l], arena, sIdx, sVal);
      const gb = grads[2 * l + 1];
      gb.fill(0);
      for (let i = 0; i < rows; i++) for (let c = 0; c < L.cout; c++) gb[c] += dz[i * L.cout + c];
      if (l === 0) break;
      // dcol = dz Wt^T, then col2im into the previous layer's pooled gradient
      const dIn = new Float32Array(rows * L.cin);
      for (let r = 0; r < rows; r++) {
        for (let p = 0; p < K; p++) {
          let a = 0;
          for (let c = 0; c < L.cout; c++) a += dz[r * L.cout + c] * L.Wt[p * L.cout + c];
          if (a === 0) continue;
          const ci = Math.floor(p / 9);
          const dy = Math.floor((p % 9) / 3);
          const dx = p % 3;
          const i = Math.floor(r / (L.H * L.W));
          const yy = Math.floor((r % (L.H * L.W)) / L.W) + dy - 1;
          const xx = (r % L.W) + dx - 1;
          if (yy >= 0 && yy < L.H && xx >= 0 && xx < L.W) dIn[((i * L.H + yy) * L.W + xx) * L.cin + ci] += a;
        }
      }
      dOut = dIn;
    }
    step++;
    params.forEach((p, i) => adam(p, grads[i], m1[i], m2[i], lr, i % 2 === 0 ? l2 : 0, step, arena));
  }
  return lossSum / n;
}

/** The initial net both implementations start from. */
export const referenceStart = (seed: number, classes: number, hidden: number[]) => initCnn([1, 28, 28], [8, 16], hidden, classes, seed);
