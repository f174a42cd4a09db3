import { test } from 'node:test';
import assert from 'node:assert/strict';
import { train, transferInit } from '../src/learn/trainer.js';
import { archDims, predictProba, argmaxRows } from '../src/learn/dense.js';
import { trainAll } from '../src/learn/pool.js';
import { exportOnnx } from '../src/learn/export.js';
import { readDenseOnnx } from '../src/onnx/reader.js';
import { score } from '../src/learn/metrics.js';
import { calibrate, quantile } from '../src/learn/calibrate.js';
import { clusterAuto } from '../src/learn/cluster.js';
import { evaluateWhen, inWindow, parseWhen, parseWindow } from '../src/learn/when.js';
import { DEFAULT_GATE, gateDecide } from '../src/learn/gate.js';
import { mcnemarMidP, pairedCompare } from '../src/learn/paired.js';
import { mulberry32 } from '../src/random.js';
import { siteBlobs } from './helpers/learn-data.js';

const acc = (net: Parameters<typeof predictProba>[0], b: { X: Float32Array; y: Int32Array; n: number }, k = 4) =>
  score(b.y, argmaxRows(predictProba(net, b.X, b.n), b.n, k), k).accuracy;

test('trainer: learns separable blobs, is bit-identical for a seed, and the worker pool changes nothing', async () => {
  const tr = siteBlobs({ angle: 0, n: 400, seed: 1 });
  const va = siteBlobs({ angle: 0, n: 200, seed: 2 });
  const opts = { arch: 'mlp' as const, hidden: [16], epochs: 15, seed: 3 };
  const a = train(tr, va, 4, opts);
  const b = train(tr, va, 4, opts);
  assert.ok(acc(a.net, va) > 0.85, `accuracy ${acc(a.net, va)}`);
  assert.deepEqual(a.net.layers.map((l) => Array.from(l.W)), b.net.layers.map((l) => Array.from(l.W)));
  const c = train(tr, va, 4, { ...opts, seed: 4 });
  assert.notDeepEqual(Array.from(a.net.layers[0].W), Array.from(c.net.layers[0].W));
  // three jobs on a 2-thread pool, twice: same results as inline, in job order
  const jobs = [1, 2, 3].map((s) => ({ key: `t${s}`, train: tr, val: va, numClasses: 4, options: { ...opts, seed: s }, init: null }));
  const pooled = await trainAll(jobs, { threads: 2 });
  const inline = await trainAll(jobs, { threads: 1 });
  assert.deepEqual(pooled.map((r) => r.key), ['t1', 't2', 't3']);
  for (let i = 0; i < 3; i++) assert.deepEqual(Array.from(pooled[i].net!.W[0]), Array.from(inline[i].net!.W[0]));
  // job t3 has the seed of `a`: the pooled run equals the direct one
  assert.deepEqual(Array.from(pooled[2].net!.W[1]), Array.from(train(tr, va, 4, { ...opts, seed: 3 }).net.layers[1].W));
  // SGD and softmax regression learn too
  const s = train(tr, va, 4, { arch: 'softmax', optimizer: 'sgd', epochs: 20, seed: 1 });
  assert.ok(acc(s.net, va) > 0.8, `sgd softmax accuracy ${acc(s.net, va)}`);
});

