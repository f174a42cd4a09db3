// `sedna-ll infer` end to end: the real CLI, real onnxruntime sessions on tiny generated models,
// a real edge home and SQLite outbox.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { jsonLines, sedna, tempDir } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';
import { makeHome, outboxRows } from './edge-runtime-fixtures.js';
import { homePaths } from '../src/store/home.js';
import { openEdgeDb } from '../src/store/db.js';

const softmax = (z: number[]) => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const close = (got: number[], want: number[], eps = 2e-6) =>
  assert.ok(got.length === want.length && got.every((v, i) => Math.abs(v - want[i]) < eps), `scores ${got} != ${want}`);

type Line = { id: string | number; task: string; label: string | null; scores: number[]; hard: boolean; hard_reasons: string[]; unseen: boolean; unseen_reason?: string; logged: boolean; sample_id?: string };

test('infer: order kept across mixed tasks and small batches; per-task models; unknown attr -> global + unseen', () => {
  const t = tempDir();
  try {
    const a = writeIdentityModel(t.dir, 'a', 3, { softmax: true });
    const b = writeIdentityModel(t.dir, 'b', 3, { softmax: true, scale: 2 });
    const home = join(t.dir, 'home');
    makeHome(home, {
      tasks: [
        { id: 'berlin', model: a, inDim: 3, outDim: 3, attrs: { site: 'berlin' }, labels: ['x', 'y', 'z'] },
        { id: 'paris', model: b, inDim: 3, outDim: 3, attrs: { site: 'paris' }, labels: ['x', 'y', 'z'] },
        { id: 'global', model: a, inDim: 3, outDim: 3, labels: ['x', 'y', 'z'] },
      ],
      unseen: { methods: ['attr'], combine: 'any' },
      hard: [{ type: 'margin', threshold: 0.2 }],
    });
    const sites = ['berlin', 'paris', 'rome', 'berlin', 'paris', 'paris'];
    const recs = Array.from({ length: 61 }, (_, i) => ({ id: `r${i}`, x: [(i % 5) / 2, ((i * 7) % 3) / 3, (i % 2) * 1.5], attrs: { site: sites[i % sites.length] } }));
    const r = sedna(['infer', '--batch', '4', '--seed', '1'], { home, input: recs.map((x) => JSON.stringify(x)).join('\n') + '\n' });
    assert.equal(r.code, 0, r.stderr);
    const out = jsonLines<Line>(r.stdout);
    assert.deepEqual(
      out.map((o) => o.id),
      recs.map((x) => x.id),
    );
    let logged = 0;
    for (let i = 0; i < recs.length; i++) {
      const o = out[i];
      const site = recs[i].attrs.site;
      const task = site === 'rome' ? 'global' : site;
      assert.equal(o.task, task);
      const p = softmax(recs[i].x.map((v) => v * (task === 'paris' ? 2 : 1)));
      close(o.scores, p);
      assert.equal(o.label, ['x', 'y', 'z'][p.indexOf(Math.max(...p))]);
      const sorted = [...p].sort((u, v) => v - u);
      assert.equal(o.hard, sorted[0] - sorted[1] < 0.2, `margin of ${o.id}`);
      assert.equal(o.unseen, site === 'rome');
      if (o.unseen) assert.equal(o.unseen_reason, 'attr');
      assert.equal(o.logged, o.hard || o.unseen);
      if (o.logged) logged++;
    }
    const rows = outboxRows(home);
    const ids = new Set(out.filter((o) => o.logged).map((o) => o.sample_id));
    // identical payloads for the same task are stored once
    assert.equal(rows.length, ids.size);
    assert.ok(logged > 0 && rows.every((row) => ids.has(row.id)));
  } finally {
    t.cleanup();
  }
});

