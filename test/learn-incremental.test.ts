// The bounded training set of a warm-started CNN update (src/learn/incremental.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { REPLAY_MIN, UPDATE_MAX, updateSet } from '../src/learn/incremental.js';
import type { LoadedSample } from '../src/learn/dataset.js';

function samples(n: number, freshFrom: number): LoadedSample[] {
  return Array.from({ length: n }, (_, i) => ({
    rec: { id: `s${i}`, payload_sha: createHash('sha256').update(String(i)).digest('hex'), used_in_round: i >= freshFrom ? null : 3 } as unknown as LoadedSample['rec'],
    raw: new Float32Array(1),
  }));
}
const isFresh = (s: LoadedSample) => s.rec.used_in_round === null;

test('every fresh sample plus at least as many old ones, never more than UPDATE_MAX', () => {
  const all = samples(20000, 19000); // 1000 fresh
  const u = updateSet(all, isFresh, 1, 5);
  assert.equal(u.fresh, 1000);
  assert.equal(u.replay, 1000);
  assert.equal(u.train.length, 2000);
  assert.equal(u.left, 19000 - 1000);
  assert.ok(all.slice(19000).every((s) => u.train.includes(s)), 'all fresh samples are kept');
});

test('few fresh samples still replay REPLAY_MIN old ones; a huge fresh set is capped', () => {
  const few = updateSet(samples(5000, 4990), isFresh, 1, 5);
  assert.equal(few.fresh, 10);
  assert.equal(few.replay, REPLAY_MIN);
  const many = updateSet(samples(10000, 1000), isFresh, 1, 5);
  assert.equal(many.train.length, UPDATE_MAX);
  assert.equal(many.fresh, UPDATE_MAX - REPLAY_MIN);
  assert.equal(many.replay, REPLAY_MIN);
  const small = updateSet(samples(300, 250), isFresh, 1, 5);
  assert.equal(small.train.length, 300, 'a small task trains on everything');
});

test('the replay sample is a function of the data, the seed and the round', () => {
  const all = samples(8000, 7900);
  const ids = (u: ReturnType<typeof updateSet>) => u.train.map((s) => s.rec.id).join(',');
  const reversed = updateSet([...all].reverse(), isFresh, 1, 5).train.map((s) => s.rec.id).sort().join(',');
  assert.equal(reversed, updateSet(all, isFresh, 1, 5).train.map((s) => s.rec.id).sort().join(','), 'arrival order does not change the choice');
  assert.notEqual(ids(updateSet(all, isFresh, 1, 5)), ids(updateSet(all, isFresh, 1, 6)), 'another round replays other old samples');
});
