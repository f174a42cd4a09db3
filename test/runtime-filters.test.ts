// runtime/filters.ts in process: the cases edge-runtime-logic.test.ts does not pin down (top2
// ties, filter defaults, filters that do not apply to detection boxes, the entropy range on
// random distributions, threshold boundaries).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crossEntropyConfidence, filterFires, filterNames, meanBoxScore, normalisedEntropy, top2 } from '../src/runtime/filters.js';
import { mulberry32 } from '../src/random.js';

const cls = (probs: number[], u = 0.5) => ({ probs, boxes: null, u });

/** seeded: a failure reproduces */
const rng = mulberry32;

test('top2: first index wins a tie; the second value of a tie is the same value; K = 1 has top2 0', () => {
  assert.deepEqual(top2([0.4, 0.4, 0.2]), { i1: 0, p1: 0.4, p2: 0.4 });
  assert.deepEqual(top2([0.1, 0.3, 0.6]), { i1: 2, p1: 0.6, p2: 0.3 });
  assert.deepEqual(top2([-2, -1, -3]), { i1: 1, p1: -1, p2: -2 }, 'logits may be negative');
  assert.deepEqual(top2([0.9]), { i1: 0, p1: 0.9, p2: 0 });
});

test('filter defaults: threshold 0.5, ibt t_box/t_img 0.5, random ratio 0.3', () => {
  assert.equal(filterFires({ type: 'threshold' }, cls([0.49, 0.51])), false);
  assert.equal(filterFires({ type: 'threshold' }, cls([0.5, 0.3, 0.2])), false, 'strict <: 0.5 is not below 0.5');
  assert.equal(filterFires({ type: 'threshold' }, cls([0.45, 0.3, 0.25])), true);
  assert.equal(filterFires({ type: 'margin' }, cls([0.7, 0.3])), true, 'margin 0.4 is below 0.5');
  assert.equal(filterFires({ type: 'margin' }, cls([0.8, 0.2])), false, 'margin 0.6');
  assert.equal(filterFires({ type: 'random' }, cls([1], 0.29)), true);
  assert.equal(filterFires({ type: 'random' }, cls([1], 0.3)), false);
  assert.equal(filterFires({ type: 'ibt' }, cls([0.5, 0.5])), true, 'one box, score 0.5 <= 0.5: share 1 >= 0.5');
});

test('cross_entropy and margin do not apply to detection boxes; threshold and ibt do', () => {
  const boxes = [[0, 0, 1, 1, 0.1]];
  const det = { probs: [], boxes, u: 0.9 };
  assert.equal(filterFires({ type: 'cross_entropy', threshold: 0.99 }, det), false);
  assert.equal(filterFires({ type: 'margin', threshold: 0.99 }, det), false);
  assert.equal(filterFires({ type: 'threshold', threshold: 0.5 }, det), true);
  assert.equal(filterFires({ type: 'ibt', threshold_box: 0.5, threshold_img: 0.5 }, det), true);
  assert.equal(meanBoxScore([]), null);
});

test('entropy: in [0, 1] on random distributions and 1 - cross-entropy confidence; maximal for the uniform row', () => {
  const r = rng(11);
  for (let n = 0; n < 500; n++) {
    const k = 2 + Math.floor(r() * 20);
    const raw = Array.from({ length: k }, () => r() ** 3);
    const s = raw.reduce((a, b) => a + b, 0);
    const p = raw.map((v) => v / s);
    const h = normalisedEntropy(p);
    assert.ok(h >= -1e-12 && h <= 1 + 1e-12, `entropy ${h} of ${p}`);
    assert.ok(Math.abs(h + crossEntropyConfidence(p) - 1) < 1e-12);
    assert.ok(h <= normalisedEntropy(new Array(k).fill(1 / k)) + 1e-12);
  }
});

test('filterNames: repeated types are numbered from #2 in order, per type', () => {
  assert.deepEqual(filterNames([]), []);
  assert.deepEqual(filterNames([{ type: 'random' }, { type: 'random' }, { type: 'random' }, { type: 'ibt' }]), ['random', 'random#2', 'random#3', 'ibt']);
});
