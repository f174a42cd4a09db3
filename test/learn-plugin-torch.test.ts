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