test('trainer: standardisation of dense inputs is folded into the first layer (same function of the raw inputs)', () => {
  const tr = siteBlobs({ angle: 0.5, n: 200, seed: 8, offset: -12 }, 8, 4);
  const te = siteBlobs({ angle: 0.5, n: 300, seed: 9, offset: -12 }, 8, 4);
  const plain = train(tr, null, 4, { arch: 'softmax', seed: 1, standardize: 'off' });
  const std = train(tr, null, 4, { arch: 'softmax', seed: 1 });
  assert.ok(acc(std.net, te) > 0.9 && acc(std.net, te) > acc(plain.net, te), `standardised ${acc(std.net, te)} vs plain ${acc(plain.net, te)}`);
  // no training at all: into the standardised space and back is the identity
  const net = train(tr, null, 4, { arch: 'mlp', hidden: [8], seed: 2, epochs: 1, standardize: 'off' }).net;
  const back = train(tr, null, 4, { arch: 'mlp', hidden: [8], seed: 2, epochs: 0, minSteps: 0, init: net, standardize: 'on' }).net;
  const P1 = predictProba(net, te.X, te.n);
  const P2 = predictProba(back, te.X, te.n);
  assert.ok(P1.every((v, i) => Math.abs(v - P2[i]) < 1e-4), 'round trip changes the function');
});

test('trainer: early stopping keeps the best epoch and stops after patience', () => {
  const tr = siteBlobs({ angle: 0, n: 60, seed: 5 }, 8, 4, 1.6);
  const va = siteBlobs({ angle: 0, n: 200, seed: 6 }, 8, 4, 1.6);
  const r = train(tr, va, 4, { arch: 'mlp', hidden: [64], epochs: 300, patience: 4, seed: 1, lr: 0.01, minSteps: 0 });
  assert.ok(r.epochsRun < 300, `ran ${r.epochsRun} epochs`);
  assert.equal(r.epochsRun, r.bestEpoch + 4);
  const best = r.history[r.bestEpoch - 1].valLoss!;
  // a tiny dataset (2 steps per epoch) gets at least minSteps optimiser steps: more epochs, more patience
  const small = train(tr, null, 4, { arch: 'mlp', hidden: [8], epochs: 5, seed: 1, minSteps: 100 });
  assert.equal(small.epochsRun, 50);
  assert.ok(r.history.every((h) => h.valLoss! >= best - 1e-6 || h.epoch <= r.bestEpoch));
});

test('transfer: a parent trained on a related site reaches the target accuracy in fewer epochs than a fresh start', () => {
  const parentData = siteBlobs({ angle: 0, n: 600, seed: 11 }, 8, 4, 1.2);
  const parent = train(parentData, null, 4, { arch: 'mlp', hidden: [32], epochs: 30, seed: 1 }).net;
  const child = siteBlobs({ angle: 0.25, n: 80, seed: 12 }, 8, 4, 1.2);
  const childVal = siteBlobs({ angle: 0.25, n: 400, seed: 13 }, 8, 4, 1.2);
  const labels = ['a', 'b', 'c', 'd'];
  const dims = archDims('mlp', 8, 4, [32]);
  const init = transferInit(parent, labels, dims, labels, 2)!;
  assert.ok(init, 'parent fits the child architecture');
  const opts = { arch: 'mlp' as const, hidden: [32], epochs: 40, patience: 1000, seed: 2 };
  const warm = train(child, childVal, 4, { ...opts, init });
  const fresh = train(child, childVal, 4, opts);
  const target = 0.75; // the Bayes limit of this noise level is about 0.84
  const reach = (h: typeof warm.history) => h.find((e) => e.valAccuracy! >= target)?.epoch ?? Infinity;
  assert.equal(warm.warmStart, true);
  assert.ok(reach(warm.history) < reach(fresh.history), `warm ${reach(warm.history)} epochs vs fresh ${reach(fresh.history)}`);
  // label mapping: a parent with labels in another order is remapped by name
  const swapped = transferInit(parent, ['b', 'a', 'c', 'd'], dims, labels, 2)!;
  const lastP = parent.layers[1];
  const lastS = swapped.layers[1];
  assert.equal(lastS.W[0 * 4 + 0], lastP.W[0 * 4 + 1]);
  assert.equal(transferInit(parent, labels, archDims('mlp', 8, 4, [16]), labels, 2), null);
});

