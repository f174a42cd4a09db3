// `sedna-ll serve` round trips on a Unix socket and on a loopback port (real child process,
// real HTTP), a version switch without restart (SIGHUP), and graceful SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { ChildProcess } from 'node:child_process';
import { sednaSpawn, tempDir } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';
import { buildIndex, makeHome, outboxRows } from './edge-runtime-fixtures.js';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths } from '../src/store/home.js';
import { activateVersion, installVersion } from '../src/store/versions.js';

type Target = { socketPath: string } | { host: string; port: number };

function call(target: Target, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = request({ ...target, method, path, headers: data ? { 'content-type': 'application/json', 'content-length': data.length, ...headers } : headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const stderrOf = new WeakMap<ChildProcess, () => string>();

function listening(child: ChildProcess): Promise<{ listening: string; port?: number }> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    stderrOf.set(child, () => err);
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const i = out.indexOf('\n');
      if (i >= 0) resolve(JSON.parse(out.slice(0, i)));
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

const exitOf = (child: ChildProcess) => new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

function setup(dir: string): string {
  const m = writeIdentityModel(dir, 'm', 2, { softmax: true });
  const home = join(dir, 'home');
  makeHome(home, {
    tasks: [
      { id: 'global', model: m, inDim: 2, outDim: 2, labels: ['no', 'yes'] },
      { id: 'berlin', model: m, inDim: 2, outDim: 2, labels: ['no', 'yes'], attrs: { site: 'berlin' } },
    ],
    hard: [{ type: 'margin', threshold: 0.1 }],
  });
  return home;
}

test('serve on a Unix socket: single and batch requests, logging, healthz, version switch on SIGHUP, graceful SIGTERM', async () => {
  const t = tempDir();
  const sock = join(t.dir, 's.sock');
  const home = setup(t.dir);
  const child = sednaSpawn(['serve', '--socket', sock], { home });
  try {
    const l = await listening(child);
    assert.equal(l.listening, `unix:${sock}`);
    const target = { socketPath: sock };
    let r = await call(target, 'GET', '/healthz');
    assert.deepEqual([r.status, r.json.ok, r.json.version, r.json.tasks], [200, true, 'local-1', 2]);
    // near-tie -> margin filter: hard and logged before the answer
    r = await call(target, 'POST', '/infer', { id: 'q1', x: [0.5, 0.52], attrs: { site: 'berlin' } });
    assert.equal(r.status, 200);
    assert.deepEqual([r.json.id, r.json.task, r.json.label, r.json.hard, r.json.hard_reasons, r.json.logged], ['q1', 'berlin', 'yes', true, ['margin'], true]);
    assert.ok(outboxRows(home).some((row) => row.id === r.json.sample_id), 'logged sample is in the outbox when the answer arrives');
    r = await call(target, 'POST', '/infer', [{ x: [3, 0] }, { x: [1] }, { x: [0, 3], attrs: { site: 'rome' } }]);
    assert.equal(r.status, 200);
    assert.equal(r.json.length, 3);
    assert.deepEqual([r.json[0].label, r.json[0].hard, r.json[0].logged], ['no', false, false]);
    assert.deepEqual(r.json[1], { id: 2, error: 'x has 1 values, task "global" takes 2', where: 'record 2' });
    assert.deepEqual([r.json[2].task, r.json[2].unseen, r.json[2].unseen_reason, r.json[2].logged], ['global', true, 'attr', true]);
    r = await call(target, 'POST', '/infer', { x: [1] });
    assert.equal(r.status, 422);
    r = await call(target, 'POST', '/infer', '{"x": [1,');
    assert.equal(r.status, 400);
    assert.match(r.json.error, /^malformed JSON/);
    // a compressed body is refused as such (was: 400 "malformed JSON")
    r = await call(target, 'POST', '/infer', gzipSync(JSON.stringify({ x: [3, 0] })), { 'content-encoding': 'gzip' });
    assert.deepEqual([r.status, r.json.error], [415, 'unsupported Content-Encoding "gzip" (send the body uncompressed)']);
    r = await call(target, 'POST', '/infer', { x: [3, 0] }, { 'content-encoding': 'identity' });
    assert.equal(r.status, 200);
    assert.equal((await call(target, 'GET', '/nope')).status, 404);

    // a second version whose only task has swapped weights; activate it while serving
    const swapped = writeIdentityModel(t.dir, 'swapped', 2, { softmax: true, scale: -1 });
    const idx = buildIndex({ version: 2, tasks: [{ id: 'global', model: swapped, inDim: 2, outDim: 2, labels: ['no', 'yes'] }], hard: [] });
    const paths = homePaths(home);
    const db = openEdgeDb(paths.db);
    try {
      const id = installVersion(paths, db, { indexBytes: Buffer.from(JSON.stringify(idx)), sig: null, origin: 'local', modelPath: () => swapped });
      activateVersion(db, id);
    } finally {
      db.close();
    }
    child.kill('SIGHUP');
    let v = '';
    for (let i = 0; i < 100 && v !== 'local-2'; i++) {
      await new Promise((res) => setTimeout(res, 50));
      v = (await call(target, 'GET', '/healthz')).json.version;
    }
    assert.equal(v, 'local-2');
    r = await call(target, 'POST', '/infer', { x: [3, 0] });
    assert.deepEqual([r.json.task, r.json.label], ['global', 'yes']);

    const code = exitOf(child);
    child.kill('SIGTERM');
    assert.equal(await code, 0);
    assert.equal(existsSync(sock), false, 'socket file removed on shutdown');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    t.cleanup();
  }
});

test('serve on a loopback port (port 0 -> picked port), re-check every N requests, SIGINT', async () => {
  const t = tempDir();
  const home = setup(t.dir);
  const child = sednaSpawn(['serve', '--port', '0', '--recheck', '2'], { home });
  try {
    const l = await listening(child);
    assert.ok(l.port && l.port > 0);
    assert.equal(l.listening, `http://127.0.0.1:${l.port}`);
    const target = { host: '127.0.0.1', port: l.port! };
    const r = await call(target, 'POST', '/infer', [{ id: 'a', x: [0, 2] }, { id: 'b', x: [2, 0] }]);
    assert.deepEqual(
      r.json.map((o: { id: string; label: string }) => [o.id, o.label]),
      [
        ['a', 'yes'],
        ['b', 'no'],
      ],
    );
    // bad version pointer: the server keeps serving the old state and says why on stderr
    const db = openEdgeDb(homePaths(home).db);
    db.prepare("UPDATE kv SET value = 'local-9' WHERE key = 'active_version'").run();
    db.close();
    for (let i = 0; i < 3; i++) assert.equal((await call(target, 'POST', '/infer', { x: [1, 0] })).json.label, 'no');
    assert.equal((await call(target, 'GET', '/healthz')).json.version, 'local-1');
    const code = exitOf(child);
    child.kill('SIGINT');
    assert.equal(await code, 0);
    assert.match(stderrOf.get(child)!(), /version local-9 not loaded, still serving local-1: version local-9: not installed/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    t.cleanup();
  }
});
