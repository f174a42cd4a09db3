// Single-file executables only (substituted for src/learn/worker-start.ts): the training
// worker is bundled separately (train-worker.cjs, a self-contained CommonJS script) and
// embedded as an asset; a worker started with eval runs it from memory.
import { getAsset } from 'node:sea';
import { Worker } from 'node:worker_threads';

let source: string | null = null;

export function startTrainWorker(): Worker {
  source ??= getAsset('train-worker.cjs', 'utf8');
  return new Worker(source, { eval: true });
}
