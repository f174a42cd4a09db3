// The built-in trainer: softmax regression or a ReLU MLP, trained with mini-batch SGD (momentum)
// or Adam, L2 on weights, seeded init and shuffling, early stopping on a validation set with the
// best weights restored. Deterministic: the same data, options and seed give bit-identical
// weights, whichever thread runs it.
import { mulberry32 } from '../random.js';
import { Arena } from './simd.js';
import { EarlyStop } from './early-stop.js';
import { archDims, cloneNet, gemmRows, gemmSparse, gemmTN, gemmTNSparse, initNet, sparseRows, sparseRowsSize, netDims, predictProba, sameDims, type Arch, type DenseNet } from './dense.js';

/** n samples of dimension d (row-major) with class indices y. */
export interface Dataset {
  X: Float32Array;
  y: Int32Array;
  n: number;
  d: number;
}

export interface TrainOptions {
  arch: Arch;
  /** hidden layer sizes of an mlp (default [128]) */
  hidden?: number[];
  optimizer?: 'adam' | 'sgd';
  /** learning rate (default: adam 2e-3 for mlp, 5e-3 for softmax; sgd 0.05) */
  lr?: number;
  /** sgd momentum (default 0.9) */
  momentum?: number;
  /** L2 penalty on weights, not biases (default 1e-4) */
  l2?: number;
  batchSize?: number;
  /** maximum number of epochs (default 30) */
  epochs?: number;
  /**
   * at least this many optimiser steps may be taken (default 300): a task of 50 samples makes
   * two steps per epoch, and 30 epochs would leave it under-trained. Max epochs and patience
   * grow for small datasets accordingly; large ones are unaffected.
   */
  minSteps?: number;
  /** stop after this many epochs without improvement of the monitored value (default 5) */
  patience?: number;
  /** what early stopping watches on the validation set (default loss) */
  monitor?: 'loss' | 'accuracy';
  seed: number;
  /**
   * per-feature standardisation folded into the first layer (default auto: on for dense inputs,
   * off for sparse ones such as pixels)
   */
  standardize?: 'auto' | 'on' | 'off';
  /** warm start: initial weights (already shaped for this task, see transferInit) */
  init?: DenseNet | null;
  /**
   * layers below this index keep their initial weights (light adaptation of a warm start on
   * tiny data: only the last layer learns; default 0, every layer learns)
   */
  trainFrom?: number;
}

export interface EpochStat {
  epoch: number;
  trainLoss: number;
  valLoss: number | null;
  valAccuracy: number | null;
}

export interface TrainResult {
  net: DenseNet;
  history: EpochStat[];
  /** epoch (1-based) whose weights were kept */
  bestEpoch: number;
  epochsRun: number;
  ms: number;
  warmStart: boolean;
}

const DEFAULTS = { hidden: [128], optimizer: 'adam' as const, momentum: 0.9, l2: 1e-4, batchSize: 32, epochs: 30, patience: 5, monitor: 'loss' as const, minSteps: 300 };

/** Mean cross-entropy and accuracy of a net on a dataset. */
export function evaluateLoss(net: DenseNet, data: Dataset): { loss: number; accuracy: number } {
  if (data.n === 0) return { loss: 0, accuracy: 0 };
  const k = net.layers[net.layers.length - 1].outDim;
  return scoreProba(predictProba(net, data.X, data.n), data.y, data.n, k);
}

/** Mean cross-entropy and accuracy of n rows of k class probabilities against labels y. */
export function scoreProba(P: Float32Array, y: Int32Array, n: number, k: number): { loss: number; accuracy: number } {
  if (n === 0) return { loss: 0, accuracy: 0 };
  const data = { n, y };
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < data.n; i++) {
    const o = i * k;
    const yi = data.y[i];
    loss -= Math.log(Math.max(P[o + yi], 1e-12));
    let best = 0;
    for (let j = 1; j < k; j++) if (P[o + j] > P[o + best]) best = j;
    if (best === yi) correct++;
  }
  return { loss: loss / data.n, accuracy: correct / data.n };
}

/** Train a net. `val` (may be empty) drives early stopping; without it all epochs run. */
export function train(data: Dataset, val: Dataset | null, numClasses: number, options: TrainOptions): TrainResult {
  const st = options.standardize === 'off' ? null : standardizer(data, options.standardize === 'on');
  if (!st) return trainCore(data, val, numClasses, options);
  const t0 = performance.now();
  const r = trainCore(st.apply(data), val ? st.apply(val) : null, numClasses, { ...options, init: options.init ? st.toStd(options.init) : null });
  return { ...r, net: st.fromStd(r.net), ms: performance.now() - t0 };
}

