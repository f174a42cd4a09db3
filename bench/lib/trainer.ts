// The trainer the benchmark's baselines use, as a parameter: by default LEARN's built-in
// trainer (src/learn/trainer.ts) with the same architecture and optimiser settings the KB's
// training rounds use, so sedna-ll and the baselines differ only in what they do with the data.
import { argmaxRows, archDims, initNet, predictProba, type DenseNet } from '../../src/learn/dense.js';
import { train, type Dataset, type TrainOptions } from '../../src/learn/trainer.js';
import { CLASSES, DIM, type Samples } from './mnist.js';
import { permutation, selectSamples } from './mnist.js';

export interface Trainer<M = unknown> {
  name: string;
  /** the settings, recorded in the benchmark's JSON */
  settings: Record<string, unknown>;
  /** a model at random initialisation (GEM's b: accuracy before any training) */
  fresh(seed: number): M;
  /**
   * Train on `data`, starting from `init` (warm start) or from scratch (null). The trainer
   * holds out `valFraction` of `data` for early stopping.
   */
  fit(init: M | null, data: Samples, seed: number): M;
  /** predicted class per row */
  predict(model: M, x: Float32Array, n: number): Int32Array;
}

export interface DenseTrainerOptions extends Omit<TrainOptions, 'seed' | 'init'> {
  /** share of each training call's data held out for early stopping */
  valFraction: number;
}

/** Mirrors LEARN's defaults for MNIST-sized tasks (mlp 784-128-10, Adam, early stopping). */
export const DEFAULT_DENSE: DenseTrainerOptions = { arch: 'mlp', hidden: [128], optimizer: 'adam', lr: 1e-3, batchSize: 32, epochs: 30, patience: 5, l2: 1e-4, valFraction: 0.2 };

export const toDataset = (s: Samples): Dataset => ({ X: s.x, y: Int32Array.from(s.y), n: s.n, d: DIM });

/** Seeded split of a sample set into (train, validation). */
export function splitVal(data: Samples, valFraction: number, seed: number): { train: Samples; val: Samples | null } {
  const nVal = Math.floor(data.n * valFraction);
  if (nVal < 1 || data.n - nVal < 1) return { train: data, val: null };
  const order = permutation(data.n, seed);
  return { train: selectSamples(data, order.subarray(nVal)), val: selectSamples(data, order.subarray(0, nVal)) };
}

export function denseTrainer(opts: DenseTrainerOptions = DEFAULT_DENSE): Trainer<DenseNet> {
  const { valFraction, ...trainOpts } = opts;
  return {
    name: `learn/trainer ${opts.arch}${opts.arch === 'mlp' ? ` ${DIM}-${(opts.hidden ?? [128]).join('-')}-${CLASSES}` : ''}`,
    settings: { ...opts },
    fresh: (seed) => initNet(archDims(opts.arch, DIM, CLASSES, opts.hidden), seed),
    fit(init, data, seed) {
      const { train: tr, val } = splitVal(data, valFraction, seed ^ 0x5bd1e995);
      return train(toDataset(tr), val ? toDataset(val) : null, CLASSES, { ...trainOpts, seed, init }).net;
    },
    predict: (net, x, n) => argmaxRows(predictProba(net, x, n), n, CLASSES),
  };
}