test('infer: bad records are skipped with a one-line reason; --strict stops at the first (exit 1); --no-log', () => {
  const t = tempDir();
  try {
    const m = writeIdentityModel(t.dir, 'm', 2, { softmax: true });
    const home = join(t.dir, 'home');
    makeHome(home, { tasks: [{ id: 'global', model: m, inDim: 2, outDim: 2 }], hard: [{ type: 'cross_entropy', threshold: 1.01 }] });
    const input = ['{"id":"a","x":[1,0]}', '{"x":[1,0', '{"id":"c","x":[1]}', '{"id":"d","x":[1,1e999]}', '{"id":"e","x":[0,1],"task":"nope"}', '[1,2]', '{"id":"g","x":[0,1]}'].join('\n') + '\n';
    const r = sedna(['infer', '-'], { home, input });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      jsonLines<Line>(r.stdout).map((o) => o.id),
      ['a', 'g'],
    );
    const errs = r.stderr.trim().split('\n');
    assert.match(errs[0], /^sedna-ll: line 2: malformed JSON/);
    assert.match(errs[1], /^sedna-ll: line 3 \(id "c"\): x has 1 values, task "global" takes 2$/);
    assert.match(errs[2], /^sedna-ll: line 4 \(id "d"\): x\[1\] = Infinity is not a finite float32$/);
    assert.match(errs[3], /^sedna-ll: line 5 \(id "e"\): unknown task "nope"$/);
    assert.match(errs[4], /^sedna-ll: line 6: expected a JSON object/);
    assert.match(errs[5], /5 bad record\(s\) skipped, 2 processed/);
    assert.equal(outboxRows(home).length, 2);

    const s = sedna(['infer', '--strict', '--no-log'], { home, input: input.replace('{"id":"a","x":[1,0]}', '{"id":"a2","x":[2,0]}') });
    assert.equal(s.code, 1);
    assert.deepEqual(
      jsonLines<Line>(s.stdout).map((o) => [o.id, o.logged]),
      [['a2', false]],
    );
    assert.match(s.stderr.trim(), /^sedna-ll: line 2: malformed JSON.*--strict: stopped\)$/);
    assert.equal(outboxRows(home).length, 2); // --no-log wrote nothing
  } finally {
    t.cleanup();
  }
});

test('infer: logits get softmax; a "probabilities" model that does not output them is a per-record error', () => {
  const t = tempDir();
  try {
    const m = writeIdentityModel(t.dir, 'raw', 3, { softmax: false });
    const home = join(t.dir, 'home');
    makeHome(home, {
      tasks: [
        { id: 'lg', model: m, inDim: 3, outDim: 3, outputKind: 'logits', attrs: { site: 'lg' } },
        { id: 'pr', model: m, inDim: 3, outDim: 3, outputKind: 'probabilities', outputName: 'logits', attrs: { site: 'pr' } },
      ],
      allocation: { fallback: null },
    });
    const r = sedna(['infer'], { home, input: '{"x":[1,2,3],"attrs":{"site":"lg"}}\n{"x":[1,2,3],"attrs":{"site":"pr"}}\n' });
    assert.equal(r.code, 0);
    const out = jsonLines<Line>(r.stdout);
    assert.equal(out.length, 1);
    close(out[0].scores, softmax([1, 2, 3]));
    assert.equal(out[0].label, '2'); // no labels in the index: the class index
    assert.match(r.stderr, /line 2: task "pr": invalid probabilities: score 1 = 2 is outside \[0, 1\]/);
  } finally {
    t.cleanup();
  }
});

