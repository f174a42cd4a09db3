// The convolutional trainer (src/learn/cnn.ts): backward pass against finite differences, learning
// shapes that move around the image, bit-identical runs per seed (inline and on the worker pool),
// ONNX export whose onnxruntime output equals the trainer's forward pass, the reader's round trip,
// and transfer with frozen conv layers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cnnGradients, cnnPredict, cnnTransferInit, initCnn, trainCnn, type CnnNet } from '../src/learn/cnn.js';
import { readCnnOnnx, writeCnnOnnx } from '../src/learn/cnn-onnx.js';
import { argmaxRows } from '../src/learn/dense.js';
import { openSession, runRows } from '../src/onnx/ort.js';
import { shapeImages } from './helpers/images.js';

const accuracy = (net: CnnNet, s: { X: Float32Array; y: Int32Array; n: number }, k = 4) => {
  const pred = argmaxRows(cnnPredict(net, s.X, s.n), s.n, k);
  let ok = 0;
  for (let i = 0; i < s.n; i++) if (pred[i] === s.y[i]) ok++;
  return ok / s.n;
};

function params(net: CnnNet): Float32Array[] {
  return [...net.convs.flatMap((c) => [c.W, c.b]), ...net.head.layers.flatMap((l) => [l.W, l.b])];
}

test('cnn: the backward pass matches finite differences of the loss for every parameter kind', () => {
  // odd sizes (7x7 -> 3 -> 1) and a batch of 3 exercise the padding of rows to multiples of 4
  const data = shapeImages(3, 5, 7, 3, 0.3);
  const net = initCnn([1, 7, 7], [4, 4], [8], 3, 11);
  for (const c of net.convs) for (let i = 0; i < c.b.length; i++) c.b[i] = 0.05 * (i + 1); // biases off zero: ReLUs not on their kinks
  const { grads } = cnnGradients(net, data.X, data.y, data.n);
  const ps = params(net);
  const eps = 1e-2;
  let checked = 0;
  ps.forEach((p, pi) => {
    for (const i of [0, Math.floor(p.length / 2), p.length - 1]) {
      const v = p[i];
      p[i] = v + eps;
      const up = cnnGradients(net, data.X, data.y, data.n).loss;
      p[i] = v - eps;
      const down = cnnGradients(net, data.X, data.y, data.n).loss;
      p[i] = v;
      const fd = (up - down) / (2 * eps);
      assert.ok(Math.abs(fd - grads[pi][i]) < 2e-3 + 0.05 * Math.abs(fd), `param ${pi}[${i}]: finite difference ${fd}, backward ${grads[pi][i]}`);
      checked++;
    }
  });
  assert.equal(checked, 3 * ps.length);
});

test('cnn: learns position-independent shapes, bit-identical per seed, and onnxruntime computes the same probabilities', async () => {
  const tr = shapeImages(320, 1);
  const va = shapeImages(80, 2);
  const te = shapeImages(200, 3);
  const opts = { shape: [1, 12, 12] as [number, number, number], filters: [4, 8], hidden: [16], epochs: 12, seed: 7 };
  const a = trainCnn(tr, va, 4, opts);
  assert.ok(accuracy(a.net, te) > 0.9, `test accuracy ${accuracy(a.net, te)}`);
  const b = trainCnn(tr, va, 4, opts);
  assert.deepEqual(params(a.net).map((p) => Array.from(p)), params(b.net).map((p) => Array.from(p)));
  assert.notDeepEqual(Array.from(trainCnn(tr, va, 4, { ...opts, seed: 8, epochs: 1, minSteps: 1 }).net.convs[0].W), Array.from(a.net.convs[0].W));

  const bytes = writeCnnOnnx(a.net, { inputName: 'input', outputName: 'probabilities', producer: 'test', metadata: { arch: 'cnn' } });
  const session = await openSession(bytes, 'cnn');
  const P = await runRows(session, 'input', 'probabilities', te.X, [te.n, 1, 12, 12]);
  const mine = cnnPredict(a.net, te.X, te.n);
  let maxDiff = 0;
  for (let i = 0; i < P.length; i++) maxDiff = Math.max(maxDiff, Math.abs(P[i] - mine[i]));
  assert.ok(maxDiff < 1e-5, `onnxruntime vs trainer forward: max |diff| ${maxDiff}`);

  const back = readCnnOnnx(bytes);
  assert.ok(back, 'the reader understands the written graph');
  assert.deepEqual(back.net.shape, [1, 12, 12]);
  assert.deepEqual(params(back.net).map((p) => Array.from(p)), params(a.net).map((p) => Array.from(p)));
  assert.equal(back.metadata.arch, 'cnn');
});

test('cnn: transfer copies conv weights and keeps frozen layers as they were; shifts augment small sets', () => {
  const parentData = shapeImages(240, 21);
  const parent = trainCnn(parentData, shapeImages(60, 22), 4, { shape: [1, 12, 12], filters: [4, 8], hidden: [16], epochs: 6, seed: 1 });
  // the child knows three of the parent's classes, in another order, plus none new
  const init = cnnTransferInit(parent.net, ['a', 'b', 'c', 'd'], [1, 12, 12], [4, 8], [16], ['c', 'a', 'b'], 5);
  assert.ok(init);
  assert.deepEqual(Array.from(init.convs[1].W), Array.from(parent.net.convs[1].W));
  const tiny = shapeImages(30, 23, 12, 3);
  const child = trainCnn(tiny, null, 3, { shape: [1, 12, 12], filters: [4, 8], hidden: [16], epochs: 3, seed: 2, init, freezeConvs: 2, shift: 1 });
  assert.ok(child.warmStart);
  assert.deepEqual(Array.from(child.net.convs[0].W), Array.from(parent.net.convs[0].W));
  assert.deepEqual(Array.from(child.net.convs[1].b), Array.from(parent.net.convs[1].b));
  assert.notDeepEqual(Array.from(child.net.head.layers[0].W), Array.from(init.head.layers[0].W));
  // another architecture cannot be seeded
  assert.equal(cnnTransferInit(parent.net, ['a', 'b', 'c', 'd'], [1, 12, 12], [8, 8], [16], ['a'], 5), null);
});
