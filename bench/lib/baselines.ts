// Baselines of the lifelong benchmark, run with the same trainer on the same labelled data
// sedna-ll's knowledge base received in each round:
//   naive   one model, fine-tuned on each round's data (shows catastrophic forgetting)
//   replay  one model plus a reservoir-sampled replay buffer (experience replay, Chaudhry et
//           al. 2019 "On Tiny Episodic Memories"): each round trains on the new data plus an
//           equal-sized draw from the buffer, then the buffer takes the new data by reservoir
//           sampling (every sample seen so far has the same chance to be in it)
//   joint   one model trained multi-epoch on all rounds' data at once (the upper bound; only
//           the final accuracies exist, there is no sequence)
import { mulberry32 } from '../../src/random.js';
import { accuracy } from './metrics.js';
import { concatSamples, DIM, selectSamples, type Samples } from './mnist.js';
import type { Trainer } from './trainer.js';

export interface BaselineRun {
  name: string;
  /** R[i][j] after round i on task j (joint: one row) */
  R: number[][];
  /** ms spent training per round */
  trainMs: number[];
  notes: string;
}

/** Accuracy of a model on each task's test set. */
export function evalRow<M>(trainer: Trainer<M>, model: M, tests: Samples[]): number[] {
  return tests.map((t) => accuracy(trainer.predict(model, t.x, t.n), t.y));
}

/** GEM's b: accuracy of a randomly initialised model on each task. */
export function randomInitRow<M>(trainer: Trainer<M>, tests: Samples[], seed: number): number[] {
  return evalRow(trainer, trainer.fresh(seed), tests);
}

export function runNaive<M>(trainer: Trainer<M>, rounds: Samples[], tests: Samples[], seed: number): BaselineRun {
  let model: M | null = null;
  const R: number[][] = [];
  const trainMs: number[] = [];
  rounds.forEach((data, i) => {
    const t0 = performance.now();
    model = trainer.fit(model, data, seed + i);
    trainMs.push(performance.now() - t0);
    R.push(evalRow(trainer, model, tests));
  });
  return { name: 'naive fine-tuning', R, trainMs, notes: 'one model, warm-started from the previous round and trained on this round\'s data only' };
}

/** Reservoir sampling buffer (Vitter's algorithm R) over a stream of samples. */
export class Reservoir {
  readonly x: Float32Array;
  readonly y: Uint8Array;
  size = 0;
  seen = 0;
  private readonly rand: () => number;
  constructor(
    readonly capacity: number,
    seed: number,
  ) {
    this.x = new Float32Array(capacity * DIM);
    this.y = new Uint8Array(capacity);
    this.rand = mulberry32(seed);
  }
  add(s: Samples): void {
    for (let i = 0; i < s.n; i++) {
      let slot = -1;
      if (this.size < this.capacity) slot = this.size++;
      else {
        const j = Math.floor(this.rand() * (this.seen + 1));
        if (j < this.capacity) slot = j;
      }
      this.seen++;
      if (slot >= 0) {
        this.x.set(s.x.subarray(i * DIM, (i + 1) * DIM), slot * DIM);
        this.y[slot] = s.y[i];
      }
    }
  }
  /** up to n distinct buffered samples, drawn uniformly */
  draw(n: number): Samples {
    const k = Math.min(n, this.size);
    const idx = Array.from({ length: this.size }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.rand() * (this.size - i));
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    return selectSamples({ n: this.size, x: this.x, y: this.y }, idx.slice(0, k));
  }
}

export function runReplay<M>(trainer: Trainer<M>, rounds: Samples[], tests: Samples[], seed: number, capacity: number): BaselineRun {
  let model: M | null = null;
  const buf = new Reservoir(capacity, seed ^ 0x2545f491);
  const R: number[][] = [];
  const trainMs: number[] = [];
  rounds.forEach((data, i) => {
    const t0 = performance.now();
    const mixed = buf.size > 0 ? concatSamples([data, buf.draw(data.n)]) : data;
    model = trainer.fit(model, mixed, seed + i);
    buf.add(data);
    trainMs.push(performance.now() - t0);
    R.push(evalRow(trainer, model, tests));
  });
  return {
    name: 'reservoir replay',
    R,
    trainMs,
    notes: `one model; each round trains on the new data plus as many samples drawn from a ${capacity}-sample reservoir buffer of all earlier data`,
  };
}

export function runJoint<M>(trainer: Trainer<M>, rounds: Samples[], tests: Samples[], seed: number): BaselineRun {
  const t0 = performance.now();
  const model = trainer.fit(null, concatSamples(rounds), seed);
  const ms = performance.now() - t0;
  return { name: 'joint (upper bound)', R: [evalRow(trainer, model, tests)], trainMs: [ms], notes: 'one model trained from scratch, multi-epoch with early stopping, on the union of every round\'s data' };
}

/** Run baselines side by side on worker threads (one each); results in the order asked. */
export async function runBaselinesParallel(job: Omit<import('./baseline-worker.js').BaselineJob, 'kind'>, kinds: ('naive' | 'replay' | 'joint')[], log: (m: string) => void): Promise<BaselineRun[]> {
  const { Worker } = await import('node:worker_threads');
  const url = new URL('./baseline-worker.ts', import.meta.url).href;
  return Promise.all(
    kinds.map(
      (kind) =>
        new Promise<BaselineRun>((resolve, reject) => {
          const t0 = performance.now();
          // the benchmark runs from sources under tsx: register it inside the worker first
          const w = new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); });`, { eval: true });
          w.once('message', (m: { ok: boolean; result?: BaselineRun; error?: string }) => {
            void w.terminate();
            if (!m.ok) return reject(new Error(`baseline ${kind}: ${m.error}`));
            log(`baseline ${kind} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
            resolve(m.result!);
          });
          w.once('error', reject);
          w.postMessage({ ...job, kind });
        }),
    ),
  );
}