test('infer: CSV columns, .npy rows (float64) and PNG/JPEG images with preprocessing', async () => {
  const t = tempDir();
  try {
    const m3 = writeIdentityModel(t.dir, 'm3', 3, { softmax: true });
    const m4 = writeIdentityModel(t.dir, 'm4', 4, { softmax: true, scale: 4 });
    const m6 = writeIdentityModel(t.dir, 'm6', 6, { softmax: true });
    const home = join(t.dir, 'home');
    makeHome(home, {
      tasks: [
        { id: 'vec', model: m3, inDim: 3, outDim: 3, attrs: { site: 'vec' }, preprocessing: { kind: 'vector', scale: 0.5, mean: [1] } },
        { id: 'img', model: m4, inDim: 4, outDim: 4, attrs: { site: 'img' }, preprocessing: { kind: 'image', width: 2, height: 2, channels: 1, layout: 'NHWC', scale: 1 / 255 } },
        // 3 channels, NCHW, per-channel mean/std: checks the channel order of the flat input
        { id: 'rgb', model: m6, inDim: 6, outDim: 6, attrs: { site: 'rgb' }, preprocessing: { kind: 'image', width: 2, height: 1, channels: 3, layout: 'NCHW', mean: [10, 20, 30], std: [100, 50, 25] } },
      ],
      allocation: { fallback: null },
      hard: [{ type: 'cross_entropy', threshold: 1.01 }],
    });
    // CSV: id, site, three features; x' = x * 0.5 - 1
    const csv = join(t.dir, 'in.csv');
    writeFileSync(csv, 'id,site,a,b,c\nk1,vec,2,4,6\nk2,vec,2,oops,6\n');
    let r = sedna(['infer', csv, '--features', 'a..c', '--attrs', 'site'], { home });
    assert.equal(r.code, 0, r.stderr);
    let out = jsonLines<Line>(r.stdout);
    assert.deepEqual(out.map((o) => o.id), ['k1']);
    close(out[0].scores, softmax([0, 1, 2]));
    assert.match(r.stderr, /line 3 \(id "k2"\): feature column 4 = "oops" is not a finite number/);

    // .npy float64, shape (2, 3), hand-written header
    const hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
    const pad = 64 - ((10 + hdr.length + 1) % 64);
    const head = Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]), Buffer.from(hdr + ' '.repeat(pad) + '\n', 'latin1')]);
    head.writeUInt16LE(hdr.length + pad + 1, 8);
    const data = Buffer.from(Float64Array.from([2, 2, 2, 4, 2, 0]).buffer);
    const npy = join(t.dir, 'x.npy');
    writeFileSync(npy, Buffer.concat([head, data]));
    r = sedna(['infer', npy, '--attrs', 'site=vec'], { home });
    assert.equal(r.code, 0, r.stderr);
    out = jsonLines<Line>(r.stdout);
    assert.deepEqual(out.map((o) => o.id), [1, 2]);
    close(out[0].scores, softmax([0, 0, 0]));
    close(out[1].scores, softmax([1, 0, -1]));
    // truncated file: the missing row is reported
    writeFileSync(npy, Buffer.concat([head, data.subarray(0, 30)]));
    r = sedna(['infer', npy, '--attrs', 'site=vec'], { home });
    assert.match(r.stderr, /row 2: file ends after 1 of 2 rows \(truncated\)/);

    // PNG 4x4 in quadrants -> 2x2 gray -> /255 -> identity*4 -> softmax
    const dir = join(t.dir, 'imgs');
    mkdirSync(dir);
    const q = [0, 255, 128, 64];
    const png = new PNG({ width: 4, height: 4 });
    for (let y = 0; y < 4; y++)
      for (let x = 0; x < 4; x++) {
        const v = q[(y < 2 ? 0 : 2) + (x < 2 ? 0 : 1)];
        png.data.set([v, v, v, 255], (y * 4 + x) * 4);
      }
    writeFileSync(join(dir, 'a.png'), PNG.sync.write(png));
    writeFileSync(join(dir, 'b.png'), Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('broken')]));
    // an image of another size than the model's is refused by default (one line naming the file
    // and both sizes); resizing is the operator's opt-in
    r = sedna(['infer', dir, '--attrs', 'site=img'], { home });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /a\.png.*image is 4x4, task "img" takes 2x2/);
    assert.equal(sedna(['config', 'set', 'images.resize', 'true'], { home }).code, 0);
    r = sedna(['infer', dir, '--attrs', 'site=img'], { home });
    assert.equal(r.code, 0, r.stderr);
    out = jsonLines<Line>(r.stdout);
    assert.deepEqual(out.map((o) => [o.id, o.task, o.logged]), [['a.png', 'img', true]]);
    close(out[0].scores, softmax(q.map((v) => (v / 255) * 4)), 1e-5);
    assert.match(r.stderr, /file .*b\.png.*: undecodable PNG/);
    // JPEG (jpeg-js): a constant gray 8x8 image -> four equal inputs -> uniform scores
    const jpeg = (await import('jpeg-js')).default as unknown as { encode: (img: { data: Buffer; width: number; height: number }, q: number) => { data: Buffer } };
    const jdata = Buffer.alloc(8 * 8 * 4, 200);
    const jfile = join(t.dir, 'gray.jpg');
    writeFileSync(jfile, jpeg.encode({ data: jdata, width: 8, height: 8 }, 95).data);
    r = sedna(['infer', jfile, '--attrs', 'site=img'], { home });
    assert.equal(r.code, 0, r.stderr);
    const jl = jsonLines<Line>(r.stdout)[0];
    assert.equal(jl.id, 'gray.jpg');
    close(jl.scores, [0.25, 0.25, 0.25, 0.25], 1e-3);
    const rgb = new PNG({ width: 2, height: 1 });
    rgb.data.set([10, 20, 30, 255, 110, 120, 130, 255]);
    const rgbFile = join(t.dir, 'rgb.png');
    writeFileSync(rgbFile, PNG.sync.write(rgb));
    r = sedna(['infer', rgbFile, '--attrs', 'site=rgb'], { home });
    assert.equal(r.code, 0, r.stderr);
    // NCHW: R plane (10, 110), G plane (20, 120), B plane (30, 130); minus mean, over std per channel
    close(jsonLines<Line>(r.stdout)[0].scores, softmax([0, 1, 0, 2, 0, 4]), 1e-5);
    const kinds = outboxRows(home).map((x) => x.payload_kind);
    assert.deepEqual([...new Set(kinds)].sort(), ['f32', 'jpeg', 'npy', 'png']);
  } finally {
    t.cleanup();
  }
});

