// The built-in convolutional network for images ([C,H,W] inputs): blocks of conv3x3 (padding 1)
// + ReLU + 2x2 max pooling, then a dense head (ReLU hidden layers, softmax output), i.e. the
// ONNX graph Conv, Relu, MaxPool, ..., Flatten, Gemm, Relu, Gemm, Softmax that cnn-onnx.ts
// writes. Trained like the dense nets of trainer.ts: seeded init and shuffling, mini-batch Adam
// with L2 on weights, early stopping on a validation set with the best weights restored, warm
// start from a parent (transfer: conv weights copied, early convolutions optionally frozen),
// and optional small random shifts of the training images (augmentation for small sets).
// Deterministic: same data, options and seed give bit-identical weights on any thread.
import { mulberry32 } from '../random.js';
import { col2im, gemm, gemmABt, im2col, maxPool, maxPoolBack, StrideTables, transpose } from './conv.js';
import { initNet, netDims, softmaxRows, type DenseNet } from './dense.js';
import { Arena } from './simd.js';
import { EarlyStop } from './early-stop.js';
import { adam, scoreProba, shuffleInPlace, softmaxXent, stripUndefined, transferInit, type Dataset, type EpochStat } from './trainer.js';

export interface ConvLayer {
  cin: number;
  cout: number;
  /** [cout][cin][3][3], the ONNX Conv weight layout */
  W: Float32Array;
  b: Float32Array;
}

export interface CnnNet {
  /** input [C, H, W] of one sample */
  shape: [number, number, number];
  convs: ConvLayer[];
  head: DenseNet;
}

export interface CnnOptions {
  shape: [number, number, number];
  /** output channels of each conv block (default [8, 16]) */
  filters?: number[];
  /** hidden sizes of the dense head (default [64]) */
  hidden?: number[];
  lr?: number;
  l2?: number;
  batchSize?: number;
  epochs?: number;
  patience?: number;
  minSteps?: number;
  seed: number;
  init?: CnnNet | null;
  /** leave the first n conv layers as initialised (transfer on tiny data; default 0) */
  freezeConvs?: number;
  /** random shifts of up to this many pixels per training image (default 0: off) */
  shift?: number;
}

export interface CnnTrainResult {
  net: CnnNet;
  history: EpochStat[];
  bestEpoch: number;
  epochsRun: number;
  ms: number;
  warmStart: boolean;
}

export const CNN_DEFAULTS = { filters: [8, 16], hidden: [64] };
const DEFAULTS = { l2: 1e-4, batchSize: 32, epochs: 30, patience: 5, minSteps: 300, lr: 2e-3, freezeConvs: 0, shift: 0 };

/** Spatial size after each block, and the flattened width the head takes. */
export function cnnGeometry(shape: readonly number[], filters: readonly number[]): { sizes: [number, number][]; flat: number } {
  const [, H, W] = shape;
  const sizes: [number, number][] = [];
  let h = H;
  let w = W;
  for (let l = 0; l < filters.length; l++) {
    sizes.push([h, w]);
    h >>= 1;
    w >>= 1;
  }
  if (h < 1 || w < 1) throw new Error(`cnn: a ${H}x${W} image is too small for ${filters.length} pooling blocks (needs at least ${2 ** filters.length}x${2 ** filters.length})`);
  return { sizes, flat: filters[filters.length - 1] * h * w };
}

/** Seeded He-uniform conv weights, zero biases; the head as initNet. */
export function initCnn(shape: [number, number, number], filters: readonly number[], hidden: readonly number[], classes: number, seed: number): CnnNet {
  const rand = mulberry32((seed ^ 0x5bd1e995) >>> 0);
  const convs: ConvLayer[] = [];
  let cin = shape[0];
  for (const cout of filters) {
    const limit = Math.sqrt(6 / (cin * 9));
    const W = new Float32Array(cout * cin * 9);
    for (let i = 0; i < W.length; i++) W[i] = (rand() * 2 - 1) * limit;
    convs.push({ cin, cout, W, b: new Float32Array(cout) });
    cin = cout;
  }
  const { flat } = cnnGeometry(shape, filters);
  return { shape: [...shape], convs, head: initNet([flat, ...hidden, classes], seed) };
}

