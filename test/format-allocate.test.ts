// Task allocation is one table (src/format/allocate.ts) for the edge pipeline and `kb eval`.
// `kb eval` had its own copy, which sent a sample that fits no task's centroid to the first
// centroid task instead of refusing it; the shared table refuses it, as the edge does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TaskTable } from '../src/format/allocate.js';
import { TaskTable as RuntimeTaskTable } from '../src/runtime/allocate.js';
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

test('format/allocate is the table the runtime uses (re-exported, not copied)', () => {
  assert.equal(RuntimeTaskTable, TaskTable);
});

test('a sample that fits no task centroid is refused, never sent to the first centroid task', () => {
  const tt = new TaskTable(index([task('two', [0, 0]), task('three', [1, 1, 1])]));
  const x = Float32Array.from([5, 5, 5, 5]);
  assert.throws(() => tt.allocate({}, null, () => x), /centroid has 2 dims but the sample has 4/);
  assert.equal(tt.allocate({}, null, () => Float32Array.from([1, 1, 0.9])).task.id, 'three');
});
