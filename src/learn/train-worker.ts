// Worker-thread entry of the training pool: runs one job per message and posts the result back.
import { parentPort } from 'node:worker_threads';
import { resultBuffers, runJob, type TrainJob } from './train-job.js';

parentPort!.on('message', (job: TrainJob) => {
  try {
    const r = runJob(job);
    parentPort!.postMessage({ ok: true, result: r }, resultBuffers(r));
  } catch (e) {
    parentPort!.postMessage({ ok: false, key: job.key, error: (e as Error).message });
  }
});
