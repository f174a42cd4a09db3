// A training job as it crosses a worker boundary: plain typed arrays, no class instances.
// A job trains a dense net (options) or, when `cnn` is set, the convolutional net of cnn.ts.
import { trainCnn, type CnnNet, type CnnOptions } from './cnn.js';
import { fromNetData, toNetData, type NetData } from './dense.js';
import { train, type Dataset, type EpochStat, type TrainOptions } from './trainer.js';

export interface TrainJob {
  key: string;
  train: Dataset;
  val: Dataset | null;
  numClasses: number;
  options: Omit<TrainOptions, 'init'>;
  init: NetData | null;
  /** train a CNN instead (its own options; seed and the shared settings come from `options`) */
  cnn?: Omit<CnnOptions, 'seed' | 'init' | 'lr' | 'l2' | 'batchSize' | 'epochs' | 'patience'> & { init: CnnNet | null };
}

export interface TrainJobResult {
  key: string;
  /** the dense net (null for a cnn job) */
  net: NetData | null;
  /** the convolutional net (null for a dense job) */
  cnn: CnnNet | null;
  history: EpochStat[];
  bestEpoch: number;
  epochsRun: number;
  ms: number;
  warmStart: boolean;
}

export function runJob(job: TrainJob): TrainJobResult {
  if (job.cnn) {
    const { init, ...c } = job.cnn;
    const o = job.options;
    const r = trainCnn(job.train, job.val, job.numClasses, { ...c, init, seed: o.seed, lr: o.lr, l2: o.l2, batchSize: o.batchSize, epochs: o.epochs, patience: o.patience });
    return { key: job.key, net: null, cnn: r.net, history: r.history, bestEpoch: r.bestEpoch, epochsRun: r.epochsRun, ms: r.ms, warmStart: r.warmStart };
  }
  const r = train(job.train, job.val, job.numClasses, { ...job.options, init: job.init ? fromNetData(job.init) : null });
  return { key: job.key, net: toNetData(r.net), cnn: null, history: r.history, bestEpoch: r.bestEpoch, epochsRun: r.epochsRun, ms: r.ms, warmStart: r.warmStart };
}

/** The weight buffers of a result (transferred, not copied, out of a worker). */
export function resultBuffers(r: TrainJobResult): ArrayBuffer[] {
  const arrays = r.net ? [...r.net.W, ...r.net.b] : r.cnn ? [...r.cnn.convs.flatMap((c) => [c.W, c.b]), ...r.cnn.head.layers.flatMap((l) => [l.W, l.b])] : [];
  return arrays.map((a) => a.buffer as ArrayBuffer);
}