export function cloneCnn(n: CnnNet): CnnNet {
  return {
    shape: [...n.shape],
    convs: n.convs.map((c) => ({ cin: c.cin, cout: c.cout, W: c.W.slice(), b: c.b.slice() })),
    head: { layers: n.head.layers.map((l) => ({ inDim: l.inDim, outDim: l.outDim, W: l.W.slice(), b: l.b.slice() })) },
  };
}

/** Architecture of a net: [C,H,W], filters, head hidden sizes, classes. */
export function cnnArch(n: CnnNet): { shape: number[]; filters: number[]; hidden: number[]; classes: number } {
  const L = n.head.layers;
  return { shape: [...n.shape], filters: n.convs.map((c) => c.cout), hidden: L.slice(0, -1).map((l) => l.outDim), classes: L[L.length - 1].outDim };
}

const ceil4 = (n: number) => (n + 3) & ~3;

/**
 * One net's parameters, activations and gradients for mini-batches of up to B samples, all in
 * one arena (SIMD) or plain arrays. Rows of a [C][B*H*W] activation are padded to a multiple of
 * 4 columns (kept zero where it matters) so every product takes the SIMD kernel.
 */
class CnnState {
  readonly arena: Arena | null;
  readonly tables: StrideTables;
  readonly net: CnnNet;
  private readonly sizes: [number, number][];
  private readonly flat: number;
  // per conv layer
  private readonly x: Float32Array[] = [];
  private readonly colT: Float32Array[] = [];
  private readonly z: Float32Array[] = [];
  private readonly arg: Int32Array[] = [];
  private readonly dz: Float32Array[] = [];
  private readonly dcol: Float32Array[] = [];
  private readonly dx: Float32Array[] = [];
  private readonly WT: Float32Array[] = [];
  // head
  private readonly F: Float32Array;
  private readonly FT: Float32Array;
  private readonly dPool: Float32Array;
  private readonly act: Float32Array[] = [];
  readonly dAct: Float32Array[] = [];
  private readonly dF: Float32Array;
  private readonly headWT: Float32Array;
  // parameters in update order, with their gradients and Adam moments
  readonly params: Float32Array[] = [];
  readonly grads: Float32Array[] = [];
  readonly m1: Float32Array[] = [];
  readonly m2: Float32Array[] = [];
  /** first index of params that is trained (frozen conv layers come first) */
  readonly trainedFrom: number;
  private pooledLast: Float32Array;

