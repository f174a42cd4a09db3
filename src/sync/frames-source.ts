// Where push gets its frames bodies from: the outbox read on the main thread (PushReader.framesBody),
// or the same reader run in a worker thread with a connection of its own (frames-worker.ts).
//
// Why a worker: a push of 50k x 3 KB on one thread spent ~1.1 s of CPU reading pages (SQLite,
// then a Buffer per payload and the copy into the page's chunk) in the same thread as the socket
// writes, the ack handling and the marking of acks (~0.45 s): the thread was the bound, the
// second core idle. In the worker the reading runs beside the rest, and each page's chunk comes
// over as a transferred ArrayBuffer (no copy). The worker reads a whole batch without waiting
// for the socket; memory stays bounded by the batches in flight (push.ts IN_FLIGHT).
//
// Where no worker can be started (the single-file binary: src/sea/frames-worker-start.ts), the
// reader runs in the main thread as before. What goes on the wire is the same either way.
import type { Worker } from 'node:worker_threads';
import type { EdgeConfig } from '../store/home.js';
import { type FramesSent, type PushReader, newFramesSent } from './outbox-reader.js';

/** Does the upload policy let this task's payload bytes leave the device? */
export function uploadAllows(upload: EdgeConfig['upload'], task: string): boolean {
  return (upload.per_task?.[task] ?? upload.payload) === 'raw';
}

export interface FramesSource {
  /**
   * The frames body of one attempt at the batch after `after` (PushReader.framesBody's
   * arguments). `sent` is filled by the time `complete` is called, once the whole body is read
   * (from the worker: possibly before the body is sent, so the next batch can start reading).
   */
  body(after: string, until: string | null, limit: number, maxBytes: number, sent: FramesSent, complete: () => void): Iterable<Buffer> | AsyncIterable<Buffer>;
  close(): Promise<void>;
}

/** The reader in this thread. */
export function inThreadFrames(reader: PushReader, allowed: (task: string) => boolean): FramesSource {
  return {
    *body(after, until, limit, maxBytes, sent, complete) {
      yield* reader.framesBody(after, until, limit, maxBytes, allowed, sent);
      complete();
    },
    close: () => Promise.resolve(),
  };
}

/**
 * The worker once it is ready, the main thread until then: starting a thread and loading the
 * reader's modules in it took 80-350 ms (quiet to loaded machine), which the first batch would
 * otherwise wait for. Both write the same bytes (test/push-read-thread.test.ts).
 *
 * A worker that dies (killed, out of memory, a crash in its connection) is not restarted: the
 * rest of the run reads in the main thread, as the run would have without the thread, and
 * `warn` is told once. The body it was reading: if none of it was handed on yet, the main
 * thread reads it instead; if some was, the request fails with a retryable error
 * (ReaderThreadLost) and its retry reads the whole body here. Not spliced (the rest read here
 * after the bytes the worker sent): a sample evicted in between would shift the rows, and the
 * two halves would not make one body.
 */
export function workerWhenReady(worker: WorkerFrames, here: FramesSource, warn: (line: string) => void = () => {}): FramesSource {
  let warned = false;
  const fallBack = () => {
    if (!warned) warn(`${worker.failed!.message}; the rest of this push reads the outbox in the main thread`);
    warned = true;
    return here;
  };
  return {
    body(after, until, limit, maxBytes, sent, complete) {
      if (!worker.ready) return here.body(after, until, limit, maxBytes, sent, complete);
      if (worker.failed) return fallBack().body(after, until, limit, maxBytes, sent, complete);
      const fromWorker = worker.body(after, until, limit, maxBytes, sent, complete);
      return (async function* () {
        let handedOn = false;
        try {
          for await (const chunk of fromWorker) {
            handedOn = true;
            yield chunk;
          }
        } catch (e) {
          if (!(e instanceof ReaderThreadLost) || handedOn) throw e;
          Object.assign(sent, newFramesSent()); // nothing of the worker's attempt went out
          yield* fallBack().body(after, until, limit, maxBytes, sent, complete);
        }
      })();
    },
    close: () => Promise.all([worker.close(), here.close()]).then(() => {}),
  };
}

/**
 * The reader thread died under a body (not a reading error it reported: those fail in any
 * thread). Retryable (http.ts RETRYABLE_CODES): the request's retry reads the body again, in
 * the main thread (workerWhenReady).
 */
export class ReaderThreadLost extends Error {
  readonly code = 'ERR_PUSH_READER_THREAD_LOST';
}

/** What the worker is given at its start (frames-worker.ts). */
export interface FramesWorkerData {
  dbPath: string;
  blobsDir: string;
  tmpDir: string;
  upload: EdgeConfig['upload'];
  /** PushReader.lastRowid of the run */
  lastRowid: number;
}

export interface FramesRequest {
  id: number;
  after: string;
  until: string | null;
  limit: number;
  maxBytes: number;
}

/** From the worker: a chunk of request `id`'s body, its end (what it sent), or its failure; id 0: it is ready. */
export type FramesReply = { id: number; chunk: Uint8Array } | { id: number; done: FramesSent } | { id: number; error: string } | { id: 0; ready: true };

/** The reader in a worker thread (started by frames-worker-start.ts). */
export class WorkerFrames implements FramesSource {
  private seq = 0;
  private readonly handlers = new Map<number, (m: Exclude<FramesReply, { ready: true }> | { id: number; fatal: Error }) => void>();
  private failure: Error | null = null;
  /** the worker has opened the database (its first body will not wait for its start-up) */
  ready = false;

  /** why the worker can read no more (it died, or was closed); null while it can */
  get failed(): Error | null {
    return this.failure;
  }

  constructor(private readonly worker: Worker) {
    worker.on('message', (m: FramesReply) => {
      if ('ready' in m) this.ready = true;
      else this.handlers.get(m.id)?.(m);
    });
    // a worker that dies fails every body in progress (their requests fail: re-sent next run)
    const fail = (e: Error) => {
      this.failure ??= e;
      for (const [id, h] of this.handlers) h({ id, fatal: this.failure });
    };
    worker.on('error', (e) => fail(new ReaderThreadLost(`push reader thread failed: ${e.message}`)));
    worker.on('exit', (code) => fail(new ReaderThreadLost(`push reader thread exited (code ${code})`)));
  }

  body(after: string, until: string | null, limit: number, maxBytes: number, sent: FramesSent, complete: () => void): AsyncIterable<Buffer> {
    const id = ++this.seq;
    const queue: Buffer[] = [];
    let done = false;
    let error: Error | null = this.failure;
    let wake: (() => void) | null = null;
    if (!error) {
      this.handlers.set(id, (m) => {
        if ('chunk' in m) queue.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
        else {
          this.handlers.delete(id);
          if ('done' in m) {
            Object.assign(sent, m.done);
            done = true;
            complete();
          } else error = 'fatal' in m ? m.fatal : new Error(m.error);
        }
        wake?.();
      });
      this.worker.postMessage({ id, after, until, limit, maxBytes } satisfies FramesRequest);
    }
    return (async function* () {
      for (;;) {
        if (queue.length) yield queue.shift()!;
        else if (error) throw error;
        else if (done) return;
        else await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    })();
  }

  async close(): Promise<void> {
    this.handlers.clear();
    this.failure ??= new Error('push reader thread closed');
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}