/**
 * Per-feature standardisation for dense inputs, folded into the first layer so the returned
 * net takes the same inputs as before: (x - mu) / sigma W' + b' == x W + b with
 * W = W' / sigma and b = b' - mu W. Uncentred features with offsets (typical sensor vectors)
 * make gradient descent ill-conditioned; sparse inputs (pixels) are left alone ('auto'), which
 * keeps them sparse and the kernels fast.
 */
function standardizer(data: Dataset, force: boolean) {
  const { X, n, d } = data;
  let nz = 0;
  for (let i = 0; i < n * d; i++) if (X[i] !== 0) nz++;
  if (!force && nz < 0.5 * n * d) return null;
  const mu = new Float64Array(d);
  const sd = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let p = 0; p < d; p++) mu[p] += X[i * d + p] / n;
  for (let i = 0; i < n; i++) for (let p = 0; p < d; p++) sd[p] += (X[i * d + p] - mu[p]) ** 2 / n;
  for (let p = 0; p < d; p++) sd[p] = sd[p] > 1e-12 ? Math.sqrt(sd[p]) : 1;
  const apply = (ds: Dataset): Dataset => {
    const Y = new Float32Array(ds.n * d);
    for (let i = 0; i < ds.n; i++) for (let p = 0; p < d; p++) Y[i * d + p] = (ds.X[i * d + p] - mu[p]) / sd[p];
    return { ...ds, X: Y };
  };
  const fold = (net: DenseNet, toStd: boolean): DenseNet => {
    const out = cloneNet(net);
    const l = out.layers[0];
    const k = l.outDim;
    for (let p = 0; p < d; p++) for (let j = 0; j < k; j++) l.W[p * k + j] = toStd ? net.layers[0].W[p * k + j] * sd[p] : net.layers[0].W[p * k + j] / sd[p];
    // the bias shift uses the raw-space weights: b_std = b + mu W, b = b_std - mu W
    const Wraw = toStd ? net.layers[0].W : l.W;
    for (let j = 0; j < k; j++) {
      let shift = 0;
      for (let p = 0; p < d; p++) shift += mu[p] * Wraw[p * k + j];
      l.b[j] = net.layers[0].b[j] + (toStd ? shift : -shift);
    }
    return out;
  };
  return { apply, toStd: (net: DenseNet) => fold(net, true), fromStd: (net: DenseNet) => fold(net, false) };
}

