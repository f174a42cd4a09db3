// Images through the KB: `kb samples import DIR --labels labels.csv` (bad images: one line each,
// skipped), JSONL lines naming image files, export -> import of PNG payloads, `kb train` picking
// the CNN on its own for image samples (image preprocessing pinned, model input [N,1,12,12]);
// the edge runs such a CNN on PNG files with the same probabilities as the trainer's forward pass;
// and a model whose input does not fit the images is refused at kb task add, naming both shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { cnnPredict, initCnn } from '../src/learn/cnn.js';
import { writeCnnOnnx } from '../src/learn/cnn-onnx.js';
import { writeDenseOnnx } from '../src/onnx/writer.js';
import { jsonLines, sedna, tempDir } from './helpers/cli.js';
import { png, shapeImages } from './helpers/images.js';

const LABELS = ['hbar', 'vbar', 'square', 'diag'];

/** A PNG header declaring w x h pixels (a decompression bomb needs no more to be refused). */
function bombHeader(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]), Buffer.from('IHDR'), ihdr, Buffer.alloc(4)]);
}

test('images: directory + labels.csv import with bad images skipped, auto CNN on image samples, export/import round trip', (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const env = { SEDNA_LL_KB_DATA: join(dir, 'kb') };
  const run = (args: string[], expect = 0, e: NodeJS.ProcessEnv = env) => {
    const r = sedna(args, { env: e, timeoutMs: 300_000 });
    assert.equal(r.code, expect, `sedna-ll ${args.join(' ')} -> ${r.code}\n${r.stderr}\n${r.stdout}`);
    return r;
  };
  run(['kb', 'init']);
  const imgs = join(dir, 'imgs');
  mkdirSync(join(imgs, 'b'), { recursive: true });
  const s = shapeImages(200, 9);
  const rows = ['file,label,site'];
  for (let i = 0; i < s.n; i++) {
    const name = `${i < 100 ? '' : 'b/'}${String(i).padStart(4, '0')}.png`;
    writeFileSync(join(imgs, name), png(s.X.subarray(i * s.d, (i + 1) * s.d), 12));
    rows.push(`${name},${LABELS[s.y[i]]},a`);
  }
  writeFileSync(join(imgs, 'corrupt.png'), Buffer.concat([bombHeader(12, 12).subarray(0, 33), Buffer.from('not deflate data')]));
  writeFileSync(join(imgs, 'bomb.png'), bombHeader(100_000, 100_000));
  writeFileSync(join(imgs, 'notes.txt'), 'ignored: not an image name');
  rows.push('corrupt.png,hbar,a', 'bomb.png,vbar,a', 'missing.png,diag,a');
  writeFileSync(join(dir, 'labels.csv'), rows.join('\n') + '\n');
  const r = run(['kb', 'samples', 'import', imgs, '--labels', join(dir, 'labels.csv')]);
  assert.match(r.stdout, /^200 sample\(s\) imported, 0 already present, 3 skipped/);
  const errs = r.stderr.trim().split('\n');
  assert.equal(errs.length, 3, r.stderr);
  assert.match(r.stderr, /corrupt\.png: undecodable PNG/);
  assert.match(r.stderr, /bomb\.png: PNG of 100000x100000 = 10000000000 pixels is over the cap of 16777216/);
  assert.match(r.stderr, /labels\.csv: "missing\.png" is not an image file under/);
  // a JSONL line may name an image file (relative to the JSONL)
  writeFileSync(join(dir, 'more.jsonl'), JSON.stringify({ file: 'imgs/0000.png', label: 'hbar', attrs: { site: 'c' } }) + '\n' + JSON.stringify({ file: 'imgs/bomb.png', label: 'hbar' }) + '\n');
  const j = run(['kb', 'samples', 'import', join(dir, 'more.jsonl'), '--max-pixels', '1000']);
  assert.match(j.stdout, /^1 sample\(s\) imported/);
  assert.match(j.stderr, /more\.jsonl:2: image imgs\/bomb\.png: PNG of 100000x100000 = 10000000000 pixels is over the cap of 1000/);

  // no --arch: image samples -> image preprocessing pinned, the CNN chosen
  const rep = JSON.parse(run(['kb', 'train', '--filters', '4,8', '--hidden', '16', '--epochs', '6', '--json']).stdout);
  assert.equal(rep.preprocessing.kind, 'image');
  assert.deepEqual([rep.preprocessing.width, rep.preprocessing.height, rep.preprocessing.channels], [12, 12, 1]);
  const g = rep.tasks.find((x: { fallback: boolean }) => x.fallback);
  assert.equal(g.accepted, true, JSON.stringify(rep.tasks));
  assert.ok(g.after.accuracy > 0.8, `held-out accuracy ${g.after.accuracy}`);
  const { tasks } = JSON.parse(run(['kb', 'tasks', '--json']).stdout) as { tasks: { id: string; arch: string; inputs: { shape: (number | string)[] }[] }[] };
  const gt = tasks.find((x) => x.id === g.task)!;
  assert.equal(gt.arch, 'cnn');
  assert.deepEqual(gt.inputs[0].shape, ['N', 1, 12, 12]);

  // export keeps PNG bytes (payload_b64); another KB imports them unchanged
  const exp = join(dir, 'export.jsonl');
  run(['kb', 'samples', 'export', '-o', exp]);
  const first = JSON.parse(readFileSync(exp, 'utf8').split('\n')[0]);
  assert.equal(first.payload_kind, 'png');
  const env2 = { SEDNA_LL_KB_DATA: join(dir, 'kb2') };
  run(['kb', 'init'], 0, env2);
  assert.match(run(['kb', 'samples', 'import', exp], 0, env2).stdout, /^201 sample\(s\) imported/);
});

