// An image sample's way from the edge to the KB and out again: the edge logs the PNG's original
// bytes with the preprocessing its model used (the index's: size, channels, scale, layout), sync
// uploads both, the KB stores them, `kb samples export` writes them and `kb samples import` of
// that export keeps them. Real edge home, real `kb serve` on loopback, real sync.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initCnn } from '../src/learn/cnn.js';
import { writeCnnOnnx } from '../src/learn/cnn-onnx.js';
import { sedna, tempDir } from './helpers/cli.js';
import { startTestKb } from './helpers/kb-server.js';
import { makeEdge } from './helpers/sync-edge.js';
import { png, shapeImages } from './helpers/images.js';

test('images: the edge logs and uploads each image with the preprocessing its model used; the KB stores, exports and re-imports it', async (t) => {
  const kb = await startTestKb();
  t.after(() => kb.stop());
  const edge = makeEdge(kb);
  t.after(edge.cleanup);
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  // an untrained CNN: near-uniform outputs, so its samples are hard and get logged
  const model = join(dir, 'cnn.onnx');
  writeFileSync(model, writeCnnOnnx(initCnn([1, 12, 12], [4, 8], [16], 4, 3), { inputName: 'input', outputName: 'probabilities', producer: 'test', metadata: {} }));
  const add = sedna(['task', 'add', model, '--task', 'global', '--fallback', '--preprocess-scale', String(1 / 255)], { home: edge.home });
  assert.equal(add.code, 0, add.stderr);
  const s = shapeImages(8, 6);
  const bytes = new Map<string, Buffer>();
  let logged = 0;
  // two batches: one pushed as binary frames (the default), one as JSON (--framing json)
  for (const [part, framing] of [['a', []], ['b', ['--framing', 'json']]] as const) {
    const files = join(dir, `files-${part}`);
    mkdirSync(files);
    for (let i = 0; i < s.n / 2; i++) {
      const k = part === 'a' ? i : i + s.n / 2;
      const b = png(s.X.subarray(k * s.d, (k + 1) * s.d), 12);
      bytes.set(`img${k}.png`, b);
      writeFileSync(join(files, `img${k}.png`), b);
    }
    const inf = sedna(['infer', files, '--attrs', 'site=cam', '--json'], { home: edge.home });
    assert.equal(inf.code, 0, inf.stderr);
    const n = (JSON.parse(inf.stderr.trim().split('\n').pop()!) as { logged: number }).logged;
    assert.ok(n > 0, `nothing logged: ${inf.stderr}`);
    logged += n;
    const sync = sedna(['sync', ...framing], { home: edge.home, timeoutMs: 300_000 });
    assert.equal(sync.code, 0, sync.stderr);
  }

  const exp = join(dir, 'export.jsonl');
  const e = kb.cli(['samples', 'export', '-o', exp]);
  assert.equal(e.code, 0, e.stderr);
  const lines = readFileSync(exp, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { payload_kind: string; payload_b64: string; preprocessing?: Record<string, unknown> });
  assert.equal(lines.length, logged);
  const shas = new Set([...bytes.values()].map((b) => b.toString('base64')));
  for (const l of lines) {
    assert.equal(l.payload_kind, 'png');
    assert.ok(shas.has(l.payload_b64), 'the original PNG bytes, unchanged');
    assert.deepEqual(l.preprocessing, { kind: 'image', width: 12, height: 12, channels: 1, layout: 'NCHW', scale: 1 / 255 });
  }

  // another KB imports the export with the preprocessing kept; a malformed one is a skipped line
  const env2 = { SEDNA_LL_KB_DATA: join(dir, 'kb2') };
  assert.equal(sedna(['kb', 'init'], { env: env2 }).code, 0);
  const bad = { ...lines[0], id: 'bad-preprocessing-1', preprocessing: { kind: 'image', width: 0, height: 12 } };
  writeFileSync(join(dir, 'in.jsonl'), [...lines.map((l) => JSON.stringify(l)), JSON.stringify(bad)].join('\n') + '\n');
  const imp = sedna(['kb', 'samples', 'import', join(dir, 'in.jsonl')], { env: env2 });
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stderr, /in\.jsonl:\d+: "preprocessing": expected kind "image" with integer width and height/);
  const exp2 = join(dir, 'export2.jsonl');
  assert.equal(sedna(['kb', 'samples', 'export', '-o', exp2], { env: env2 }).code, 0);
  const again = readFileSync(exp2, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { preprocessing?: unknown });
  assert.equal(again.length, logged);
  for (const l of again) assert.deepEqual(l.preprocessing, lines[0].preprocessing);
});