function trainCore(data: Dataset, val: Dataset | null, numClasses: number, options: TrainOptions): TrainResult {
  const t0 = performance.now();
  const o = { ...DEFAULTS, ...(stripUndefined(options) as TrainOptions) };
  if (data.n === 0) throw new Error('train: no training samples');
  for (let i = 0; i < data.n; i++) {
    if (data.y[i] < 0 || data.y[i] >= numClasses) throw new Error(`train: label index ${data.y[i]} outside 0..${numClasses - 1}`);
  }
  const dims = archDims(o.arch, data.d, numClasses, o.hidden);
  const warmStart = !!o.init && sameDims(netDims(o.init), dims);
  const start = warmStart ? o.init! : initNet(dims, o.seed);
  const B = Math.max(1, Math.min(o.batchSize, data.n));
  // weights, activations and gradients live in a WebAssembly memory when SIMD is available
  const params = start.layers.reduce((s, l) => s + l.W.length + l.b.length, 0);
  const widths = start.layers.reduce((s, l) => s + l.outDim, 0);
  const maxIn = Math.max(...dims);
  // the first layer's inputs never change during a run: their non-zeros are gathered once
  const width0 = start.layers[0].outDim;
  const sparseSize = width0 % 4 === 0 ? sparseRowsSize(data.X, data.n, data.d) : 0;
  const arena = Arena.create(4 * params + 2 * B * widths + 2 * B * maxIn + 2 * maxIn + sparseSize + 64 * (start.layers.length * 8 + 6));
  const alloc = (n: number) => (arena ? arena.f32(n) : new Float32Array(n));
  const net: DenseNet = {
    layers: start.layers.map((l) => {
      const W = alloc(l.W.length);
      const b = alloc(l.b.length);
      W.set(l.W);
      b.set(l.b);
      return { inDim: l.inDim, outDim: l.outDim, W, b };
    }),
  };
  const sIdx = arena ? arena.i32(B * maxIn + maxIn) : null;
  const sVal = arena ? arena.f32(B * maxIn + maxIn) : null;
  const sparse = arena && sparseSize ? sparseRows(data.X, data.n, data.d, width0, arena) : null;
  const colStart = new Int32Array(data.d + 1);
  const lr = o.lr ?? (o.optimizer === 'adam' ? (o.arch === 'mlp' ? 2e-3 : 5e-3) : 0.05);
  const L = net.layers.length;
  const stepsPerEpoch = Math.ceil(data.n / B);
  const maxEpochs = Math.max(o.epochs, Math.ceil(o.minSteps / stepsPerEpoch));
  const patience = Math.max(o.patience, Math.ceil(o.minSteps / 6 / stepsPerEpoch));

  // per-layer buffers: pre-activations/activations, their gradients, weight gradients, optimiser state
  const act = net.layers.map((l) => alloc(B * l.outDim));
  const dAct = net.layers.map((l) => alloc(B * l.outDim));
  const gW = net.layers.map((l) => alloc(l.W.length));
  const gB = net.layers.map((l) => alloc(l.b.length));
  const m1W = net.layers.map((l) => alloc(l.W.length));
  const m1B = net.layers.map((l) => alloc(l.b.length));
  const m2W = o.optimizer === 'adam' ? net.layers.map((l) => alloc(l.W.length)) : [];
  const m2B = o.optimizer === 'adam' ? net.layers.map((l) => alloc(l.b.length)) : [];

  const order = new Int32Array(data.n);
  for (let i = 0; i < data.n; i++) order[i] = i;
  const shuffleRand = mulberry32((o.seed ^ 0x9e3779b9) >>> 0);

  const hasVal = !!val && val.n > 0;
  let e0: { loss: number; accuracy: number } | null = null;
  if (hasVal) e0 = evaluateLoss(net, val!);
  const stop = new EarlyStop(hasVal, patience, e0 ? (o.monitor === 'loss' ? e0.loss : -e0.accuracy) : Infinity, () => cloneNet(net));
  let step = 0;

  for (let epoch = 1; epoch <= maxEpochs; epoch++) {
    shuffleInPlace(order, shuffleRand);
    let lossSum = 0;
    for (let s = 0; s < data.n; s += B) {
      const m = Math.min(B, data.n - s);
      // forward
      for (let l = 0; l < L; l++) {
        const Ly = net.layers[l];
        if (l === 0 && sparse) gemmSparse(sparse, order, s, m, Ly.W, Ly.b, act[0], arena!);
        else if (l === 0) gemmRows(data.X, Ly.inDim, order, s, m, Ly.W, Ly.outDim, Ly.b, act[0], arena, sIdx, sVal);
        else gemmRows(act[l - 1], Ly.inDim, null, 0, m, Ly.W, Ly.outDim, Ly.b, act[l], arena, sIdx, sVal);
        if (l + 1 < L) relu(act[l], m * Ly.outDim);
      }
      lossSum += softmaxXent(act[L - 1], dAct[L - 1], m, numClasses, data.y, order, s);
      // backward
      for (let l = L - 1; l >= 0; l--) {
        const Ly = net.layers[l];
        const n = Ly.outDim;
        const kin = Ly.inDim;
        const g = gW[l];
        const gb = gB[l];
        const dz = dAct[l];
        biasGrad(dz, m, n, gb);
        if (l === 0 && sparse) gemmTNSparse(sparse, order, s, m, kin, dz, g, arena!, sIdx!, sVal!, colStart);
        else if (l === 0) gemmTN(data.X, kin, order, s, m, dz, n, g, arena, sIdx, sVal);
        else gemmTN(act[l - 1], kin, null, 0, m, dz, n, g, arena, sIdx, sVal);
        // dA_{l-1} = dZ_l W_l^T, masked by the ReLU of layer l-1
        if (l > 0) backHidden(dz, m, n, Ly.W, kin, act[l - 1], dAct[l - 1]);
      }
      // update
      step++;
      for (let l = warmStart ? Math.min(o.trainFrom ?? 0, L - 1) : 0; l < L; l++) {
        const Ly = net.layers[l];
        if (o.optimizer === 'adam') {
          adam(Ly.W, gW[l], m1W[l], m2W[l], lr, o.l2, step, arena);
          adam(Ly.b, gB[l], m1B[l], m2B[l], lr, 0, step, arena);
        } else {
          sgd(Ly.W, gW[l], m1W[l], lr, o.momentum, o.l2);
          sgd(Ly.b, gB[l], m1B[l], lr, o.momentum, 0);
        }
      }
    }
    const stat: EpochStat = { epoch, trainLoss: lossSum / data.n, valLoss: null, valAccuracy: null };
    const e = hasVal ? evaluateLoss(net, val!) : null;
    if (e) (stat.valLoss = e.loss), (stat.valAccuracy = e.accuracy);
    if (stop.epoch(stat, e ? (o.monitor === 'loss' ? e.loss : -e.accuracy) : null)) break;
  }
  // plain arrays out (snapshots): the arena's memory is not kept alive by the result
  return { ...stop.result(), ms: performance.now() - t0, warmStart };
}