test('export: onnxruntime-node outputs equal the trainer forward pass; the reader gets the weights back', async () => {
  const m = await import('onnxruntime-node');
  const ort = (m as unknown as { default?: typeof m }).default ?? m;
  const tr = siteBlobs({ angle: 0.3, n: 200, seed: 21 }, 12, 4);
  for (const [arch, hidden] of [['softmax', []], ['mlp', [24]], ['mlp', [32, 16]]] as const) {
    const r = train(tr, null, 4, { arch, hidden: [...hidden], epochs: 3, seed: 5 });
    const bytes = exportOnnx(r.net, { labels: ['a', 'b', 'c', 'd'], preprocessing: { kind: 'vector', scale: 0.5 }, arch });
    const s = await ort.InferenceSession.create(bytes);
    const rand = mulberry32(99);
    const n = 64;
    const X = Float32Array.from({ length: n * 12 }, () => (rand() - 0.5) * 8);
    const out = await s.run({ input: new ort.Tensor('float32', X, [n, 12]) });
    const got = out.probabilities.data as Float32Array;
    const want = predictProba(r.net, X, n);
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
    assert.ok(maxDiff < 1e-5, `${arch} ${hidden}: max abs diff ${maxDiff}`);
    const back = readDenseOnnx(bytes)!;
    assert.ok(back, 'reader understands the exported model');
    assert.equal(back.softmax, true);
    assert.deepEqual(JSON.parse(back.metadata.labels), ['a', 'b', 'c', 'd']);
    assert.deepEqual(Array.from(back.net.layers.at(-1)!.W), Array.from(r.net.layers.at(-1)!.W));
  }
});