  constructor(
    start: CnnNet,
    readonly B: number,
    readonly freeze: number,
    training: boolean,
  ) {
    const filters = start.convs.map((c) => c.cout);
    const g = cnnGeometry(start.shape, filters);
    this.sizes = g.sizes;
    this.flat = g.flat;
    const [C0] = start.shape;
    const L = start.convs.length;
    const headL = start.head.layers;
    // sizes first (one arena of exactly what is needed), then the allocations in the same order
    const plan: number[] = [];
    const pairs: [number, number][] = [];
    const planAll = (take: (n: number) => void) => {
      let cin = C0;
      for (let l = 0; l < L; l++) {
        const [h, w] = this.sizes[l];
        const P = ceil4(B * h * w);
        const K = cin * 9;
        const cout = filters[l];
        take(cout * K); // W
        take(cout); // b
        take(cin * P); // x
        take(K * P); // colT
        take(cout * P); // z
        take(cout * ceil4(B * (h >> 1) * (w >> 1))); // pooled (x of the next layer or the head's input)
        if (training) {
          take(cout * P); // dz
          take(K * P); // dcol
          take(cin * P); // dx
          take(K * cout); // WT
          take(cout * K), take(cout), take(cout * K), take(cout), take(cout * K), take(cout); // grads, m1, m2
        }
        pairs.push([P, K], [P, cout]);
        cin = cout;
      }
      const maxIn = Math.max(...headL.map((l) => l.inDim));
      take(B * this.flat); // F
      take(maxIn * B); // FT
      take(filters[L - 1] * ceil4(B * this.flat / filters[L - 1])); // dPool
      take(B * this.flat); // dF
      take(maxIn * Math.max(...headL.map((l) => l.outDim))); // headWT
      for (const l of headL) {
        take(l.W.length), take(l.b.length), take(B * l.outDim), take(B * l.outDim);
        if (training) for (let r = 0; r < 3; r++) take(l.W.length), take(l.b.length);
        pairs.push([l.outDim, l.inDim], [l.outDim, B], [l.inDim, l.outDim]);
      }
    };
    planAll((n) => plan.push(n));
    const floats = plan.reduce((s, n) => s + n + 4, 0) + StrideTables.size(pairs);
    this.arena = Arena.create(floats);
    const alloc = (n: number) => (this.arena ? this.arena.f32(n) : new Float32Array(n));
    this.tables = new StrideTables(this.arena);
    const convs: ConvLayer[] = [];
    let cin = C0;
    const pooled: Float32Array[] = [];
    for (let l = 0; l < L; l++) {
      const [h, w] = this.sizes[l];
      const P = ceil4(B * h * w);
      const K = cin * 9;
      const cout = filters[l];
      const W = alloc(cout * K);
      const b = alloc(cout);
      W.set(start.convs[l].W);
      b.set(start.convs[l].b);
      convs.push({ cin, cout, W, b });
      this.x.push(l === 0 ? alloc(cin * P) : (alloc(cin * P), pooled[l - 1]));
      this.colT.push(alloc(K * P));
      this.z.push(alloc(cout * P));
      pooled.push(alloc(cout * ceil4(B * (h >> 1) * (w >> 1))));
      if (training) {
        this.dz.push(alloc(cout * P));
        this.dcol.push(alloc(K * P));
        this.dx.push(alloc(cin * P));
        this.WT.push(alloc(K * cout));
        this.params.push(W, b);
        this.grads.push(alloc(cout * K), alloc(cout));
        this.m1.push(alloc(cout * K), alloc(cout));
        this.m2.push(alloc(cout * K), alloc(cout));
      }
      this.arg.push(new Int32Array(cout * ceil4(B * (h >> 1) * (w >> 1))));
      cin = cout;
    }
    this.pooledLast = pooled[L - 1];
    this.F = alloc(B * this.flat);
    const maxIn = Math.max(...headL.map((l) => l.inDim));
    this.FT = alloc(maxIn * B);
    this.dPool = alloc(filters[L - 1] * ceil4((B * this.flat) / filters[L - 1]));
    this.dF = alloc(B * this.flat);
    this.headWT = alloc(maxIn * Math.max(...headL.map((l) => l.outDim)));
    const layers = headL.map((l) => {
      const W = alloc(l.W.length);
      const b = alloc(l.b.length);
      W.set(l.W);
      b.set(l.b);
      this.act.push(alloc(B * l.outDim));
      this.dAct.push(alloc(B * l.outDim));
      if (training) {
        this.params.push(W, b);
        this.grads.push(alloc(l.W.length), alloc(l.b.length));
        this.m1.push(alloc(l.W.length), alloc(l.b.length));
        this.m2.push(alloc(l.W.length), alloc(l.b.length));
      }
      return { inDim: l.inDim, outDim: l.outDim, W, b };
    });
    this.net = { shape: [...start.shape], convs, head: { layers } };
    this.trainedFrom = 2 * Math.min(freeze, L);
  }

  /**
   * Load m samples (rows of X, each C*H*W in CHW order) as x[C][m][H][W], optionally shifted by
   * (dy, dx) per sample with zeros shifted in.
   */
  load(X: Float32Array, rows: Int32Array | null, start: number, m: number, shifts: Int8Array | null): void {
    const [C, H, W] = this.net.shape;
    const plane = H * W;
    const d = C * plane;
    const P = ceil4(m * plane);
    const x = this.x[0];
    for (let c = 0; c < C; c++) {
      x.fill(0, c * P + m * plane, (c + 1) * P);
      for (let i = 0; i < m; i++) {
        const src = (rows ? rows[start + i] : start + i) * d + c * plane;
        const dst = c * P + i * plane;
        const sy = shifts ? shifts[2 * i] : 0;
        const sx = shifts ? shifts[2 * i + 1] : 0;
        if (sy === 0 && sx === 0) {
          x.set(X.subarray(src, src + plane), dst);
          continue;
        }
        for (let y = 0; y < H; y++) {
          const yy = y - sy;
          for (let xx = 0; xx < W; xx++) {
            const xs = xx - sx;
            x[dst + y * W + xx] = yy >= 0 && yy < H && xs >= 0 && xs < W ? X[src + yy * W + xs] : 0;
          }
        }
      }
    }
  }

