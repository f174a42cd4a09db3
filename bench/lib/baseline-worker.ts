// Worker thread running one baseline (bench/lib/baselines.ts), so naive, replay and joint run
// side by side instead of one after the other. Input and output are plain structured-clone data.
import { parentPort } from 'node:worker_threads';
import { runJoint, runNaive, runReplay, type BaselineRun } from './baselines.js';
import type { Samples } from './mnist.js';
import { denseTrainer, type DenseTrainerOptions } from './trainer.js';

export interface BaselineJob {
  kind: 'naive' | 'replay' | 'joint';
  rounds: Samples[];
  tests: Samples[];
  seed: number;
  replayBuffer: number;
  trainer: DenseTrainerOptions;
}

parentPort!.once('message', (job: BaselineJob) => {
  try {
    const trainer = denseTrainer(job.trainer);
    let r: BaselineRun;
    if (job.kind === 'naive') r = runNaive(trainer, job.rounds, job.tests, job.seed);
    else if (job.kind === 'replay') r = runReplay(trainer, job.rounds, job.tests, job.seed, job.replayBuffer);
    else r = runJoint(trainer, job.rounds, job.tests, job.seed);
    parentPort!.postMessage({ ok: true, result: r });
  } catch (e) {
    parentPort!.postMessage({ ok: false, error: (e as Error).stack ?? String(e) });
  }
});
