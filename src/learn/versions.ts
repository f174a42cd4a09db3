// What the KB knows over time: published versions (which models changed), the diff of two
// versions, and each task's learning history per round (kept in the task record by round.ts).
import { UsageError } from '../errors.js';
import type { TaskIndex } from '../format/index-manifest.js';
import type { PairedResult } from './paired.js';
import type { CounterStore, ModelStore, VersionStore } from '../kb/store.js';

async function readIndex(store: VersionStore & ModelStore & CounterStore, n: number): Promise<TaskIndex> {
  const f = await store.readVersionIndex(n);
  if (!f) throw new UsageError(`KB version ${n} does not exist (see "sedna-ll kb versions")`);
  return JSON.parse(f.bytes.toString('utf8')) as TaskIndex;
}

export interface VersionRow {
  version: number;
  parent: number | null;
  created_at: string;
  channel: string | null;
  tasks: number;
  /** tasks whose model differs from the parent version's (new tasks included) */
  changed: string[];
  round: number | null;
}

export async function listVersions(store: VersionStore & ModelStore & CounterStore): Promise<VersionRow[]> {
  const out: VersionRow[] = [];
  let prev: TaskIndex | null = null;
  for (const v of (await store.listVersions()).sort((a, b) => a.n - b.n)) {
    const idx = await readIndex(store, v.n);
    const before = new Map((prev && v.parent === prev.version ? prev : v.parent ? await readIndex(store, v.parent) : null)?.tasks.map((t) => [t.id, t.model.sha256]) ?? []);
    out.push({
      version: v.n,
      parent: v.parent,
      created_at: new Date(v.created_at).toISOString(),
      channel: v.channel,
      tasks: v.tasks,
      changed: idx.tasks.filter((t) => before.get(t.id) !== t.model.sha256).map((t) => t.id),
      round: typeof idx.notes?.round === 'number' ? idx.notes.round : null,
    });
    prev = idx;
  }
  return out;
}

export interface TaskDiff {
  task: string;
  change: 'added' | 'removed' | 'model' | 'metadata' | 'same';
  sha_a: string | null;
  sha_b: string | null;
  accuracy_a: number | null;
  accuracy_b: number | null;
  parent_b: string | null;
}

export async function diffVersions(store: VersionStore & ModelStore & CounterStore, a: number, b: number) {
  const A = await readIndex(store, a);
  const B = await readIndex(store, b);
  const ta = new Map(A.tasks.map((t) => [t.id, t]));
  const tb = new Map(B.tasks.map((t) => [t.id, t]));
  const ids = [...new Set([...ta.keys(), ...tb.keys()])].sort();
  const tasks: TaskDiff[] = ids.map((id) => {
    const x = ta.get(id);
    const y = tb.get(id);
    const change: TaskDiff['change'] = !x ? 'added' : !y ? 'removed' : x.model.sha256 !== y.model.sha256 ? 'model' : JSON.stringify({ ...x, metrics: 0 }) !== JSON.stringify({ ...y, metrics: 0 }) || JSON.stringify(x.metrics) !== JSON.stringify(y.metrics) ? 'metadata' : 'same';
    return { task: id, change, sha_a: x?.model.sha256 ?? null, sha_b: y?.model.sha256 ?? null, accuracy_a: x?.metrics?.accuracy ?? null, accuracy_b: y?.metrics?.accuracy ?? null, parent_b: y?.parent ?? null };
  });
  return {
    a,
    b,
    added: tasks.filter((t) => t.change === 'added').map((t) => t.task),
    removed: tasks.filter((t) => t.change === 'removed').map((t) => t.task),
    changed: tasks.filter((t) => t.change === 'model').map((t) => t.task),
    same: tasks.filter((t) => t.change === 'same' || t.change === 'metadata').map((t) => t.task),
    allocation_changed: JSON.stringify(A.allocation) !== JSON.stringify(B.allocation),
    tasks,
  };
}

export interface HistoryRow {
  round: number;
  task: string;
  kind: string;
  parent: string | null;
  metric: string;
  before: number | null;
  after: number | null;
  accepted: boolean;
  /** accept | keep | reject (the paired gate), pinned (a site kept on its previous model); absent before the paired gate */
  verdict?: string;
  /** the paired test of the decision */
  test?: PairedResult | null;
  reason: string;
  train: number;
  heldout: number;
  epochs: number | null;
  train_ms: number;
}

export async function taskHistory(store: VersionStore & ModelStore & CounterStore): Promise<HistoryRow[]> {
  const rows: HistoryRow[] = [];
  for (const t of await store.listTasks({ includeRetired: true })) {
    for (const h of ((t.extra?.history as Omit<HistoryRow, 'task'>[]) ?? [])) rows.push({ ...h, task: t.id });
  }
  // rejected new tasks have no record; their rejections live in the event log
  for (const e of await store.listEvents({ kind: 'learn.reject', limit: 100000 })) {
    const d = e.detail as Record<string, unknown>;
    if (d.kind !== 'new' || rows.some((r) => r.task === d.task && r.round === d.round)) continue;
    rows.push({ round: d.round as number, task: d.task as string, kind: 'new', parent: null, metric: d.metric as string, before: (d.baseline as number) ?? null, after: d.candidate as number, accepted: false, verdict: (d.verdict as string) ?? 'reject', test: (d.test as PairedResult) ?? null, reason: d.reason as string, train: 0, heldout: 0, epochs: null, train_ms: 0 });
  }
  return rows.sort((a, b) => a.round - b.round || a.task.localeCompare(b.task, 'en', { numeric: true }));
}
