// The real-MNIST loader and the rotated/permuted scenarios of the lifelong benchmark.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DIM, loadMnist, makeScenario, parseIdxImages, parseIdxLabels, permutation, rotateImage, siteName } from '../bench/lib/mnist.js';

test('real MNIST parses: 60k/10k 28x28 images with digit labels', () => {
  const tr = loadMnist('train');
  const te = loadMnist('test');
  assert.equal(tr.n, 60000);
  assert.equal(te.n, 10000);
  assert.equal(tr.pixels.length, 60000 * DIM);
  // well-known facts of the dataset: first training label is 5, first test label is 7
  assert.equal(tr.labels[0], 5);
  assert.equal(te.labels[0], 7);
  const counts = new Array(10).fill(0);
  for (const l of tr.labels) counts[l]++;
  assert.deepEqual(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
});

test('IDX parser refuses bad magic and truncated files with the file name', () => {
  const hdr = Buffer.alloc(16);
  hdr.writeUInt32BE(0x803, 0);
  hdr.writeUInt32BE(2, 4);
  hdr.writeUInt32BE(28, 8);
  hdr.writeUInt32BE(28, 12);
  assert.throws(() => parseIdxImages(hdr, 'x.idx'), /x\.idx: truncated/);
  const bad = Buffer.from(hdr);
  bad.writeUInt32BE(0x801, 0);
  assert.throws(() => parseIdxImages(bad, 'y.idx'), /y\.idx: bad IDX3 magic/);
  const lbl = Buffer.alloc(10);
  lbl.writeUInt32BE(0x801, 0);
  lbl.writeUInt32BE(2, 4);
  assert.deepEqual([...parseIdxLabels(lbl)], [0, 0]);
  lbl.writeUInt32BE(3, 4);
  assert.throws(() => parseIdxLabels(lbl, 'z'), /z: truncated/);
});

test('rotation: 0° is the identity, four 90° turns come back, 180° flips both axes', () => {
  const img = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) img[i] = ((i * 7919) % 101) / 100;
  const same = rotateImage(img, 0);
  for (let i = 0; i < DIM; i++) assert.ok(Math.abs(same[i] - img[i]) < 1e-6);
  let r: Float32Array = img;
  for (let k = 0; k < 4; k++) r = rotateImage(r, 90);
  for (let i = 0; i < DIM; i++) assert.ok(Math.abs(r[i] - img[i]) < 1e-5);
  const f = rotateImage(img, 180);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) assert.ok(Math.abs(f[y * 28 + x] - img[(27 - y) * 28 + (27 - x)]) < 1e-5);
  // a rotation keeps most ink of a centred digit and stays within 0..1
  const digit = makeScenario({ scenario: 'rotated-mnist', tasks: 1, trainPerTask: 1, testPerTask: 1, seed: 1 }).tasks[0].train.x;
  const rot = rotateImage(digit, 45);
  const ink = (a: Float32Array) => a.reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(ink(rot) - ink(digit)) / ink(digit) < 0.1);
  assert.ok(rot.every((v) => v >= 0 && v <= 1 + 1e-6));
});

test('scenarios are seeded and deterministic; permuted task 0 is the identity', () => {
  const opts = { scenario: 'permuted-mnist' as const, tasks: 3, trainPerTask: 50, testPerTask: 20, seed: 7 };
  const a = makeScenario(opts);
  const b = makeScenario(opts);
  assert.equal(a.tasks.length, 3);
  for (let t = 0; t < 3; t++) {
    assert.deepEqual(a.tasks[t].train.x, b.tasks[t].train.x);
    assert.deepEqual(a.tasks[t].test.y, b.tasks[t].test.y);
    assert.equal(a.tasks[t].train.n, 50);
    assert.equal(a.tasks[t].test.n, 20);
  }
  const c = makeScenario({ ...opts, seed: 8 });
  assert.notDeepEqual(a.tasks[1].train.y, c.tasks[1].train.y);
  // task 0 holds raw pixels: multiples of 1/255
  for (const v of a.tasks[0].train.x.subarray(0, DIM)) assert.ok(Math.abs(v * 255 - Math.round(v * 255)) < 1e-4);
  // a permutation is a bijection
  const p = permutation(DIM, 3);
  assert.equal(new Set(p).size, DIM);
  assert.deepEqual(a.tasks.map((t) => t.site), ['perm-00', 'perm-01', 'perm-02']);
});

test('rotated scenario: task t is rotated by t*180/T degrees and names its site', () => {
  const s = makeScenario({ scenario: 'rotated-mnist', tasks: 4, trainPerTask: 10, testPerTask: 10, seed: 1 });
  assert.deepEqual(s.tasks.map((t) => t.angle), [0, 45, 90, 135]);
  assert.deepEqual(s.tasks.map((t) => t.site), ['rot-000', 'rot-045', 'rot-090', 'rot-135']);
  assert.equal(siteName('rotated-mnist', 1, 20), 'rot-009');
  assert.throws(() => makeScenario({ scenario: 'nope' as never, tasks: 1, trainPerTask: 1, testPerTask: 1, seed: 1 }), /scenario "nope"/);
});
