// Regression tests of the hostile-input campaign (issue 16): exit codes, BOM, config null,
// terminal escapes, serve 413, id collisions, reserved import ids, ack checks, private modes,
// a missing edge.db. Real CLI, real SQLite, real HTTP on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { BIN, ROOT, sedna, sednaSpawn, tempDir } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';
import { makeHome } from './edge-runtime-fixtures.js';
import { startTestKb } from './helpers/kb-server.js';
import { bundleOf, generateSigningKeys, initEdge, makeVersion } from './helpers/rollout-fixtures.js';
import { edgeIds, makeEdge, sednaAsync, seedOutbox } from './helpers/sync-edge.js';
import { SqliteKbStore } from '../src/kb/sqlite-store.js';
import { kbPaths } from '../src/kb/paths.js';
import { exportSamples } from '../src/kb/samples-io.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const mode = (p: string) => statSync(p).mode & 0o777;

function kbData() {
  const t = tempDir('sedna-ll-harden-kb-');
  const data = join(t.dir, 'kb');
  const r = sedna(['kb', 'init', '--data', data]);
  assert.equal(r.code, 0, r.stderr);
  return { ...t, data, kb: (args: string[]) => sedna(['kb', ...args, '--data', data]) };
}

function edgeHome() {
  const t = tempDir('sedna-ll-harden-edge-');
  const home = join(t.dir, 'home');
  makeHome(home, { tasks: [{ id: 'global', model: writeIdentityModel(t.dir, 'id3', 3, { softmax: true }), inDim: 3, outDim: 3, labels: ['a', 'b', 'c'] }] });
  return { ...t, home };
}

test('kb samples import / kb label import: junk exits 1 (the kbOpen callback exit code is kept)', () => {
  const k = kbData();
  try {
    const junk = join(k.dir, 'junk.bin');
    writeFileSync(junk, Buffer.from([0x00, 0xff, 0x13, 0x0a, 0x7b, 0x0a, 0x01, 0x02]));
    const a = k.kb(['samples', 'import', junk]);
    assert.equal(a.code, 1, a.stderr);
    assert.match(a.stderr, /junk\.bin:1: .*\(skipped\)/);
    const jl = join(k.dir, 'labels.jsonl');
    writeFileSync(jl, 'not json\n{"id": 3}\n');
    assert.equal(k.kb(['label', 'import', jl]).code, 1);
    const csv = join(k.dir, 'labels.csv');
    writeFileSync(csv, 'id,label\n"unterminated,x\n,\n');
    assert.equal(k.kb(['label', 'import', csv]).code, 1);
    // a good file still exits 0
    const good = join(k.dir, 'good.jsonl');
    writeFileSync(good, '{"x":[1,2,3],"label":"a"}\n');
    assert.equal(k.kb(['samples', 'import', good]).code, 0);
  } finally {
    k.cleanup();
  }
});

test('a UTF-8 BOM before the first record is not part of it (infer JSONL, kb samples import)', () => {
  const e = edgeHome();
  const k = kbData();
  try {
    const f = join(e.dir, 'bom.jsonl');
    writeFileSync(f, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"x":[1,0,0]}\n{"x":[0,1,0]}\n')]));
    const r = sedna(['infer', f, '--no-log'], { home: e.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 2);
    assert.equal(r.stderr, '');
    const imp = k.kb(['samples', 'import', f, '--json']);
    assert.equal(imp.code, 0, imp.stderr);
    assert.equal(JSON.parse(imp.stdout).imported, 2);
  } finally {
    e.cleanup();
    k.cleanup();
  }
});

test('config.json holding null (or an array) is one clear line, exit 2 (an invalid config, as in every command)', () => {
  const e = edgeHome();
  try {
    for (const text of ['null', '[1]', '7']) {
      writeFileSync(join(e.home, 'config.json'), text);
      const r = sedna(['status'], { home: e.home });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /config\.json: expected a JSON object/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
  } finally {
    e.cleanup();
  }
});

test('kb samples ls shows terminal escapes in labels as \\xNN, never raw', () => {
  const k = kbData();
  try {
    const f = join(k.dir, 's.jsonl');
    writeFileSync(f, JSON.stringify({ x: [1, 2], label: 'cat\u001b[2J\u001b]0;pwned\u0007\r' }) + '\n');
    assert.equal(k.kb(['samples', 'import', f]).code, 0);
    const ls = k.kb(['samples', 'ls']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f]/.test(ls.stdout), 'no control characters in the table');
    assert.match(ls.stdout, /cat\\x1b\[2J\\x1b\]0;pwned\\x07\\x0d/);
  } finally {
    k.cleanup();
  }
});

test('serve answers 413 (not a reset) to a body over --max-body-mb', async () => {
  const e = edgeHome();
  const child = sednaSpawn(['serve', '--port', '0', '--host', '127.0.0.1', '--max-body-mb', '1'], { home: e.home });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        const m = /127\.0\.0\.1:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (c) => reject(new Error(`serve exited ${c}`)));
    });
    const big = '{"x":[' + '1,'.repeat(700_000) + '1]}';
    for (const chunked of [false, true]) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/infer', headers: chunked ? {} : { 'content-length': Buffer.byteLength(big) } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end(big);
      });
      assert.equal(status, 413, chunked ? 'chunked body' : 'declared content-length');
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    e.cleanup();
  }
});

