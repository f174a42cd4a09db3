// Starts the push's reader thread (frames-worker.ts). The single-file executables swap this
// module for src/sea/frames-worker-start.ts (no worker there: the reader runs in the main thread).
import { Worker } from 'node:worker_threads';
import type { FramesWorkerData } from './frames-source.js';

export function startFramesWorker(data: FramesWorkerData): Worker | null {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./frames-worker.js', import.meta.url), { workerData: data });
  // running from sources under tsx (tests, benchmarks): register tsx inside the worker first
  const url = new URL('./frames-worker.ts', import.meta.url).href;
  return new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); });`, { eval: true, workerData: data });
}
