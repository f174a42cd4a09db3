// Held-out split of a learning round (pure). A sample's split is sticky: once given it never
// changes, so every task's held-out set only grows and is never trained on, by any task. Fresh
// labelled samples of a bucket fill its held-out share in the order of a stable rank.
import type { LoadedSample } from './dataset.js';

export type Split = 'train' | 'heldout';

export interface AssignRow {
  id: string;
  assigned_task: string | null;
  split: Split | null;
}

export interface SplitInput {
  samples: LoadedSample[];
  /** the bucket whose share is filled (samples without one share the '' bucket) */
  bucketOf: (s: LoadedSample) => string;
  /** task id recorded for the sample (null: served by the fallback) */
  taskOf: (s: LoadedSample) => string | null;
  fraction: number;
  /** stable rank of a fresh sample: lower ranks are held out first */
  rank: (s: LoadedSample) => number;
}

export function splitHeldout(i: SplitInput): { split: Map<LoadedSample, Split>; assign: AssignRow[] } {
  const split = new Map<LoadedSample, Split>();
  const buckets = new Map<string, LoadedSample[]>();
  for (const s of i.samples) {
    if (s.rec.label === null) continue;
    const k = i.bucketOf(s);
    if (!buckets.has(k)) buckets.set(k, []);
    buckets.get(k)!.push(s);
  }
  for (const members of buckets.values()) {
    let held = 0;
    const fresh: LoadedSample[] = [];
    for (const s of members) {
      if (s.rec.split) {
        split.set(s, s.rec.split);
        if (s.rec.split === 'heldout') held++;
      } else fresh.push(s);
    }
    const want = Math.max(members.length >= 2 ? 1 : 0, Math.round(members.length * i.fraction));
    const ranked = fresh.map((s) => ({ s, r: i.rank(s) }));
    ranked.sort((a, b) => a.r - b.r || (a.s.rec.id < b.s.rec.id ? -1 : a.s.rec.id > b.s.rec.id ? 1 : 0));
    for (const { s } of ranked) split.set(s, held < want ? (held++, 'heldout') : 'train');
  }
  const assign: AssignRow[] = [];
  for (const s of i.samples) {
    const t = i.taskOf(s);
    const sp = split.get(s) ?? null;
    if (t !== s.rec.assigned_task || sp !== s.rec.split) assign.push({ id: s.rec.id, assigned_task: t, split: sp });
  }
  return { split, assign };
}
