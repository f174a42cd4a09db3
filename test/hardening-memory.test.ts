// Bounded memory against hostile inputs and a hostile KB (issue 16): each case runs the real
// CLI as a child, checks the documented outcome (exit code, one line naming the input) and its
// peak RSS against a stated cap. The caps are several times what the case needs and far below
// what the unbounded code took (1.5 GB PNG, 3.3 GB sync, unbounded npy / probe / line).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { PNG } from 'pngjs';
import { tempDir } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';
import { reluModel } from './helpers/onnx-graph.js';
import { rawTarGz } from './helpers/rollout-fixtures.js';
import { makeHome } from './edge-runtime-fixtures.js';
import { makeEdge, seedOutbox } from './helpers/sync-edge.js';
import { boundedRun } from './fuzz/bounded-run.js';
import { pngDeclaring } from './fuzz/decoders.js';
import { generateSigningKeys } from '../src/format/signature.js';
import { randomBytes } from 'node:crypto';

/** Peak RSS caps (MB) of the CLI child per case. A bare `sedna-ll infer` with ORT loaded peaks near 120 MB. */
const CAP_MB = { image: 300, npy: 250, line: 400, sync: 350, probe: 400, bundle: 300 };

function home() {
  const t = tempDir('sedna-ll-mem-');
  const h = join(t.dir, 'home');
  makeHome(h, {
    tasks: [
      { id: 'vec', model: writeIdentityModel(t.dir, 'id3', 3, { softmax: true }), inDim: 3, outDim: 3, attrs: { site: 'vec' } },
      { id: 'img', model: writeIdentityModel(t.dir, 'id4', 4, { softmax: true }), inDim: 4, outDim: 4, attrs: { site: 'img' }, preprocessing: { kind: 'image', width: 2, height: 2, channels: 1, layout: 'NHWC', scale: 1 / 255 } },
    ],
    allocation: { fallback: null },
  });
  return { ...t, home: h };
}

function smallPng(): Buffer {
  const p = new PNG({ width: 2, height: 2 }); // the size the task takes (other sizes are refused)
  p.data.fill(128);
  return PNG.sync.write(p);
}

test('infer: a small PNG declaring 16000x16000 is refused before decoding; a FIFO in DIR is skipped, not waited on', async (t) => {
  const h = home();
  try {
    const dir = join(h.dir, 'imgs');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a-huge.png'), pngDeclaring(16000, 16000, Buffer.alloc(4096)));
    writeFileSync(join(dir, 'b-notzlib.png'), Buffer.concat([pngDeclaring(2, 2, Buffer.alloc(1)).subarray(0, 33), Buffer.from([0, 0, 0, 4, 0x49, 0x44, 0x41, 0x54, 1, 2, 3, 4, 0, 0, 0, 0])]));
    execFileSync('mkfifo', [join(dir, 'c-fifo.png')]);
    writeFileSync(join(dir, 'd-good.png'), smallPng());
    const r = await boundedRun(['infer', dir, '--task', 'img', '--no-log'], { home: h.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 1, 'the good image is processed');
    assert.match(r.stderr, /a-huge\.png.*PNG of 16000x16000 = 256000000 pixels is over the cap of 16777216/);
    assert.match(r.stderr, /b-notzlib\.png.*(not valid zlib|undecodable)/);
    assert.match(r.stderr, /c-fifo\.png.*not a regular file/);
    t.diagnostic(`peak RSS ${r.peakRssMb} MB (cap ${CAP_MB.image} MB), ${r.fsWrite} writes`);
    assert.ok(r.peakRssMb < CAP_MB.image, `peak RSS ${r.peakRssMb} MB >= ${CAP_MB.image} MB`);
  } finally {
    h.cleanup();
  }
});

test('infer: an .npy with a zero-size feature dimension and 1e11 rows is refused at once (exit 2)', async (t) => {
  const h = home();
  try {
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 0), }";
    dict += ' '.repeat((64 - ((10 + dict.length + 1) % 64)) % 64) + '\n';
    const head = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
    head.writeUInt16LE(dict.length, 8);
    const f = join(h.dir, 'zero.npy');
    writeFileSync(f, Buffer.concat([head, Buffer.from(dict, 'latin1')]));
    const r = await boundedRun(['infer', f, '--task', 'vec', '--no-log'], { home: h.home });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /zero\.npy: .*zero-size feature dimension/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    t.diagnostic(`peak RSS ${r.peakRssMb} MB (cap ${CAP_MB.npy} MB), ${r.fsWrite} writes`);
    assert.ok(r.peakRssMb < CAP_MB.npy, `peak RSS ${r.peakRssMb} MB`);
  } finally {
    h.cleanup();
  }
});