  /** Forward pass of the loaded m samples; returns the logits [m][classes] (in this.act). */
  forward(m: number): Float32Array {
    const { arena, tables } = this;
    const L = this.net.convs.length;
    for (let l = 0; l < L; l++) {
      const cv = this.net.convs[l];
      const [h, w] = this.sizes[l];
      const P = ceil4(m * h * w);
      const K = cv.cin * 9;
      const Po = ceil4(m * (h >> 1) * (w >> 1));
      im2col(this.x[l], cv.cin, m, h, w, P, this.colT[l]);
      const z = this.z[l];
      gemm(cv.W, this.colT[l], z, cv.cout, K, P, { rowBias: cv.b, arena, tables });
      const len = cv.cout * P;
      for (let i = 0; i < len; i++) if (z[i] < 0) z[i] = 0;
      const out = l + 1 < L ? this.x[l + 1] : this.pooledLast;
      maxPool(z, cv.cout, m, h, w, P, Po, out, this.arg[l]);
    }
    // flatten: F[b][c*hw + s] = pooled[c][b][s]
    const last = this.net.convs[L - 1];
    const [h, w] = this.sizes[L - 1];
    const hw = (h >> 1) * (w >> 1);
    const Po = ceil4(m * hw);
    const F = this.F;
    for (let c = 0; c < last.cout; c++) {
      for (let b = 0; b < m; b++) F.set(this.pooledLast.subarray(c * Po + b * hw, c * Po + b * hw + hw), b * this.flat + c * hw);
    }
    let inp = F;
    const layers = this.net.head.layers;
    for (let j = 0; j < layers.length; j++) {
      const Ly = layers[j];
      const a = this.act[j];
      gemm(inp, Ly.W, a, m, Ly.inDim, Ly.outDim, { colBias: Ly.b, arena, tables });
      if (j + 1 < layers.length) {
        const len = m * Ly.outDim;
        for (let i = 0; i < len; i++) if (a[i] < 0) a[i] = 0;
      }
      inp = a;
    }
    return this.act[layers.length - 1];
  }

