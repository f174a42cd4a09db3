// Concurrent `serve` requests share work: while one batch runs (the onnxruntime run of each
// task, then ONE outbox transaction for everything it logs), the requests that arrive queue up,
// and the next batch takes them all at once. No timer, no waiting for company: a request that
// finds the pipeline idle runs at the end of the event-loop turn, with whatever else arrived in it,
// so one client sees no timer's latency; under load,
// 8 or 64 clients pay for one model run and one commit (its fsync) per batch, not per request.
//
// A batch is one prepared window over the requests' items concatenated (pipeline.ts groups
// them per task, one session.run per task); its outcomes are cut back per request by item
// counts. Requests of different runtime states (a version switch in between) never share a
// batch. A failure of the batch (model, outbox) fails each of its requests with that error.
//
// With a `durable` hook (serve with logging: store/wal-durability.ts), the requests of a batch
// that have a sample reported logged are answered once its commit is on stable storage (the
// others at once); the fsync runs off the event loop (or on it, while the disk is fast), which
// keeps reading requests meanwhile, and the next batch (all of them) starts when it is done.
import { ReportedError } from '../errors.js';
import type { Outcome, Pipeline } from './pipeline.js';
import type { Item } from './sample.js';
import type { RuntimeState } from './state.js';

/**
 * The batcher's `durable` hook for a serving connection: the WAL's fdatasync whenever logging
 * set it up (its connection commits with synchronous=NORMAL, so nothing else makes a commit
 * durable), with the checkpointer told of each commit when there is one. The checkpointer is
 * optional: the single-file binary has none and keeps SQLite's automatic checkpoints, and its
 * answers must wait for the fdatasync all the same.
 */
export function commitDurability(
  wal: { durable(): Promise<void> } | null,
  checkpointer: { committed(): void } | null,
): (() => Promise<void>) | null {
  if (!wal) return null;
  return () => {
    checkpointer?.committed();
    return wal.durable();
  };
}

/** most items in one batch (the JSON array of one request may bring more: it runs alone) */
const MAX_BATCH_ITEMS = 512;

interface Waiting {
  state: RuntimeState;
  items: Item[];
  resolve: (r: Outcome[]) => void;
  reject: (e: unknown) => void;
}

export class ServeBatcher {
  private queue: Waiting[] = [];
  private running = false;
  /** batches run and requests in them (for /metrics and the bench) */
  batches = 0;
  batchedRequests = 0;

  constructor(
    private readonly pipeline: Pipeline,
    /** resolves once everything committed so far is durable; null: commits are durable when they return */
    private readonly durable: (() => Promise<void>) | null = null,
  ) {}

  /** This request's outcomes, in item order, once its batch committed. */
  run(state: RuntimeState, items: Item[]): Promise<Outcome[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ state, items, resolve, reject });
      if (!this.running) {
        // start at the end of this event-loop turn, not now: the other requests whose bytes
        // arrived in the same poll phase join this batch (one model run, one commit, one fsync
        // instead of one each). No timer: a lone request waits only for the turn to end.
        this.running = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length) {
        const first = this.queue[0];
        let n = 0;
        let k = 0;
        while (k < this.queue.length && this.queue[k].state === first.state && (k === 0 || n + this.queue[k].items.length <= MAX_BATCH_ITEMS)) n += this.queue[k++].items.length;
        const batch = this.queue.splice(0, k);
        this.batches++;
        this.batchedRequests += batch.length;
        try {
          const items = batch.length === 1 ? batch[0].items : batch.flatMap((w) => w.items);
          const r = await this.pipeline.run(first.state, items);
          // each request's outcomes, cut back by item counts
          const outs: Outcome[][] = [];
          let at = 0;
          for (const w of batch) {
            outs.push(r.outcomes.slice(at, at + w.items.length));
            at += w.items.length;
          }
          // nothing logged: nothing to wait for (the lines say "logged": false)
          if (!this.durable || r.logged === 0) {
            for (let j = 0; j < batch.length; j++) batch[j].resolve(outs[j]);
            continue;
          }
          // only the requests with a sample reported logged wait for the fsync; the others (no
          // hard or unseen sample of theirs, or evicted at once by the quota) are answered now:
          // on a slow disk an fsync on the thread pool takes tens of ms they need not wait for
          const wait: number[] = [];
          for (let j = 0; j < batch.length; j++) {
            if (outs[j].some((oc) => oc.error === undefined && oc.logged)) wait.push(j);
            else batch[j].resolve(outs[j]);
          }
          const d = this.durable();
          d.then(
            () => {
              for (const j of wait) batch[j].resolve(outs[j]);
            },
            (e) => {
              for (const j of wait) batch[j].reject(new ReportedError(`cannot log samples to the outbox: ${(e as Error).message}; nothing of these samples was reported logged`));
            },
          );
          // the next batch waits for this fsync (the event loop does not: it keeps reading
          // requests into the queue): everything that arrived meanwhile then shares one
          // commit and one fsync. Committing each small batch at once measured more CPU per
          // request and no lower latency: its fsync would wait for this one anyway.
          await d.catch(() => {});
        } catch (e) {
          for (const w of batch) w.reject(e);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