test('infer: a 72 MB JSONL line is one skipped record (the line cap), the records after it are processed', async (t) => {
  const h = home();
  try {
    const f = join(h.dir, 'long.jsonl');
    const out = createWriteStream(f);
    out.write('{"x":[1,0,0]}\n{"x":[');
    const block = '0.5,'.repeat(256 * 1024); // 1 MiB
    for (let i = 0; i < 72; i++) out.write(block);
    out.write('1]}\n{"x":[0,1,0]}\n');
    await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
    const r = await boundedRun(['infer', f, '--task', 'vec', '--no-log'], { home: h.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 2);
    assert.match(r.stderr, /line 2: line longer than 64 MiB \(the line cap\)/);
    t.diagnostic(`peak RSS ${r.peakRssMb} MB (cap ${CAP_MB.line} MB), ${r.fsWrite} writes`);
    assert.ok(r.peakRssMb < CAP_MB.line, `peak RSS ${r.peakRssMb} MB`);
  } finally {
    h.cleanup();
  }
});

test('sync: a KB answering with an endless body fails the run within the answer cap', async (t) => {
  // an answer that never ends: 1 MiB chunks until the client goes away
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  const srv = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const pump = () => {
        while (res.write(chunk)) if (res.destroyed) return;
      };
      res.on('drain', pump);
      res.on('close', () => res.off('drain', pump));
      pump();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  const edge = makeEdge({ url, deviceToken: 'sll_dev_x', publicKeyPem: generateSigningKeys().publicKey });
  try {
    seedOutbox(edge.home, 3, 16);
    for (const args of [['sync', '--push-only', '--retries', '0'], ['sync', '--pull-only', '--retries', '0']]) {
      const r = await boundedRun(args, { home: edge.home });
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, /larger than 67108864 bytes: refused/);
      t.diagnostic(`peak RSS ${r.peakRssMb} MB (cap ${CAP_MB.sync} MB), ${r.fsWrite} writes`);
      assert.ok(r.peakRssMb < CAP_MB.sync, `${args.join(' ')}: peak RSS ${r.peakRssMb} MB`);
    }
  } finally {
    edge.cleanup();
    srv.closeAllConnections();
    srv.close();
  }
});

test('task add: a model declaring input [N,65536,65536] is refused before the probe allocates it', async (t) => {
  const h = home();
  try {
    for (const dims of [['N', 65536, 65536], ['N', 5e7]]) {
      const f = join(h.dir, `huge-${dims.length}.onnx`);
      writeFileSync(f, reluModel(dims));
      const r = await boundedRun(['task', 'add', f, '--task', `huge${dims.length}`], { home: h.home });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /values per sample, over the cap of 33554432/);
      t.diagnostic(`peak RSS ${r.peakRssMb} MB (cap ${CAP_MB.probe} MB), ${r.fsWrite} writes`);
      assert.ok(r.peakRssMb < CAP_MB.probe, `peak RSS ${r.peakRssMb} MB`);
    }
  } finally {
    h.cleanup();
  }
});

test('model install: an unsigned bundle with a 32 MB model entry is refused before anything is extracted', async (t) => {
  const h = home();
  try {
    const f = join(h.dir, 'bomb.tar.gz');
    // low-entropy bytes (4 bits each): compress ~2:1, under tar's 1000:1 ratio guard, so only
    // the index-first check stands between this entry and the disk
    const data = randomBytes(32 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] &= 0x0f;
    writeFileSync(f, rawTarGz([{ path: `models/${'ab'.repeat(32)}.onnx`, data }]));
    const tmp = join(h.home, 'tmp');
    const before = existsSync(tmp) ? readdirSync(tmp) : [];
    const r = await boundedRun(['model', 'install', f], { home: h.home });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /bomb\.tar\.gz: bundle refused: missing index\.json/);
    assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], before);
    // fsWrite counts write operations: extracting the entry first would be thousands of them
    assert.ok(r.fsWrite < 1000, `${r.fsWrite} file-system writes`);
    t.diagnostic(`peak RSS ${r.peakRssMb} MB (cap ${CAP_MB.bundle} MB), ${r.fsWrite} writes`);
    assert.ok(r.peakRssMb < CAP_MB.bundle, `peak RSS ${r.peakRssMb} MB`);
  } finally {
    h.cleanup();
  }
});
