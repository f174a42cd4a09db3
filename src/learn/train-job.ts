// A training job as it crosses a worker boundary: plain typed arrays, no class instances.
import { fromNetData, toNetData, type NetData } from './dense.js';
import { train, type Dataset, type EpochStat, type TrainOptions } from './trainer.js';

export interface TrainJob {
  key: string;
  train: Dataset;
  val: Dataset | null;
  numClasses: number;
  options: Omit<TrainOptions, 'init'>;
  init: NetData | null;
}

export interface TrainJobResult {
  key: string;
  net: NetData;
  history: EpochStat[];
  bestEpoch: number;
  epochsRun: number;
  ms: number;
  warmStart: boolean;
}

export function runJob(job: TrainJob): TrainJobResult {
  const r = train(job.train, job.val, job.numClasses, { ...job.options, init: job.init ? fromNetData(job.init) : null });
  return { key: job.key, net: toNetData(r.net), history: r.history, bestEpoch: r.bestEpoch, epochsRun: r.epochsRun, ms: r.ms, warmStart: r.warmStart };
}
