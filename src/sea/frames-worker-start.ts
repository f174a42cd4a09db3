// Single-file executables only (substituted for src/sync/frames-worker-start.ts): the push reads
// the outbox in the main thread (frames-source.ts inThreadFrames). A worker here would need its
// own embedded bundle and the SQLite addon loaded in it, as the training worker has; not built.
import type { Worker } from 'node:worker_threads';
import type { FramesWorkerData } from '../sync/frames-source.js';

export function startFramesWorker(_data: FramesWorkerData): Worker | null {
  return null;
}
