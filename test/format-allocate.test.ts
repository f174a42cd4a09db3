// Task allocation is one table (src/format/allocate.ts) for the edge pipeline and `kb eval`.
// `kb eval` had its own copy, which sent a sample that fits no task's centroid to the first
// centroid task instead of refusing it; the shared table refuses it, as the edge does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TaskTable } from '../src/format/allocate.js';
import type { TaskEntry, TaskIndex } from '../src/format/index-manifest.js';

function task(id: string, centroid: number[]): TaskEntry {
  const spec = (name: string, d: number) => ({ name, shape: ['N', d], dtype: 'float32' as const });
  return {
    id,
    attrs: {},
    centroid,
    model: { sha256: 'a'.repeat(64), file: 'm', size: 1, inputs: [spec('input', centroid.length)], outputs: [spec('probabilities', 2)], labels: ['x', 'y'], preprocessing: { kind: 'vector' }, output_kind: 'probabilities' },
  };
}

const index = (tasks: TaskEntry[]): TaskIndex => ({
  format: 'sedna-ll/index@1',
  version: 1,
  created_at: '',
  parent: null,
  origin: 'kb',
  tasks,
  allocation: { method: 'centroid', attr_keys: [], space: 'input', fallback: null },
  unseen: { methods: ['attr'], combine: 'any' },
  hard_examples: [],
});

test('a sample that fits no task centroid is refused, never sent to the first centroid task', () => {
  const tt = new TaskTable(index([task('two', [0, 0]), task('three', [1, 1, 1])]));
  const x = Float32Array.from([5, 5, 5, 5]);
  assert.throws(() => tt.allocate({}, null, () => x), /centroid has 2 dims but the sample has 4/);
  assert.equal(tt.allocate({}, null, () => Float32Array.from([1, 1, 0.9])).task.id, 'three');
});

test('method picks the rule: attr ignores centroids, centroid ignores attributes; first task of a key and of a tie wins; d = extent is inside', () => {
  const x = (v: number[]) => () => Float32Array.from(v);
  const withAttrs = (t: TaskEntry, attrs: Record<string, string>, more: Partial<TaskEntry> = {}): TaskEntry => ({ ...t, attrs, ...more });
  const a = withAttrs(task('a', [0, 0]), { site: 'a' }, { radius: 2 });
  const a2 = withAttrs(task('a2', [0, 0]), { site: 'a' });
  const b = withAttrs(task('b', [10, 0]), { site: 'b' });
  const g = withAttrs(task('global', []), {});
  const idx = (tasks: TaskEntry[], method: 'attr' | 'centroid' | 'attr+centroid', fallback: string | null) => ({
    ...index(tasks),
    allocation: { method, attr_keys: ['site'], space: 'input' as const, fallback },
  });
  // attr: the sample's site decides even though its features sit on b's centroid
  let tt = new TaskTable(idx([a, a2, b, g], 'attr', 'global'));
  assert.deepEqual(((r) => [r.task.id, r.by])(tt.allocate({ site: 'a' }, null, x([10, 0]))), ['a', 'attr'], 'first task of a key');
  assert.deepEqual(((r) => [r.task.id, r.by])(tt.allocate({}, null, x([10, 0]))), ['global', 'fallback'], 'no site: the fallback, not a centroid');
  assert.equal(tt.usesCentroids, false);
  // centroid: the attribute is ignored
  tt = new TaskTable(idx([a, a2, b, g], 'centroid', 'global'));
  assert.deepEqual(((r) => [r.task.id, r.by, r.unknownAttr])(tt.allocate({ site: 'b' }, null, x([0, 1]))), ['a', 'centroid', false], 'a and a2 tie at distance 1: the first');
  assert.deepEqual(((r) => [r.task.id, r.by, r.farDistance])(tt.allocate({}, null, x([0, 2]))), ['a', 'centroid', undefined], 'exactly on the radius is inside');
  assert.deepEqual(((r) => [r.task.id, r.by, r.farDistance])(tt.allocate({}, null, x([0, -2.5]))), ['global', 'fallback', 2.5]);
  // attr+centroid: an unknown site goes to the fallback flagged unseen; no site -> centroid
  tt = new TaskTable(idx([a, b, g], 'attr+centroid', 'global'));
  assert.deepEqual(((r) => [r.task.id, r.by, r.unknownAttr])(tt.allocate({ site: 'zz' }, null, x([10, 0]))), ['global', 'fallback', true]);
  assert.deepEqual(((r) => [r.task.id, r.by])(tt.allocate({}, null, x([9, 0]))), ['b', 'centroid']);
  assert.equal(tt.usesCentroids, true);
});