/** Fisher-Yates with a seeded generator: the order depends only on the seed and epoch count. */
export function shuffleInPlace(order: Int32Array, rand: () => number): void {
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

function relu(a: Float32Array, len: number): void {
  for (let i = 0; i < len; i++) if (a[i] < 0) a[i] = 0;
}

/** Softmax cross-entropy of m rows of logits Z; writes dZ = (p - onehot) / m; returns the loss sum. */
export function softmaxXent(Z: Float32Array, dZ: Float32Array, m: number, k: number, y: Int32Array, order: Int32Array, s: number): number {
  const invM = 1 / m;
  let lossSum = 0;
  for (let i = 0; i < m; i++) {
    const off = i * k;
    let max = -Infinity;
    for (let j = 0; j < k; j++) if (Z[off + j] > max) max = Z[off + j];
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(Z[off + j] - max);
    const logSum = Math.log(sum) + max;
    const yi = y[order[s + i]];
    lossSum += logSum - Z[off + yi];
    for (let j = 0; j < k; j++) dZ[off + j] = Math.exp(Z[off + j] - logSum) * invM;
    dZ[off + yi] -= invM;
  }
  return lossSum;
}

function biasGrad(dz: Float32Array, m: number, n: number, gb: Float32Array): void {
  gb.fill(0);
  for (let i = 0; i < m; i++) {
    const zBase = i * n;
    for (let j = 0; j < n; j++) gb[j] += dz[zBase + j];
  }
}

/** dPrev = (dz W^T) masked where the previous layer's ReLU output was 0. */
function backHidden(dz: Float32Array, m: number, n: number, W: Float32Array, kin: number, prev: Float32Array, dPrev: Float32Array): void {
  for (let i = 0; i < m; i++) {
    const zBase = i * n;
    const pBase = i * kin;
    for (let p = 0; p < kin; p++) {
      if (prev[pBase + p] <= 0) {
        dPrev[pBase + p] = 0;
        continue;
      }
      const wBase = p * n;
      let acc = 0;
      for (let j = 0; j < n; j++) acc += dz[zBase + j] * W[wBase + j];
      dPrev[pBase + p] = acc;
    }
  }
}

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-8;

export function adam(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, l2: number, t: number, arena: Arena | null): void {
  const c1 = 1 / (1 - Math.pow(BETA1, t));
  const c2 = 1 / (1 - Math.pow(BETA2, t));
  const done = arena && arena.owns(w) ? arena.adam(w, g, m, v, lr * c1, c2, l2, BETA1, BETA2, EPS) : 0;
  for (let i = done; i < w.length; i++) {
    const gi = g[i] + l2 * w[i];
    const mi = BETA1 * m[i] + (1 - BETA1) * gi;
    const vi = BETA2 * v[i] + (1 - BETA2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] -= (lr * (mi * c1)) / (Math.sqrt(vi * c2) + EPS);
  }
}

function sgd(w: Float32Array, g: Float32Array, vel: Float32Array, lr: number, momentum: number, l2: number): void {
  for (let i = 0; i < w.length; i++) {
    const v = momentum * vel[i] + g[i] + l2 * w[i];
    vel[i] = v;
    w[i] -= lr * v;
  }
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/**
 * Warm-start weights for a task from a parent model: hidden layers are copied when the layer
 * sizes match; output columns are copied label by label (a label the parent never saw starts
 * from the fresh init). Returns null when the parent cannot seed this architecture (then the
 * task starts fresh).
 */
export function transferInit(parent: DenseNet, parentLabels: readonly string[], dims: readonly number[], labels: readonly string[], seed: number): DenseNet | null {
  const pd = netDims(parent);
  if (pd.length !== dims.length) return null;
  for (let i = 0; i + 1 < dims.length; i++) if (pd[i] !== dims[i]) return null;
  const net = initNet(dims, seed);
  const L = dims.length - 1;
  for (let l = 0; l + 1 < L; l++) {
    net.layers[l].W.set(parent.layers[l].W);
    net.layers[l].b.set(parent.layers[l].b);
  }
  const pLast = parent.layers[L - 1];
  const last = net.layers[L - 1];
  const pIndex = new Map(parentLabels.map((lab, i) => [lab, i]));
  let copied = 0;
  labels.forEach((lab, j) => {
    const pj = pIndex.get(lab);
    if (pj === undefined || pj >= pLast.outDim) return;
    copied++;
    for (let p = 0; p < last.inDim; p++) last.W[p * last.outDim + j] = pLast.W[p * pLast.outDim + pj];
    last.b[j] = pLast.b[pj];
  });
  return copied > 0 || L > 1 ? net : null;
}