test('metrics: accuracy, micro precision (= accuracy for single-label), macro F1 by hand', () => {
  const s = score([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 3);
  assert.equal(s.accuracy, 4 / 6);
  assert.equal(s.micro_precision, 4 / 6);
  // F1: class0 tp1 fp1 fn1 -> 0.5; class1 tp2 fp1 fn0 -> 0.8; class2 tp1 fp0 fn1 -> 2/3
  assert.ok(Math.abs(s.macro_f1 - (0.5 + 0.8 + 2 / 3) / 3) < 1e-12);
});

test('calibration: radius and confidence thresholds sit at the target false-positive rate', () => {
  const d = 4;
  const tr = siteBlobs({ angle: 0, n: 300, seed: 31 }, d, 2);
  const held = siteBlobs({ angle: 0, n: 400, seed: 32 }, d, 2);
  const net = train(tr, null, 2, { arch: 'softmax', epochs: 5, seed: 1 }).net;
  const P = predictProba(net, held.X, held.n);
  const c = calibrate(tr.X, tr.n, held.X, held.n, P, 2, d, 0.05);
  let outside = 0;
  let lowConf = 0;
  for (let i = 0; i < held.n; i++) {
    const dist = Math.hypot(...Array.from({ length: d }, (_, j) => held.X[i * d + j] - c.centroid[j]));
    if (dist > c.radius) outside++;
    if (Math.max(P[i * 2], P[i * 2 + 1]) < c.confidence) lowConf++;
  }
  assert.ok(Math.abs(outside / held.n - 0.05) <= 0.01, `outside ${outside}`);
  assert.ok(Math.abs(lowConf / held.n - 0.05) <= 0.01, `low confidence ${lowConf}`);
  assert.equal(quantile([1, 2, 3, 4, 5], 0.5), 3);
  assert.equal(quantile([1, 2], 0.25), 1.25);
});

test('clustering: k chosen from the data (3 far-apart sites -> 3; one site -> 1)', () => {
  const d = 8;
  const parts = [-12, 0, 12].map((off, i) => siteBlobs({ angle: i, offset: off, n: 90, seed: 40 + i }, d, 4, 0.9));
  const X = new Float32Array(270 * d);
  parts.forEach((p, i) => X.set(p.X, i * 90 * d));
  const c3 = clusterAuto(X, 270, d, { kMax: 6, seed: 1 });
  assert.equal(c3.k, 3, JSON.stringify(c3.silhouettes));
  // each cluster is one site
  for (let s = 0; s < 3; s++) assert.equal(new Set(Array.from(c3.result.assign.subarray(s * 90, (s + 1) * 90))).size, 1);
  const one = siteBlobs({ angle: 0, n: 120, seed: 50 }, d, 4, 2.5);
  assert.equal(clusterAuto(one.X, 120, d, { kMax: 6, seed: 1 }).k, 1);
});

test('--when and --window: operators, Sedna aliases, and, unknown counters, midnight wrap', () => {
  const c = parseWhen('labelled_new >= 500 and samples_new gt 10');
  assert.deepEqual(c, [{ counter: 'labelled_new', op: '>=', value: 500 }, { counter: 'samples_new', op: '>', value: 10 }]);
  assert.equal(evaluateWhen(c, { labelled_new: 499, samples_new: 20 }, []).due, false);
  assert.equal(evaluateWhen(c, { labelled_new: 500, samples_new: 11 }, []).due, true);
  for (const [e, v, due] of [['x eq 3', 3, true], ['x ne 3', 3, false], ['x le 3', 3, true], ['x lt 3', 3, false], ['x==3', 3, true], ['x != 2', 3, true], ['x<4', 3, true]] as const) {
    assert.equal(evaluateWhen(parseWhen(e), { x: v }, []).due, due, e);
  }
  assert.throws(() => parseWhen('labelled_new >>= 5'), /expected COUNTER OP NUMBER/);
  assert.throws(() => evaluateWhen(parseWhen('labeled_new > 1'), { labelled_new: 3 }, ['samples_new']), /unknown counter "labeled_new"/);
  assert.equal(evaluateWhen(parseWhen('samples_new > 1'), {}, ['samples_new']).due, false);
  const w = parseWindow('22:00-04:00');
  const at = (h: number, m = 0) => new Date(2026, 0, 1, h, m);
  assert.equal(inWindow(w, at(23)), true);
  assert.equal(inWindow(w, at(3, 59)), true);
  assert.equal(inWindow(w, at(4)), false);
  assert.equal(inWindow(w, at(12)), false);
  assert.equal(inWindow(parseWindow('09:00-17:30'), at(17, 29)), true);
  assert.throws(() => parseWindow('25:00-01:00'), /expected HH:MM-HH:MM/);
});

test('gate: a paired McNemar test on the same held-out samples; gain accepted, noise keeps the incumbent, loss rejected', () => {
  // exact mid-p values: b=0,c=5 -> 0.5^5 = 0.03125; b=c -> 1; b=1,c=8 -> 2(P(X<1) + P(X=1)/2) = 2(1 + 4.5)/512
  assert.equal(mcnemarMidP(0, 5), 0.03125);
  assert.equal(mcnemarMidP(4, 4), 1);
  assert.ok(Math.abs(mcnemarMidP(1, 8) - 11 / 512) < 1e-12);
  assert.equal(mcnemarMidP(0, 0), 1);
  const right = (n: number, wrongAt: number[]) => Array.from({ length: n }, (_, i) => !wrongAt.includes(i));
  const g = (r: boolean[]) => ({ right: r, metric: r.filter(Boolean).length / r.length });
  const inc = g(right(100, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
  const better = g(right(100, [9]));
  const same = g(right(100, [0, 1, 2, 3, 4, 5, 6, 7, 8, 20]));
  const gain = gateDecide(DEFAULT_GATE, better, inc, 'current');
  assert.deepEqual([gain.accepted, gain.verdict, gain.test!.n, gain.test!.incumbent, gain.test!.candidate, gain.test!.incumbent_only, gain.test!.candidate_only], [true, 'accept', 100, 0.9, 0.99, 0, 9]);
  assert.match(gain.reason, /significant gain over the current model: n=100 accuracy 0\.9000 -> 0\.9900, McNemar mid-p 0\.00195/);
  const tie = gateDecide(DEFAULT_GATE, same, inc, 'fallback');
  assert.deepEqual([tie.accepted, tie.verdict], [false, 'keep']);
  assert.match(tie.reason, /within noise of the fallback model, which stays: .*not significant at 0\.05/);
  assert.equal(gateDecide(DEFAULT_GATE, inc, better, 'current').verdict, 'reject');
  assert.equal(gateDecide({ ...DEFAULT_GATE, alpha: 0.001 }, better, inc, 'current').verdict, 'keep');
  assert.equal(gateDecide(DEFAULT_GATE, inc, null, 'fallback').accepted, true);
  assert.throws(() => pairedCompare([true], [true, false], 0.05), /1 incumbent results but 2/);
});

test('SIMD kernels (WebAssembly) agree with the JavaScript kernels', async () => {
  const { Arena } = await import('../src/learn/simd.js');
  const { gemmRows, gemmTN } = await import('../src/learn/dense.js');
  const arena = Arena.create(200_000);
  assert.ok(arena, 'WebAssembly SIMD is available on Node >= 16.4');
  const rand = mulberry32(5);
  const m = 7, k = 50, n = 24;
  // sparse-ish inputs like pixels: ~60% zeros
  const A = Float32Array.from({ length: m * k }, () => (rand() < 0.6 ? 0 : rand() * 2 - 1));
  const rows = Int32Array.from([3, 0, 6, 1, 5, 2, 4]);
  const Bj = Float32Array.from({ length: k * n }, () => rand() - 0.5);
  const bias = Float32Array.from({ length: n }, () => rand() - 0.5);
  const B = arena!.f32(k * n);
  B.set(Bj);
  const Cw = arena!.f32(m * n);
  const Cj = new Float32Array(m * n);
  const sIdx = arena!.i32(m * k + k);
  const sVal = arena!.f32(m * k + k);
  gemmRows(A, k, rows, 0, m, B, n, bias, Cw, arena, sIdx, sVal);
  gemmRows(A, k, rows, 0, m, Bj, n, bias, Cj);
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((mx, v, i) => Math.max(mx, Math.abs(v - b[i])), 0);
  assert.ok(maxDiff(Cw, Cj) < 1e-5, `gemmRows ${maxDiff(Cw, Cj)}`);
  const D = arena!.f32(m * n);
  D.set(Cj);
  const Gw = arena!.f32(k * n);
  const Gj = new Float32Array(k * n);
  gemmTN(A, k, rows, 0, m, D, n, Gw, arena, sIdx, sVal);
  gemmTN(A, k, rows, 0, m, Float32Array.from(Cj), n, Gj);
  assert.ok(maxDiff(Gw, Gj) < 1e-5, `gemmTN ${maxDiff(Gw, Gj)}`);
  // one Adam step on 10 values: 8 by the kernel, the tail by the caller
  const w = arena!.f32(10), g = arena!.f32(10), m1 = arena!.f32(10), v = arena!.f32(10);
  w.set(Array.from({ length: 10 }, (_, i) => i / 10 - 0.5));
  g.set(Array.from({ length: 10 }, (_, i) => (i % 3) - 1));
  const done = arena!.adam(w, g, m1, v, 0.01 * 10, 1000, 1e-3, 0.9, 0.999, 1e-8);
  assert.equal(done, 8);
  for (let i = 0; i < 8; i++) {
    const w0 = i / 10 - 0.5;
    const gi = ((i % 3) - 1) + 1e-3 * w0;
    const mi = 0.1 * gi;
    const vi = 0.001 * gi * gi;
    const want = w0 - (0.1 * mi) / (Math.sqrt(vi * 1000) + 1e-8);
    assert.ok(Math.abs(w[i] - want) < 1e-5, `adam[${i}] ${w[i]} vs ${want}`);
  }
  assert.equal(w[9], Math.fround(0.4), 'the tail is left to the caller');
});