test('infer: rate caps hold across runs (counted in the DB); missing and corrupt model files name file and task', () => {
  const t = tempDir();
  try {
    const m = writeIdentityModel(t.dir, 'm', 2, { softmax: true });
    const home = join(t.dir, 'home');
    makeHome(home, { tasks: [{ id: 'global', model: m, inDim: 2, outDim: 2 }], hard: [{ type: 'cross_entropy', threshold: 1.01, caps: { per_hour: 3 } }] });
    const batch = (k: number) => Array.from({ length: 5 }, (_, i) => JSON.stringify({ x: [k, i] })).join('\n');
    const hour = () => Math.floor(Date.now() / 3_600_000);
    const h0 = hour();
    let r = sedna(['infer'], { home, input: batch(1) });
    let out = jsonLines<Line>(r.stdout);
    assert.deepEqual(out.map((o) => o.logged), [true, true, true, false, false]);
    assert.deepEqual(out[4].hard_reasons, ['cross_entropy:capped']);
    assert.equal(out[4].hard, true);
    r = sedna(['infer'], { home, input: batch(2) });
    out = jsonLines<Line>(r.stdout);
    if (hour() === h0) assert.deepEqual(out.map((o) => o.logged), [false, false, false, false, false]);
    assert.equal(outboxRows(home).length, hour() === h0 ? 3 : outboxRows(home).length);

    const file = join(homePaths(home).models, readdirModel(home));
    // a file that is not the model its sha256 names (corrupt, or swapped): refused before loading, exit 5
    writeFileSync(file, 'not an onnx model');
    r = sedna(['infer'], { home, input: batch(3) });
    assert.equal(r.code, 5);
    assert.match(r.stderr.trim(), new RegExp(`^sedna-ll: task "global": model file ${file} does not match its sha256 \\(content [0-9a-f]{12}…\\): swapped or corrupt`));
    rmSync(file);
    r = sedna(['infer'], { home, input: batch(3) });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), `sedna-ll: task "global": model file ${file} is missing`);
  } finally {
    t.cleanup();
  }
});

function readdirModel(home: string): string {
  const idx = JSON.parse(readFileSync(join(homePaths(home).kb, 'local-1', 'index.json'), 'utf8'));
  return `${idx.tasks[0].model.sha256}.onnx`;
}

test('infer: a locked outbox is a one-line error, no line claims logged, nothing stored is lost', () => {
  const t = tempDir();
  try {
    const m = writeIdentityModel(t.dir, 'm', 2, { softmax: true });
    const home = join(t.dir, 'home');
    makeHome(home, { tasks: [{ id: 'global', model: m, inDim: 2, outDim: 2 }], hard: [{ type: 'cross_entropy', threshold: 1.01 }] });
    assert.equal(sedna(['infer'], { home, input: '{"x":[0,1]}\n' }).code, 0);
    const holder = openEdgeDb(homePaths(home).db);
    holder.exec('BEGIN IMMEDIATE'); // another writer holds the write lock past the busy timeout
    let r;
    try {
      r = sedna(['infer'], { home, input: '{"x":[1,0]}\n{"x":[2,0]}\n' });
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr.trim(), /^sedna-ll: cannot log samples to the outbox \(SQLITE_BUSY\): database is locked; nothing of these samples was reported logged$/);
    assert.equal(outboxRows(home).length, 1);
    r = sedna(['infer'], { home, input: '{"x":[1,0]}\n{"x":[2,0]}\n' });
    assert.equal(r.code, 0);
    assert.equal(outboxRows(home).length, 3);
  } finally {
    t.cleanup();
  }
});
