// `kb train --arch cnn` on a real KB through the CLI: image-shaped f32 samples of two sites train
// per-site CNNs (exported as ONNX with a [N,1,12,12] input, accepted by the gate), a later small
// site is warm-started from the best-scoring related CNN, and --arch auto picks the CNN once a
// task's model declares [N,C,H,W].
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sedna, tempDir } from './helpers/cli.js';
import { shapeImages } from './helpers/images.js';

const LABELS = ['hbar', 'vbar', 'square', 'diag'];

function jsonl(site: string, n: number, seed: number, flip: boolean): string {
  const s = shapeImages(n, seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    let x = Array.from(s.X.subarray(i * s.d, (i + 1) * s.d), (v) => Math.round(v * 1000) / 1000);
    // site "b" sees the images transposed: its horizontal bars are site a's vertical ones
    if (flip) x = x.map((_, p) => x[(p % 12) * 12 + Math.floor(p / 12)]);
    lines.push(JSON.stringify({ id: `sample-${site}-${seed}-${i}`, x, label: LABELS[s.y[i]], attrs: { site } }));
  }
  return lines.join('\n') + '\n';
}

test('kb train --arch cnn: per-site CNNs through the gate, transfer to a small related site, auto choice afterwards', (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const env = { SEDNA_LL_KB_DATA: join(dir, 'kb') };
  const run = (args: string[], expect = 0) => {
    const r = sedna(args, { env, timeoutMs: 300_000 });
    assert.equal(r.code, expect, `sedna-ll ${args.join(' ')} -> ${r.code}\n${r.stderr}\n${r.stdout}`);
    return r;
  };
  run(['kb', 'init']);
  for (const [site, seed, flip] of [['a', 1, false], ['b', 2, true]] as const) {
    const f = join(dir, `${site}.jsonl`);
    writeFileSync(f, jsonl(site, 240, seed, flip));
    run(['kb', 'samples', 'import', f]);
  }
  const usage = run(['kb', 'train', '--arch', 'cnn', '--input-shape', '1,12,13'], 1);
  assert.match(usage.stderr, /input shape \[1,12,13\] holds 156 values, the samples have 144/);
  const r1 = JSON.parse(run(['kb', 'train', '--arch', 'cnn', '--input-shape', '1,12,12', '--filters', '4,8', '--hidden', '16', '--epochs', '8', '--json']).stdout);
  const t1 = new Map<string, { accepted: boolean; after: { accuracy: number } }>(r1.tasks.map((t: { task: string }) => [t.task, t]));
  for (const id of ['a', 'b']) {
    assert.equal(t1.get(id)?.accepted, true, JSON.stringify(r1.tasks));
    assert.ok(t1.get(id)!.after.accuracy > 0.85, `site ${id}: ${t1.get(id)!.after.accuracy}`);
  }
  const { tasks } = JSON.parse(run(['kb', 'tasks', '--json']).stdout) as { tasks: { id: string; arch: string; inputs: { shape: (number | string)[] }[] }[] };
  const a = tasks.find((t) => t.id === 'a')!;
  assert.equal(a.arch, 'cnn');
  assert.deepEqual(a.inputs[0].shape, ['N', 1, 12, 12]);

  // a small new site like a: related by score, warm-started; --arch auto keeps the CNN (the
  // tasks' models declare [N,1,12,12])
  const f = join(dir, 'c.jsonl');
  writeFileSync(f, jsonl('c', 40, 3, false));
  run(['kb', 'samples', 'import', f]);
  const r2 = JSON.parse(run(['kb', 'train', '--filters', '4,8', '--hidden', '16', '--epochs', '4', '--json']).stdout);
  const c = r2.tasks.find((t: { task: string }) => t.task === 'c');
  assert.equal(c.kind, 'new');
  assert.equal(c.parent, 'a', JSON.stringify(c.relation));
  assert.equal(c.warm_start, true);
});
