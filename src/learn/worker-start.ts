// Starts one training worker thread. The single-file executables swap this module for
// src/sea/worker-start.ts (their worker code is an embedded asset, not a file).
import { Worker } from 'node:worker_threads';

export function startTrainWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./train-worker.js', import.meta.url));
  // running from sources under tsx (tests, benchmarks): register tsx inside the worker first
  const url = new URL('./train-worker.ts', import.meta.url).href;
  return new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); });`, { eval: true });
}
