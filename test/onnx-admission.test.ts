// One admission check for ONNX models (src/onnx/ort.ts inspectModel): `task add` on the edge and
// `kb task add` on the KB accept and refuse the same models. Before, the KB took in any loadable
// model (e.g. one with two inputs) that every edge would then refuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sedna, tempDir } from './helpers/cli.js';
import { randomLayer, writeRandomMlp } from './helpers/models.js';
import { writeDenseOnnx } from '../src/onnx/writer.js';
import { mulberry32 } from '../src/random.js';
import { inspectModel } from '../src/onnx/ort.js';
import { field, model, valueInfo } from './helpers/onnx-graph.js';

/** y = a + b over [N, d] float32 inputs: loadable and runnable, but it takes two inputs. */
function twoInputModel(d: number): Buffer {
  const node = Buffer.concat([field(1, 'a'), field(1, 'b'), field(2, 'y'), field(3, 'add'), field(4, 'Add')]);
  const graph = Buffer.concat([field(1, node), field(2, 'two_inputs'), field(11, valueInfo('a', ['N', d])), field(11, valueInfo('b', ['N', d])), field(12, valueInfo('y', ['N', d]))]);
  return model([graph]);
}

test('inspectModel: the two-input model loads in onnxruntime but is refused; a one-input MLP is accepted with its class count and output kind', async () => {
  const t = tempDir('sedna-ll-onnx-');
  try {
    await assert.rejects(inspectModel(twoInputModel(3), 'two.onnx'), { message: 'two.onnx: the model has 2 inputs; sedna-ll feeds exactly one' });
    const mlp = writeRandomMlp(t.dir, 'mlp', [4, 6, 3], 1);
    const raw = writeRandomMlp(t.dir, 'raw', [4, 3], 2, { softmax: false });
    const a = await inspectModel(readFileSync(mlp), 'mlp');
    assert.deepEqual({ ...a, inputs: a.inputs[0].shape }, { inputs: ['N', 4], outputs: a.outputs, classes: 3, outputKind: 'probabilities' });
    assert.equal((await inspectModel(readFileSync(raw), 'raw')).outputKind, 'logits');
  } finally {
    t.cleanup();
  }
});

test('task add and kb task add refuse the same two-input model with the same one line, storing nothing', () => {
  const t = tempDir('sedna-ll-onnx-cli-');
  try {
    const model = join(t.dir, 'two.onnx');
    writeFileSync(model, twoInputModel(3));
    const expected = `sedna-ll: ${model}: the model has 2 inputs; sedna-ll feeds exactly one`;

    const home = join(t.dir, 'edge');
    assert.equal(sedna(['init', '--device-id', 'gw-1', '--home', home]).code, 0);
    const edge = sedna(['task', 'add', model, '--task', 'two'], { home });
    assert.equal(edge.code, 1, edge.stderr);
    assert.equal(edge.stderr.trim(), expected);
    assert.deepEqual(existsSync(join(home, 'models')) ? readdirSync(join(home, 'models')) : [], []);

    const data = join(t.dir, 'kb');
    assert.equal(sedna(['kb', 'init', '--data', data]).code, 0);
    const kb = sedna(['kb', 'task', 'add', model, '--task', 'two', '--data', data]);
    assert.equal(kb.code, 1, kb.stderr);
    assert.equal(kb.stderr.trim(), expected);
    const pub = sedna(['kb', 'publish', '--data', data]);
    assert.equal(pub.code, 1);
    assert.match(pub.stderr, /no tasks/, 'the refused model is not a KB task');

    // what both accept, both accept: the KB now reads the class count and output kind from the
    // probe run, like the edge (a logits model whose output is named "scores" is logits; the KB used to guess from the name)
    const raw = join(t.dir, 'raw.onnx');
    writeFileSync(raw, writeDenseOnnx({ layers: [randomLayer(3, 4, mulberry32(3))], softmax: false, outputName: 'scores' }));
    const e = sedna(['task', 'add', raw, '--task', 'raw', '--json'], { home });
    assert.equal(e.code, 0, e.stderr);
    const k = sedna(['kb', 'task', 'add', raw, '--task', 'raw', '--json', '--data', data]);
    assert.equal(k.code, 0, k.stderr);
    const em = JSON.parse(e.stdout).model;
    const km = JSON.parse(k.stdout);
    assert.deepEqual([km.inputs, km.outputs, km.labels, km.output_kind], [em.inputs, em.outputs, em.labels, em.output_kind]);
    assert.equal(km.output_kind, 'logits');
  } finally {
    t.cleanup();
  }
});