test('KB: an id pushed again with another payload is refused (never acked), import ids are reserved for import', async () => {
  const kb = await startTestKb();
  try {
    const push = async (samples: object[]) => {
      const res = await fetch(`${kb.url}/v1/samples`, { method: 'POST', headers: { authorization: `Bearer ${kb.deviceToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ samples }) });
      return { status: res.status, body: (await res.json()) as { stored: string[]; rejected?: { id: string; reason: string }[] } };
    };
    const sample = (id: string, p: Buffer) => ({ id, task: 't', attrs: {}, payload_kind: 'f32', payload_b64: p.toString('base64'), payload_sha: sha(p), pred_label: null, scores: [], hard: true, hard_reasons: [], unseen: false, unseen_reason: null, kb_version: null, created_at: Date.now() });
    const p1 = Buffer.from(new Float32Array([1, 2]).buffer);
    const p2 = Buffer.from(new Float32Array([3, 4]).buffer);
    const id = '0190aaaa-bbbb-7ccc-8ddd-eeeeffff0001';
    assert.deepEqual((await push([sample(id, p1)])).body.stored, [id]);
    assert.deepEqual((await push([sample(id, p1)])).body.stored, [id], 'the same sample again is acked (a retry)');
    const clash = await push([sample(id, p2)]);
    assert.equal(clash.status, 409);
    assert.deepEqual(clash.body.stored, []);
    assert.match(clash.body.rejected![0].reason, /different payload/);
    const imp = 'imp-' + 'a'.repeat(40);
    const r = await push([sample(imp, p2), sample('0190aaaa-bbbb-7ccc-8ddd-eeeeffff0002', p2)]);
    assert.deepEqual(r.body.stored, ['0190aaaa-bbbb-7ccc-8ddd-eeeeffff0002']);
    assert.match(r.body.rejected![0].reason, /reserved/);
  } finally {
    await kb.stop();
  }
});

test('sync refuses a KB answer acking ids never sent, and an empty ack of a non-empty batch', async () => {
  for (const answer of ['foreign', 'empty'] as const) {
    let calls = 0;
    const srv = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        calls++;
        if (req.url?.startsWith('/v1/samples')) {
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ stored: answer === 'foreign' ? ['0190ffff-0000-7000-8000-000000000000'] : [] }));
        }
        res.writeHead(404).end('{}');
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    const edge = makeEdge({ url, deviceToken: 'sll_dev_x', publicKeyPem: generateSigningKeys().publicKey });
    try {
      seedOutbox(edge.home, 5, 16);
      const r = await sednaAsync(['sync', '--push-only', '--retries', '0'], { home: edge.home });
      assert.notEqual(r.code, 0, `${answer}: ${r.stdout}`);
      assert.match(r.stderr, answer === 'foreign' ? /did not send/ : /stores none/);
      assert.equal(edgeIds(edge.home).pending.length, 5, 'nothing marked uploaded');
      assert.ok(calls >= 1);
    } finally {
      edge.cleanup();
      srv.close();
    }
  }
});

test('private modes: new homes / KB dirs are 0700 with 0600 files; looser existing ones are tightened on open', () => {
  const e = edgeHome();
  const t = tempDir('sedna-ll-harden-modes-');
  try {
    assert.equal(mode(e.home), 0o700);
    for (const f of ['edge.db', 'config.json']) assert.equal(mode(join(e.home, f)), 0o600, f);
    chmodSync(e.home, 0o755);
    chmodSync(join(e.home, 'edge.db'), 0o644);
    chmodSync(join(e.home, 'config.json'), 0o644);
    assert.equal(sedna(['status'], { home: e.home }).code, 0);
    assert.equal(mode(e.home), 0o700);
    assert.equal(mode(join(e.home, 'edge.db')), 0o600);
    assert.equal(mode(join(e.home, 'config.json')), 0o600);
    // a KB data dir the operator created beforehand (0755)
    const data = join(t.dir, 'kb');
    mkdirSync(data, { mode: 0o755 });
    chmodSync(data, 0o755);
    assert.equal(sedna(['kb', 'init', '--data', data]).code, 0);
    assert.equal(mode(data), 0o700);
    assert.equal(mode(join(data, 'kb.db')), 0o600);
    chmodSync(data, 0o755);
    chmodSync(join(data, 'kb.db'), 0o644);
    assert.equal(sedna(['kb', 'samples', 'ls', '--data', data]).code, 0);
    assert.equal(mode(data), 0o700);
    assert.equal(mode(join(data, 'kb.db')), 0o600);
  } finally {
    e.cleanup();
    t.cleanup();
  }
});

test('a home whose edge.db is gone is an error naming it, not an empty edge', () => {
  const e = edgeHome();
  try {
    for (const f of ['edge.db', 'edge.db-wal', 'edge.db-shm']) rmSync(join(e.home, f), { force: true });
    for (const args of [['status'], ['samples', 'ls']]) {
      const r = sedna(args, { home: e.home });
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /edge\.db: missing/);
    }
  } finally {
    e.cleanup();
  }
});

test('kb samples export to a slow reader: no listener piles up per backpressure wait', async () => {
  const t = tempDir('sedna-ll-harden-export-');
  const store = new SqliteKbStore(kbPaths(join(t.dir, 'kb')));
  const warnings: Error[] = [];
  const onWarn = (w: Error) => warnings.push(w);
  process.on('warning', onWarn);
  try {
    // 12 pages of 1000: one backpressure wait per page with a 1-byte high-water mark
    const samples = Array.from({ length: 12_000 }, (_, i) => {
      const p = Buffer.from(new Float32Array([i]).buffer);
      return { id: `exp-${String(i).padStart(8, '0')}`, task: 't', attrs: {}, payload_kind: 'f32' as const, payload: p, payload_sha: sha(p), pred_label: null, scores: [], hard: false, hard_reasons: [], unseen: false, unseen_reason: null, kb_version: null, created_at: 0, label: null };
    });
    await store.putSamples(null, samples);
    const out = new Writable({ highWaterMark: 1, write: (_c, _e, cb) => void setImmediate(cb) });
    const n = await exportSamples(store, out, {});
    assert.equal(n, 12_000);
    assert.equal(out.listenerCount('error'), 0);
    assert.equal(out.listenerCount('drain'), 0);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(warnings.map((w) => w.name), []);
  } finally {
    process.off('warning', onWarn);
    await store.close();
    t.cleanup();
  }
});

test('a model file swapped for another valid model under its sha256 name is refused (exit 5), not served', () => {
  const e = edgeHome();
  try {
    const models = join(e.home, 'models');
    const [name] = readdirSync(models).filter((f) => f.endsWith('.onnx'));
    copyFileSync(writeIdentityModel(e.dir, 'other', 3, { softmax: true, scale: 2 }), join(models, name));
    const r = sedna(['infer', '--no-log'], { home: e.home, input: '{"x":[1,0,0]}\n' });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /does not match its sha256 .*swapped or corrupt/);
    assert.equal(r.stdout, '');
  } finally {
    e.cleanup();
  }
});

test('model activate of an older signed version is refused without --allow-downgrade', async () => {
  const t = tempDir('sedna-ll-harden-downgrade-');
  try {
    const keys = generateSigningKeys();
    const home = join(t.dir, 'home');
    initEdge(home, keys);
    for (const v of [1, 2]) {
      const f = await bundleOf(makeVersion(keys, v, [{ id: 'global', seed: v }]), join(t.dir, `v${v}.tar.gz`));
      const r = sedna(['model', 'install', f, '--activate'], { home });
      assert.equal(r.code, 0, r.stderr);
    }
    const down = sedna(['model', 'activate', '1'], { home });
    assert.equal(down.code, 2, down.stderr);
    assert.match(down.stderr, /version 1 is older than the active version 2: refusing a downgrade; pass --allow-downgrade/);
    const ok = sedna(['model', 'activate', '1', '--allow-downgrade', '--json'], { home });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).active_version, '1');
  } finally {
    t.cleanup();
  }
});

test('a read-only home: status and samples ls work (read-only open), infer says "read-only" and names the path', (t) => {
  const e = edgeHome();
  try {
    // root writes anywhere: run the CLI as nobody when we are root, on a home it owns but cannot write
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const run = (args: string[], input = '') =>
      spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, input, encoding: 'utf8', env: { ...process.env, SEDNA_LL_HOME: e.home }, ...asUser });
    if ('uid' in asUser) {
      const probe = run(['--version']);
      if (probe.status !== 0) return t.skip(`the CLI does not run as uid 65534 here: ${probe.stderr.trim().split('\n')[0]}`);
      execFileSync('chown', ['-R', '65534:65534', e.dir]);
    }
    chmodSync(join(e.home, 'edge.db'), 0o400);
    chmodSync(e.home, 0o500);
    const st = run(['status', '--json']);
    assert.equal(st.status, 0, st.stderr);
    assert.equal(JSON.parse(st.stdout).device, 'edge-test');
    const ls = run(['samples', 'ls']);
    assert.equal(ls.status, 0, ls.stderr);
    const inf = run(['infer'], '{"x":[1,0,0]}\n');
    assert.equal(inf.status, 1);
    assert.match(inf.stderr, new RegExp(`${e.home}: read-only; cannot open ${e.home}/edge\\.db`));
  } finally {
    chmodSync(e.home, 0o700);
    e.cleanup();
  }
});
