// Task allocation (Sedna TaskAllocationByDataAttr + nearest centroid) per the index's
// `allocation`. Unlike Sedna, an attribute value that names no task is never sent to task 0:
// it goes to the fallback task (normally "global") and the sample is flagged unseen ("attr").
//
// Pure logic that edge and cloud must agree on, hence in format: the edge pipeline
// (runtime/state.ts) and `kb eval` (learn/eval.ts) allocate with this one table, so an
// evaluation scores each sample with the task model the edge would run it through.
import { BadRecordError } from '../errors.js';
import { attrKey } from './attrs.js';
import type { TaskEntry, TaskIndex } from './index-manifest.js';

export interface Allocation {
  task: TaskEntry;
  /** the sample's attribute key named no task (unseen reason "attr") */
  unknownAttr: boolean;
  /** how the task was chosen: explicit id, attribute key, nearest centroid, fallback */
  by: 'explicit' | 'attr' | 'centroid' | 'fallback';
  /**
   * nearest-centroid allocation found the sample outside the nearest task's extent (its
   * calibrated radius and distance threshold): the fallback serves it (when there is one) and
   * the "distance" unseen method fires with this distance
   */
  farDistance?: number;
}

/**
 * The sample's attribute key names no task and there is no fallback: no model can serve it, but
 * it is the most valuable sample of all (a new site): infer prints and logs it with task null.
 */
export class NoTaskForAttrError extends BadRecordError {}

/** The index compiled for lookups: built once per RuntimeState, read per sample. */
export class TaskTable {
  readonly byId = new Map<string, TaskEntry>();
  readonly byKey = new Map<string, TaskEntry>();
  readonly withCentroid: TaskEntry[];
  readonly fallback: TaskEntry | null;

  constructor(readonly index: TaskIndex) {
    const keys = index.allocation.attr_keys;
    for (const t of index.tasks) {
      this.byId.set(t.id, t);
      const k = attrKey(t.attrs, keys);
      if (k !== null && !this.byKey.has(k)) this.byKey.set(k, t);
    }
    this.withCentroid = index.tasks.filter((t) => Array.isArray(t.centroid) && t.centroid.length > 0);
    const fb = index.allocation.fallback;
    this.fallback = fb !== null ? (this.byId.get(fb) ?? null) : null;
  }

  get usesCentroids(): boolean {
    return this.index.allocation.method !== 'attr' && this.withCentroid.length > 0;
  }

  /**
   * Allocate one sample. `x(t)` gives the sample in task t's input space (after its
   * preprocessing), needed only for centroid allocation. Throws a BadRecordError naming the
   * reason when no task can take the sample.
   */
  allocate(attrs: Record<string, string>, explicit: string | null, x: (t: TaskEntry) => Float32Array): Allocation {
    if (explicit !== null) {
      const t = this.byId.get(explicit);
      if (!t) throw new BadRecordError(`unknown task "${explicit}"`);
      return { task: t, unknownAttr: false, by: 'explicit' };
    }
    const { method, attr_keys } = this.index.allocation;
    let unknownAttr = false;
    if (method !== 'centroid') {
      const key = attrKey(attrs, attr_keys);
      if (key !== null) {
        const t = this.byKey.get(key);
        if (t) return { task: t, unknownAttr: false, by: 'attr' };
        unknownAttr = true;
        if (this.fallback) return { task: this.fallback, unknownAttr, by: 'fallback' };
      }
    }
    if (method !== 'attr' && this.withCentroid.length > 0) {
      const { task, d2 } = this.nearest(x);
      const d = Math.sqrt(d2);
      // the nearest task's extent: the larger of its radius and its distance threshold, so a
      // refused sample always also fires the distance method
      const extent = Math.max(task.radius ?? Infinity, task.thresholds?.distance ?? -Infinity);
      if (!(d > extent)) return { task, unknownAttr, by: 'centroid' };
      return { task: this.fallback ?? task, unknownAttr, by: this.fallback ? 'fallback' : 'centroid', farDistance: d };
    }
    if (this.fallback) return { task: this.fallback, unknownAttr, by: 'fallback' };
    if (unknownAttr) throw new NoTaskForAttrError(`no task for ${attr_keys.map((k) => `${k}=${attrs[k]}`).join(',')} and no fallback task`);
    throw new BadRecordError(`no task: the sample has no ${attr_keys.join('/') || 'attribute'} and the index has no ${method === 'attr' ? 'fallback task' : 'centroids or fallback task'}`);
  }

  /** Nearest centroid among the tasks whose model can take this sample at all. */
  private nearest(x: (t: TaskEntry) => Float32Array): { task: TaskEntry; d2: number } {
    let best: TaskEntry | null = null;
    let bestD = Infinity;
    let firstError: Error | null = null;
    for (const t of this.withCentroid) {
      let d: number;
      try {
        d = sqDistance(x(t), t.centroid!);
      } catch (e) {
        firstError ??= e as Error; // e.g. a task whose model takes another feature count
        continue;
      }
      if (d < bestD) {
        bestD = d;
        best = t;
      }
    }
    if (!best) throw firstError ?? new Error('no task centroid');
    return { task: best, d2: bestD };
  }
}

/** Squared euclidean distance; a dimension mismatch is a broken index, never a silent 0. */
export function sqDistance(a: ArrayLike<number>, c: ArrayLike<number>): number {
  if (a.length !== c.length) throw new Error(`centroid has ${c.length} dims but the sample has ${a.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - c[i];
    s += d * d;
  }
  return s;
}
