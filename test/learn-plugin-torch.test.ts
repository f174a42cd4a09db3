// The reference PyTorch trainer plug-in (examples/trainers/torch/train.py) through `kb train
// --trainer-cmd` on a real KB: it trains a CNN on the round's export, torch.onnx.export writes the
// model, and the KB admits, gates and publishes it like its own; a trainer that runs over its
// time limit is killed and the round fails with nothing published. Needs Debian's python3-torch
// (/usr/bin/python3): CI installs it (.ci/run) and this test fails there without it; elsewhere
// it is skipped with a message saying how to install it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sedna, tempDir } from './helpers/cli.js';
import { shapeImages } from './helpers/images.js';
import { cnnPredict, initCnn } from '../src/learn/cnn.js';
import { writeCnnOnnx } from '../src/learn/cnn-onnx.js';

const PY = '/usr/bin/python3';
const hasTorch = spawnSync(PY, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const ci = process.env.CI === 'true';
if (!hasTorch && !ci) process.stderr.write('learn-plugin-torch: skipped: PyTorch missing (apt-get install -y python3-torch; CI installs it and runs this test)\n');
const LABELS = ['hbar', 'vbar', 'square', 'diag'];

test('torch plug-in: a CNN trained by PyTorch goes through admission, gate and publish; a time-out publishes nothing', { skip: !hasTorch && !ci ? 'python3-torch is not installed (apt-get install -y python3-torch)' : false }, (t) => {
  assert.ok(hasTorch, `CI=true but ${PY} cannot import torch: .ci/run must apt-get install python3-torch`);
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const env = { SEDNA_LL_KB_DATA: join(dir, 'kb'), TORCH_TRAINER_EPOCHS: '15' };
  const run = (args: string[], expect = 0) => {
    const r = sedna(args, { env, timeoutMs: 300_000 });
    assert.equal(r.code, expect, `sedna-ll ${args.join(' ')} -> ${r.code}\n${r.stderr}\n${r.stdout}`);
    return r;
  };
  run(['kb', 'init']);
  const s = shapeImages(240, 4);
  const lines = Array.from({ length: s.n }, (_, i) => JSON.stringify({ id: `sample-torch-${i}`, x: Array.from(s.X.subarray(i * s.d, (i + 1) * s.d), (v) => Math.round(v * 1000) / 1000), label: LABELS[s.y[i]], attrs: { site: 'a' } }));
  const f = join(dir, 'a.jsonl');
  writeFileSync(f, lines.join('\n') + '\n');
  run(['kb', 'samples', 'import', f]);
  const cmd = `${PY} ${join(ROOT, 'examples/trainers/torch/train.py')}`;

  // over the time limit: killed, the round fails, no version
  const slow = run(['kb', 'train', '--trainer-cmd', `sleep 30; ${cmd}`, '--trainer-timeout', '1', '--input-shape', '1,12,12'], 1);
  assert.match(slow.stderr, /--trainer-cmd for task \S+ ran over its time limit of 1 s and was killed/);
  assert.match(run(['kb', 'versions']).stdout + run(['kb', 'versions']).stderr, /no version|^\s*$/i);

  const r = JSON.parse(run(['kb', 'train', '--trainer-cmd', cmd, '--input-shape', '1,12,12', '--json']).stdout);
  assert.ok(r.version >= 1, r.message);
  // the fallback (global) task's first model: gated against nothing but chance
  const g = r.tasks.find((x: { fallback: boolean }) => x.fallback);
  assert.equal(g.accepted, true, JSON.stringify(g));
  assert.ok(g.after.accuracy > 0.7, `held-out accuracy ${g.after.accuracy}`);
  const tasks = (JSON.parse(run(['kb', 'tasks', '--json']).stdout) as { tasks: { id: string; arch: string; inputs: { shape: (number | string)[] }[] }[] }).tasks;
  const rec = tasks.find((x) => x.id === g.task)!;
  assert.equal(rec.arch, 'torch-cnn');
  assert.deepEqual(rec.inputs[0].shape.slice(1), [1, 12, 12]);
});

test('torch plug-in: a parent ONNX (sedna-ll\'s CNN, or a torch export) is loaded into the same torch module with the same outputs', { skip: !hasTorch && !ci ? 'python3-torch is not installed (apt-get install -y python3-torch)' : false }, (t) => {
  assert.ok(hasTorch, `CI=true but ${PY} cannot import torch: .ci/run must apt-get install python3-torch`);
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const net = initCnn([1, 12, 12], [8, 16], [64], 4, 11);
  const parent = join(dir, 'parent.onnx');
  writeFileSync(parent, writeCnnOnnx(net, { inputName: 'input', outputName: 'probabilities', producer: 'test', metadata: {} }));
  const s = shapeImages(6, 5);
  writeFileSync(join(dir, 'x.json'), JSON.stringify(Array.from(s.X)));
  const script = `
import json, sys
sys.path.insert(0, ${JSON.stringify(join(ROOT, 'examples/trainers/torch'))})
import torch
from torch import nn
import train
torch.manual_seed(99)
def load(path):
    body, _, _ = train.build_body(torch, nn, [1, 12, 12], 144, 4)
    return body, train.load_parent(body, path, torch, nn)
x = torch.tensor(json.load(open(sys.argv[2]))).reshape(-1, 1, 12, 12)
body, n = load(sys.argv[1])
p = torch.softmax(body(x), 1)
# the torch export of the loaded module (Gemm transB=1) read back into a fresh module
exported = sys.argv[1] + ".torch.onnx"
torch.onnx.export(nn.Sequential(body, nn.Softmax(dim=1)).eval(), torch.zeros(1, 1, 12, 12), exported, input_names=["input"], output_names=["probabilities"], opset_version=13)
body2, n2 = load(exported)
p2 = torch.softmax(body2(x), 1)
# another architecture (3 classes): the convolutions and the hidden layer load, the last layer does not
body3, _, _ = train.build_body(torch, nn, [1, 12, 12], 144, 3)
n3 = train.load_parent(body3, sys.argv[1], torch, nn)
print(json.dumps({"n": n, "n2": n2, "n3": n3, "p": p.flatten().tolist(), "p2": p2.flatten().tolist()}))
`;
  const r = spawnSync(PY, ['-c', script, parent, join(dir, 'x.json')], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout.trim().split('\n').pop()!) as { n: number; n2: number; n3: number; p: number[]; p2: number[] };
  assert.deepEqual([o.n, o.n2, o.n3], [4, 4, 3]);
  const want = cnnPredict(net, s.X, s.n);
  o.p.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5, `[${i}] torch ${v}, sedna-ll ${want[i]}`));
  o.p2.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5, `[${i}] via the torch export ${v}, sedna-ll ${want[i]}`));
});