test('images: the edge runs a CNN on PNG files with the trainer\'s probabilities; kb task add refuses a model that does not fit the images', (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const net = initCnn([1, 12, 12], [4, 8], [16], 4, 3);
  const model = join(dir, 'cnn.onnx');
  writeFileSync(model, writeCnnOnnx(net, { inputName: 'input', outputName: 'probabilities', producer: 'test', metadata: {} }));
  const home = join(dir, 'home');
  const s = shapeImages(3, 4);
  const files = join(dir, 'files');
  mkdirSync(files);
  for (let i = 0; i < s.n; i++) writeFileSync(join(files, `img${i}.png`), png(s.X.subarray(i * s.d, (i + 1) * s.d), 12));
  assert.equal(sedna(['init', '--device-id', 'cam-1'], { home }).code, 0);
  const add = sedna(['task', 'add', model, '--task', 'global', '--fallback', '--preprocess-scale', String(1 / 255)], { home });
  assert.equal(add.code, 0, add.stderr);
  const r = sedna(['infer', files, '--no-log'], { home });
  assert.equal(r.code, 0, r.stderr);
  const out = jsonLines<{ id: string; scores: number[] }>(r.stdout);
  // the trainer's forward pass on the PNGs' 8-bit pixels / 255
  const X = new Float32Array(s.n * s.d);
  for (let i = 0; i < s.n * s.d; i++) X[i] = Math.round(s.X[i] * 255) / 255;
  const P = cnnPredict(net, X, s.n);
  out.forEach((o, i) => o.scores.forEach((v, j) => assert.ok(Math.abs(v - P[i * 4 + j]) < 1e-5, `${o.id}[${j}]: edge ${v}, trainer ${P[i * 4 + j]}`)));

  // kb task add: a [N, 100] model with 12x12 gray images -> refused, both shapes named
  const env = { SEDNA_LL_KB_DATA: join(dir, 'kb') };
  assert.equal(sedna(['kb', 'init'], { env }).code, 0);
  const W = new Float32Array(100 * 4);
  const flat = join(dir, 'flat.onnx');
  writeFileSync(flat, writeDenseOnnx({ layers: [{ inDim: 100, outDim: 4, W, b: new Float32Array(4) }] }));
  const bad = sedna(['kb', 'task', 'add', flat, '--task', 'x', '--image', '12x12x1'], { env });
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /the model's input \[N,100\] does not take the images: preprocessing 12x12x1 \(NCHW\) gives \[N,1,12,12\]/);
  const good = sedna(['kb', 'task', 'add', model, '--task', 'x', '--image', '12x12x1'], { env });
  assert.equal(good.code, 0, good.stderr);
});