  /** Gradients of the loss whose logit gradient is in dAct[last] (after forward(m)). */
  backward(m: number): void {
    const { arena, tables } = this;
    const layers = this.net.head.layers;
    const L = this.net.convs.length;
    const headBase = 2 * L;
    const convsTrained = this.freeze < L;
    for (let j = layers.length - 1; j >= 0; j--) {
      const Ly = layers[j];
      const inp = j === 0 ? this.F : this.act[j - 1];
      const dz = this.dAct[j];
      const gW = this.grads[headBase + 2 * j];
      const gB = this.grads[headBase + 2 * j + 1];
      transpose(inp, m, Ly.inDim, this.FT);
      gemm(this.FT, dz, gW, Ly.inDim, m, Ly.outDim, { arena, tables });
      gB.fill(0);
      for (let i = 0; i < m; i++) for (let q = 0; q < Ly.outDim; q++) gB[q] += dz[i * Ly.outDim + q];
      if (j === 0 && !convsTrained) break;
      const dIn = j === 0 ? this.dF : this.dAct[j - 1];
      transpose(Ly.W, Ly.inDim, Ly.outDim, this.headWT);
      gemm(dz, this.headWT, dIn, m, Ly.outDim, Ly.inDim, { arena, tables });
      if (j > 0) {
        const len = m * Ly.inDim;
        for (let i = 0; i < len; i++) if (inp[i] <= 0) dIn[i] = 0;
      }
    }
    if (!convsTrained) return;
    // un-flatten dF into the last pooled layout: dPool[c][b][s]
    const lastC = this.net.convs[L - 1].cout;
    const [hL, wL] = this.sizes[L - 1];
    const hw = (hL >> 1) * (wL >> 1);
    let dPool = this.dPool;
    let PoL = ceil4(m * hw);
    dPool.fill(0, 0, lastC * PoL);
    for (let c = 0; c < lastC; c++) for (let b = 0; b < m; b++) dPool.set(this.dF.subarray(b * this.flat + c * hw, b * this.flat + c * hw + hw), c * PoL + b * hw);
    for (let l = L - 1; l >= this.freeze; l--) {
      const cv = this.net.convs[l];
      const [h, w] = this.sizes[l];
      const P = ceil4(m * h * w);
      const K = cv.cin * 9;
      const dz = this.dz[l];
      maxPoolBack(dPool, this.arg[l], cv.cout, m, (h >> 1) * (w >> 1), PoL, dz, cv.cout * P);
      const z = this.z[l];
      const len = cv.cout * P;
      for (let i = 0; i < len; i++) if (z[i] <= 0) dz[i] = 0;
      const gW = this.grads[2 * l];
      const gB = this.grads[2 * l + 1];
      gemmABt(dz, this.colT[l], gW, cv.cout, P, K, { arena });
      for (let c = 0; c < cv.cout; c++) {
        let s = 0;
        for (let i = c * P; i < c * P + P; i++) s += dz[i];
        gB[c] = s;
      }
      if (l === 0 || l - 1 < this.freeze) break;
      transpose(cv.W, cv.cout, K, this.WT[l]);
      gemm(this.WT[l], dz, this.dcol[l], K, cv.cout, P, { arena, tables });
      col2im(this.dcol[l], cv.cin, m, h, w, P, this.dx[l]);
      dPool = this.dx[l];
      PoL = P;
    }
  }
}

/** Class probabilities of n samples (rows of X, C*H*W each), computed in batches. */
export function cnnPredict(net: CnnNet, X: Float32Array, n: number, batch = 64): Float32Array {
  const k = net.head.layers[net.head.layers.length - 1].outDim;
  const d = net.shape[0] * net.shape[1] * net.shape[2];
  if (X.length < n * d) throw new Error(`predict: input holds ${X.length} values, expected ${n} x ${d}`);
  const out = new Float32Array(n * k);
  if (n === 0) return out;
  const st = new CnnState(net, Math.min(batch, n), 0, false);
  for (let s = 0; s < n; s += st.B) {
    const m = Math.min(st.B, n - s);
    st.load(X, null, s, m, null);
    const Z = st.forward(m);
    softmaxRows(Z, m, k);
    out.set(Z.subarray(0, m * k), s * k);
  }
  return out;
}

