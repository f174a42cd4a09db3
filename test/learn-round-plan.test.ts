// The learning round's steps in-process: task definition, held-out split, the whole plan (no
// store involved: it cannot write) and the apply step on a real SQLite KB store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from './helpers/cli.js';
import { siteBlobs } from './helpers/learn-data.js';
import { SqliteKbStore } from '../src/kb/sqlite-store.js';
import { kbPaths } from '../src/kb/paths.js';
import type { SampleRecord } from '../src/kb/store.js';
import type { LoadedSample } from '../src/learn/dataset.js';
import { loadTaskModel } from '../src/learn/models.js';
import { defineTasks } from '../src/learn/round-define.js';
import { splitHeldout } from '../src/learn/round-split.js';
import { planRound } from '../src/learn/round-plan.js';
import { applyPlan } from '../src/learn/round-apply.js';
import { DEFAULT_ROUND } from '../src/learn/round.js';

let seq = 0;
function sample(id: string, x: Float32Array, label: string | null, attrs: Record<string, string> = {}, rec: Partial<SampleRecord> = {}): LoadedSample {
  return {
    raw: x,
    rec: {
      id, task: 'global', attrs, payload_kind: 'f32', payload_sha: '', pred_label: null, scores: [], hard: false, hard_reasons: [], unseen: false, unseen_reason: null,
      kb_version: null, created_at: 0, device_id: null, payload_bytes: x.length * 4, received_at: 0, source: 'import', label, label_source: null, labelled_at: null,
      assigned_task: null, split: null, used_in_round: null, seq: ++seq, ...rec,
    },
  };
}
function site(name: string | null, angle: number, n: number, seed: number, shift = 0): LoadedSample[] {
  const b = siteBlobs({ angle, n, seed, labelShift: shift });
  return Array.from({ length: n }, (_, i) => sample(`${name ?? 'none'}-${seed}-${i}`, b.X.slice(i * 8, i * 8 + 8), 'abcd'[b.y[i]], name ? { site: name } : {}));
}
const define = (samples: LoadedSample[], minSamples = 10) =>
  defineTasks({ samples, tasks: [], attrKeys: ['site'], P: { kind: 'vector' }, dim: 8, input: (s) => s.raw, minSamples, kMax: 4, seed: 1, nextCluster: 1 });

test('task definition: one group per attribute value; a group under --min-samples is no task but keeps its site', () => {
  const A = site('A', 0, 30, 1);
  const tiny = site('tiny', 1, 4, 2);
  const d = define([...A, ...tiny]);
  assert.deepEqual(d.qualifying.map((g) => g.id), ['A']);
  assert.deepEqual([...d.groups.keys()].sort(), ['A', 'tiny']);
  assert.equal(d.taskOf.get(A[0]), 'A');
  assert.equal(d.taskOf.has(tiny[0]), false);
  assert.equal(d.siteOf.get(tiny[0]), 'tiny');
  assert.equal(d.clusters, null);
  // an attribute value named like the fallback never collides with it
  assert.deepEqual(define(site('global', 0, 12, 3)).qualifying.map((g) => g.id), ['site-global']);
});

test('task definition: samples without attributes are clustered; ids follow the first sample, not k-means numbering', () => {
  const near = site(null, 0, 40, 4).map((s) => ({ ...s, raw: s.raw.map((v) => v + 12) }));
  const far = site(null, 1.5, 40, 5).map((s) => ({ ...s, raw: s.raw.map((v) => v - 12) }));
  const d = define([...near, ...far]);
  assert.equal(d.clusters?.k, 2);
  assert.equal(d.taskOf.get(near[0]), 'cluster-1');
  assert.equal(d.taskOf.get(far[0]), 'cluster-2');
  assert.equal(d.nextCluster, 3);
});

test('held-out split: the fraction per bucket, at least one, sticky for samples that have one', () => {
  const A = site('A', 0, 50, 6);
  A[0].rec.split = 'train';
  A[1].rec.split = 'heldout';
  const r = splitHeldout({ samples: A, bucketOf: () => 'A', taskOf: () => 'A', fraction: 0.2, rank: (s) => Number(s.rec.id.split('-').pop()) });
  assert.equal([...r.split.values()].filter((v) => v === 'heldout').length, 10);
  assert.equal(r.split.get(A[0]), 'train');
  assert.equal(r.split.get(A[1]), 'heldout');
  assert.equal(r.split.get(A[2]), 'heldout', 'lowest rank first');
  assert.equal(r.assign.length, 50, 'every sample changed task (null -> A)');
  const small = splitHeldout({ samples: site('B', 0, 2, 7), bucketOf: () => 'B', taskOf: () => null, fraction: 0.2, rank: () => 0 });
  assert.equal([...small.split.values()].filter((v) => v === 'heldout').length, 1);
  assert.ok(small.assign.every((a) => a.assigned_task === null));
});

test('the plan trains and decides without a store; applying it writes records, splits and counters in one step', async () => {
  const t = tempDir('sedna-ll-plan-');
  const store = new SqliteKbStore(kbPaths(join(t.dir, 'kb')));
  try {
    const samples = [...site('A', 0, 80, 8), ...site('B', 0.6, 80, 9, 1)];
    const o = { ...DEFAULT_ROUND, hidden: [16], threads: 1 };
    const plan = await planRound({ round: 1, tasks: [], prevIndex: null, samples, skipped: {}, preprocessing: null, nextCluster: 1, loadModel: (x) => loadTaskModel(store, x) }, o);
    assert.deepEqual(plan.outcomes.map((x) => x.task), ['global', 'A', 'B']);
    assert.ok(plan.outcomes.every((x) => x.kind === 'new' && typeof x.accepted === 'boolean'), JSON.stringify(plan.outcomes));
    assert.equal(plan.tasks.length, 3);
    // round 1 has no model yet: a new site's parent candidates are the fallback trained this round
    const A = plan.outcomes.find((x) => x.task === 'A')!;
    assert.deepEqual(Object.keys(A.relation!.scores), ['global'], JSON.stringify(A.relation));
    assert.equal(plan.used.length, 160);
    assert.equal((await store.listTasks()).length, 0, 'planning wrote nothing');
    // the same input plans the same decisions and models
    const again = await planRound({ round: 1, tasks: [], prevIndex: null, samples, skipped: {}, preprocessing: null, nextCluster: 1, loadModel: (x) => loadTaskModel(store, x) }, o);
    assert.deepEqual(again.outcomes.map((x) => [x.task, x.accepted, x.model_sha]), plan.outcomes.map((x) => [x.task, x.accepted, x.model_sha]));

    // counters: what arrived while the round ran (7 - 5 labelled) still counts afterwards
    await store.addCounter('labelled_new', 7);
    await store.addCounter('samples_new', 3);
    await applyPlan(store, plan, { labelled_new: 5, samples_new: 9 });
    const c = await store.counters();
    assert.deepEqual([c.labelled_new, c.samples_new, c.rounds], [2, 0, 1]);
    assert.deepEqual((await store.listTasks()).map((x) => x.id).sort(), ['A', 'B', 'global']);
    assert.equal(await store.getMeta('learn.round'), '1');
    for (const pt of plan.tasks) if (pt.bytes) assert.ok(await store.blobs.has(pt.record.model_sha));
  } finally {
    await store.close();
    t.cleanup();
  }
});
