// Trains several task models in parallel on worker threads (a pool of size min(jobs, cores)).
// Each job's result depends only on the job (data, options, seed), never on which worker ran
// it or in which order jobs finished, and results come back in job order: deterministic
// regardless of scheduling. A single job (or one core) runs inline without a worker.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { runJob, type TrainJob, type TrainJobResult } from './train-job.js';
import { startTrainWorker } from './worker-start.js';

export async function trainAll(jobs: TrainJob[], opts: { threads?: number } = {}): Promise<TrainJobResult[]> {
  const size = Math.max(1, Math.min(jobs.length, opts.threads ?? availableParallelism()));
  if (size === 1) return jobs.map(runJob);
  const results: TrainJobResult[] = new Array(jobs.length);
  let next = 0;
  const workers: Worker[] = [];
  try {
    await Promise.all(
      Array.from({ length: size }, () => {
        const w = startTrainWorker();
        workers.push(w);
        return new Promise<void>((resolve, reject) => {
          let current = -1;
          const feed = () => {
            if (next >= jobs.length) return resolve();
            current = next++;
            w.postMessage(jobs[current]);
          };
          w.on('message', (m: { ok: boolean; result?: TrainJobResult; error?: string; key?: string }) => {
            if (!m.ok) return reject(new Error(`training ${jobs[current].key}: ${m.error}`));
            results[current] = m.result!;
            feed();
          });
          w.on('error', reject);
          w.on('exit', (code) => {
            if (code !== 0) reject(new Error(`training worker exited with code ${code}`));
          });
          feed();
        });
      }),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}