/** A baseline JPEG (jpeg-js) whose frame header is patched to declare w x h pixels. */
function jpegDeclaring(w: number, h: number): Buffer {
  const jpeg = createRequire(import.meta.url)('jpeg-js') as { encode: (img: { width: number; height: number; data: Buffer }, q: number) => { data: Buffer } };
  const b = Buffer.from(jpeg.encode({ width: 16, height: 16, data: Buffer.alloc(16 * 16 * 4, 200) }, 80).data);
  for (let p = 2; p + 9 < b.length; ) {
    const m = b[p + 1];
    if (m === 0xc0 || m === 0xc2) {
      b.writeUInt16BE(h, p + 5);
      b.writeUInt16BE(w, p + 7);
      return b;
    }
    p += 2 + b.readUInt16BE(p + 2);
  }
  throw new Error('no SOF marker');
}

test('edge images: the pixel cap is a config key checked from the header; a wrong-size image is refused (one line naming the file), resizing is opt-in', (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const net = initCnn([1, 12, 12], [4, 8], [16], 4, 3);
  const model = join(dir, 'cnn.onnx');
  writeFileSync(model, writeCnnOnnx(net, { inputName: 'input', outputName: 'probabilities', producer: 'test', metadata: {} }));
  const home = join(dir, 'home');
  const s = shapeImages(2, 4);
  const files = join(dir, 'files');
  mkdirSync(files);
  writeFileSync(join(files, 'a-good.png'), png(s.X.subarray(0, s.d), 12));
  writeFileSync(join(files, 'b-big.png'), png(new Float32Array(24 * 24).fill(0.5), 24));
  // ~36 MP declared by a few hundred bytes: jpeg-js took ~14 s and 256 MB to decode such a file
  writeFileSync(join(files, 'c-36mp.jpg'), jpegDeclaring(7200, 5000));
  assert.equal(sedna(['init', '--device-id', 'cam-1'], { home }).code, 0);
  assert.equal(sedna(['task', 'add', model, '--task', 'global', '--fallback', '--preprocess-scale', String(1 / 255)], { home }).code, 0);

  const r = sedna(['infer', files, '--no-log'], { home });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(jsonLines<{ id: string }>(r.stdout).map((o) => o.id), ['a-good.png'], 'the good image is inferred, the others skipped');
  const lines = r.stderr.trim().split('\n').filter((l) => l.includes(': file '));
  assert.equal(lines.length, 2, r.stderr);
  assert.match(r.stderr, /2 bad record\(s\) skipped, 1 processed/);
  assert.match(lines[0], /b-big\.png.*image is 24x24, task "global" takes 12x12 \(resize with: sedna-ll config set images\.resize true\)/);
  assert.match(lines[1], /c-36mp\.jpg.*JPEG of 7200x5000 = 36000000 pixels is over the cap of 16777216 \(config images\.max_pixels\)/);

  // a cap is a config key (validated: a non-integer is refused and nothing is written)
  assert.equal(sedna(['config', 'set', 'images.max_pixels', '"many"'], { home }).code, 2);
  assert.equal(sedna(['config', 'set', 'images.max_pixels', '200'], { home }).code, 0);
  assert.equal(sedna(['config', 'set', 'images.resize', 'true'], { home }).code, 0);
  const r2 = sedna(['infer', files, '--no-log'], { home });
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(jsonLines<{ id: string }>(r2.stdout).map((o) => o.id), ['a-good.png'], '144 pixels pass a cap of 200; 576 do not');
  assert.match(r2.stderr, /b-big\.png.*PNG of 24x24 = 576 pixels is over the cap of 200 \(config images\.max_pixels\)/);
  assert.equal(sedna(['config', 'set', 'images.max_pixels', '1000'], { home }).code, 0);
  const r3 = sedna(['infer', files, '--no-log'], { home });
  assert.deepEqual(jsonLines<{ id: string }>(r3.stdout).map((o) => o.id), ['a-good.png', 'b-big.png'], 'images.resize true: the 24x24 image is resized');
});
