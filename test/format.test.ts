import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { writeDenseOnnx } from '../src/onnx/writer.js';
import { attrKey, normaliseAttrs, normaliseValue } from '../src/format/attrs.js';
import { generateSigningKeys, signBytes, verifyBytes } from '../src/format/signature.js';

test('ONNX writer: onnxruntime-node output equals a hand-computed forward pass', async () => {
  // 2 -> 2 relu -> 2 softmax with hand-picked weights
  const l1 = { inDim: 2, outDim: 2, W: Float32Array.from([1, -1, 2, 0.5]), b: Float32Array.from([0, 1]) };
  const l2 = { inDim: 2, outDim: 2, W: Float32Array.from([1, 0, 0, 1]), b: Float32Array.from([0.5, 0]) };
  const s = await ort.InferenceSession.create(writeDenseOnnx({ layers: [l1, l2] }));
  const out = await s.run({ input: new ort.Tensor('float32', Float32Array.from([1, 2]), [1, 2]) });
  // h = relu([1*1 + 2*2 + 0, 1*-1 + 2*0.5 + 1]) = [5, 1]; z = [5.5, 1]
  const z = [5.5, 1];
  const e = z.map((v) => Math.exp(v));
  const p = e.map((v) => v / (e[0] + e[1]));
  const got = Array.from(out.probabilities.data as Float32Array);
  assert.ok(Math.abs(got[0] - p[0]) < 1e-6 && Math.abs(got[1] - p[1]) < 1e-6, `got ${got}, want ${p}`);
});

test('attribute normalisation follows Sedna: stringify, _ -> -, strip spaces, join with _', () => {
  assert.equal(normaliseValue('new_york city'), 'new-yorkcity');
  assert.equal(normaliseValue(12), '12');
  const a = normaliseAttrs({ Site: 'Berlin_1', floor: 3 });
  assert.deepEqual(a, { site: 'Berlin-1', floor: '3' });
  assert.equal(attrKey(a, ['site', 'floor']), 'Berlin-1_3');
  assert.equal(attrKey(a, ['zone']), null);
});

test('ed25519 signature: valid verifies, tampered bytes or wrong key do not', () => {
  const k = generateSigningKeys();
  const other = generateSigningKeys();
  const bytes = Buffer.from('{"version":1}');
  const sig = signBytes(bytes, k.privateKey);
  assert.equal(verifyBytes(bytes, sig, k.publicKey), true);
  assert.equal(verifyBytes(Buffer.from('{"version":2}'), sig, k.publicKey), false);
  assert.equal(verifyBytes(bytes, sig, other.publicKey), false);
  assert.equal(verifyBytes(bytes, 'not-base64!!', k.publicKey), false);
});