/** Train a CNN on n samples of C*H*W values (CHW order); `val` drives early stopping. */
export function trainCnn(data: Dataset, val: Dataset | null, numClasses: number, options: CnnOptions): CnnTrainResult {
  const t0 = performance.now();
  const o = { ...DEFAULTS, ...CNN_DEFAULTS, ...(stripUndefined(options) as CnnOptions) };
  if (data.n === 0) throw new Error('train: no training samples');
  const [C, H, W] = o.shape;
  if (C * H * W !== data.d) throw new Error(`cnn: input shape [${C},${H},${W}] holds ${C * H * W} values, the samples have ${data.d}`);
  for (let i = 0; i < data.n; i++) {
    if (data.y[i] < 0 || data.y[i] >= numClasses) throw new Error(`train: label index ${data.y[i]} outside 0..${numClasses - 1}`);
  }
  const fresh = initCnn(o.shape, o.filters, o.hidden, numClasses, o.seed);
  const warmStart = !!o.init && sameArch(o.init, fresh);
  const B = Math.max(1, Math.min(o.batchSize, data.n));
  const st = new CnnState(warmStart ? o.init! : fresh, B, warmStart ? o.freezeConvs : 0, true);
  const net = st.net;
  const k = numClasses;
  const stepsPerEpoch = Math.ceil(data.n / B);
  const maxEpochs = Math.max(o.epochs, Math.ceil(o.minSteps / stepsPerEpoch));
  const patience = Math.max(o.patience, Math.ceil(o.minSteps / 6 / stepsPerEpoch));
  const order = new Int32Array(data.n);
  for (let i = 0; i < data.n; i++) order[i] = i;
  const shuffleRand = mulberry32((o.seed ^ 0x9e3779b9) >>> 0);
  const shiftRand = mulberry32((o.seed ^ 0x2545f491) >>> 0);
  const shifts = o.shift > 0 ? new Int8Array(2 * B) : null;
  const evalVal = () => {
    const P = cnnPredict(net, val!.X, val!.n);
    return scoreProba(P, val!.y, val!.n, k);
  };
  const hasVal = !!val && val.n > 0;
  const stop = new EarlyStop(hasVal, patience, hasVal ? evalVal().loss : Infinity, () => cloneCnn(net));
  let step = 0;
  const lastLayer = net.head.layers.length - 1;
  for (let epoch = 1; epoch <= maxEpochs; epoch++) {
    shuffleInPlace(order, shuffleRand);
    let lossSum = 0;
    for (let s = 0; s < data.n; s += B) {
      const m = Math.min(B, data.n - s);
      if (shifts) for (let i = 0; i < 2 * m; i++) shifts[i] = Math.floor(shiftRand() * (2 * o.shift + 1)) - o.shift;
      st.load(data.X, order, s, m, shifts);
      const Z = st.forward(m);
      lossSum += softmaxXent(Z, st.dAct[lastLayer], m, k, data.y, order, s);
      st.backward(m);
      step++;
      for (let p = st.trainedFrom; p < st.params.length; p++) {
        // biases (odd indices) carry no L2
        adam(st.params[p], st.grads[p], st.m1[p], st.m2[p], o.lr, p % 2 === 0 ? o.l2 : 0, step, st.arena);
      }
    }
    const stat: EpochStat = { epoch, trainLoss: lossSum / data.n, valLoss: null, valAccuracy: null };
    const e = hasVal ? evalVal() : null;
    if (e) (stat.valLoss = e.loss), (stat.valAccuracy = e.accuracy);
    if (stop.epoch(stat, e ? e.loss : null)) break;
  }
  return { ...stop.result(), ms: performance.now() - t0, warmStart };
}

function sameArch(a: CnnNet, b: CnnNet): boolean {
  return JSON.stringify(cnnArch(a)) === JSON.stringify(cnnArch(b));
}

/**
 * Warm start from a parent CNN: conv layers are copied when the input shape and layer sizes
 * match, the head as transferInit does (hidden layers copied, output columns label by label). null when the parent cannot seed this architecture.
 */
export function cnnTransferInit(parent: CnnNet, parentLabels: readonly string[], shape: [number, number, number], filters: readonly number[], hidden: readonly number[], labels: readonly string[], seed: number): CnnNet | null {
  const net = initCnn(shape, filters, hidden, labels.length, seed);
  const pa = cnnArch(parent);
  const na = cnnArch(net);
  if (JSON.stringify([pa.shape, pa.filters, pa.hidden]) !== JSON.stringify([na.shape, na.filters, na.hidden])) return null;
  net.convs.forEach((c, l) => {
    c.W.set(parent.convs[l].W);
    c.b.set(parent.convs[l].b);
  });
  const head = transferInit(parent.head, parentLabels, netDims(net.head), labels, seed);
  if (!head) return null;
  net.head = head;
  return net;
}

/**
 * Mean cross-entropy of n samples and its gradient for every parameter (conv W, b per layer,
 * then head W, b per layer), in one batch: what a training step uses, exposed so tests can
 * check the backward pass against finite differences.
 */
export function cnnGradients(net: CnnNet, X: Float32Array, y: Int32Array, n: number): { loss: number; grads: Float32Array[] } {
  const st = new CnnState(net, n, 0, true);
  st.load(X, null, 0, n, null);
  const Z = st.forward(n);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const k = net.head.layers[net.head.layers.length - 1].outDim;
  const loss = softmaxXent(Z, st.dAct[st.dAct.length - 1], n, k, y, order, 0) / n;
  st.backward(n);
  return { loss, grads: st.grads.map((g) => g.slice()) };
}
