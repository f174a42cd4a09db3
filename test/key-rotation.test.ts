// KB signing-key rotation with the edge trust chain (kb/signing-key.ts, format/key-chain.ts,
// sync/index-trust.ts), against a real KB server (kb serve child on loopback) and real edges:
// an edge online through a rotation adopts the new key at the sync that brings the first
// version it signs; an edge offline through two rotations walks both; the retired key cannot
// sign a newer version; a transition not signed by a trusted key is refused (exit 5, nothing
// stored); kill -9 of sync in the middle of adopting leaves the edge before or after. Offline
// bundles carry the chain (keys.json): an edge offline through the rotations installs a bundle
// signed by the new key without a sync, and refuses a forged chain the same way.
import assert from 'node:assert/strict';
import { cpSync, createReadStream, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KEY_TRANSITION_FORMAT, keyFingerprint, transitionBytes, type KeyEpoch } from '../src/format/key-chain.js';
import { generateSigningKeys, signBytes } from '../src/format/signature.js';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths } from '../src/store/home.js';
import { trustedKeys } from '../src/store/trusted-keys.js';
import { sedna, sednaSpawn, tempDir } from './helpers/cli.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { initEdge, mulberry32, modelBytes, rawTarGz, type RawEntry } from './helpers/rollout-fixtures.js';

const tmp = tempDir('sedna-ll-key-rotation-');
let kb: TestKb;
const tokens: Record<string, string> = {};
const homes: Record<string, string> = {};
const keyFile = () => join(kb.dataDir, 'keys', 'signing.key');

function ok(r: { code: number; stdout: string; stderr: string }, what: string) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}: ${r.stderr}`);
  return r;
}
let seed = 0;
function publish(): number {
  const f = join(tmp.dir, `m-${++seed}.onnx`);
  writeFileSync(f, modelBytes(seed, 4 + seed));
  ok(kb.cli(['task', 'add', f, '--task', 'global', '--labels', 'a,b,c', '--fallback']), 'kb task add');
  return (JSON.parse(ok(kb.cli(['publish', '--json']), 'kb publish').stdout) as { version: number }).version;
}
function rotate(): { seq: number; from: string; to: string; last_version: number; retired: string; public_key: string } {
  return JSON.parse(ok(kb.cli(['keys', 'rotate', '--json']), 'kb keys rotate').stdout);
}
const sync = (home: string) => sedna(['sync', '--json'], { home });
const activeOf = (home: string) => (JSON.parse(ok(sedna(['model', 'ls', '--json'], { home }), 'model ls').stdout).versions as { id: string; active: boolean }[]).find((r) => r.active)?.id ?? null;
const installed = (home: string) => (JSON.parse(ok(sedna(['model', 'ls', '--json'], { home }), 'model ls').stdout).versions as { id: string }[]).map((r) => r.id).sort();
function trusted(home: string): KeyEpoch[] {
  const db = openEdgeDb(homePaths(home).db);
  try {
    const cfg = JSON.parse(readFileSync(homePaths(home).config, 'utf8')) as { kb: { public_key: string } };
    return trustedKeys(db, cfg.kb.public_key);
  } finally {
    db.close();
  }
}
const fps = (home: string) => trusted(home).map((e) => e.fingerprint);
function newEdge(id: string): string {
  tokens[id] = kb.addDevice(id).token;
  homes[id] = join(tmp.dir, id);
  initEdge(homes[id], { publicKey: kb.publicKeyPem, privateKey: '' }, { trial_inferences: 0 }, id, { url: kb.url, token: tokens[id] });
  return homes[id];
}

before(async () => {
  kb = await startTestKb({ deviceId: 'online' });
  tokens.online = kb.deviceToken;
  homes.online = join(tmp.dir, 'online');
  initEdge(homes.online, { publicKey: kb.publicKeyPem, privateKey: '' }, { trial_inferences: 0 }, 'online', { url: kb.url, token: tokens.online });
  newEdge('offline');
  newEdge('killed');
});

after(async () => {
  await kb?.stop();
  tmp.cleanup();
});

test('online through a rotation, offline through two, and the retired key signs nothing newer', async () => {
  const v1 = publish();
  for (const id of ['online', 'offline', 'killed']) {
    ok(sync(homes[id]), `sync ${id}`);
    assert.equal(activeOf(homes[id]), String(v1));
  }
  const k0 = keyFingerprint(kb.publicKeyPem);
  const oldPrivate = readFileSync(keyFile(), 'utf8');
  // a bundle of a KB that never rotated: no chain in it (edges before keys.json install it too)
  const b1 = JSON.parse(ok(kb.cli(['bundle', String(v1), '-o', join(tmp.dir, 'v1-before-rotation.tar.gz'), '--json']), 'kb bundle v1').stdout) as { key_transitions: number };
  assert.equal(b1.key_transitions, 0);

  const r1 = rotate();
  assert.equal(r1.seq, 1);
  assert.equal(r1.from, k0);
  assert.equal(r1.last_version, v1);
  assert.ok(existsSync(r1.retired), 'the old private key is kept for the operator');
  assert.equal(readFileSync(r1.retired, 'utf8'), oldPrivate);
  assert.notEqual(readFileSync(keyFile(), 'utf8'), oldPrivate, 'the key file holds the new key');
  assert.equal(readFileSync(join(kb.dataDir, 'keys', 'signing.pub'), 'utf8').trim(), r1.public_key.trim());
  // kb device add hands out the new key from now on
  const dev = JSON.parse(ok(kb.cli(['device', 'add', 'fresh', '--json']), 'device add').stdout) as { public_key: string; token: string };
  assert.equal(keyFingerprint(dev.public_key), r1.to);

  // nothing published yet: the edge has no reason to ask, keeps its one key
  ok(sync(homes.online), 'sync before a new version');
  assert.deepEqual(fps(homes.online), [k0]);

  // publishing keeps working (the served KB process never restarted); the online edge adopts
  const v2 = publish();
  const s = JSON.parse(ok(sync(homes.online), 'sync online v2').stdout) as { pulled_version: number };
  assert.equal(s.pulled_version, v2);
  assert.equal(activeOf(homes.online), String(v2));
  assert.deepEqual(
    trusted(homes.online).map((e) => [e.fingerprint, e.after, e.upto]),
    [
      [k0, null, v1],
      [r1.to, v1, null],
    ],
  );
  // v1 (old key) and v2 (new key) both still verify, each with the key of its epoch
  ok(sedna(['model', 'verify', '--json'], { home: homes.online }), 'model verify online');

  const r2 = rotate();
  assert.equal(r2.seq, 2);
  assert.equal(r2.from, r1.to);
  const v3 = publish();
  const keysLs = JSON.parse(ok(kb.cli(['keys', 'ls', '--json']), 'keys ls').stdout) as { current: string; keys: { fingerprint: string; after: number | null; upto: number | null }[] };
  assert.equal(keysLs.current, r2.to);
  assert.deepEqual(
    keysLs.keys.map((k) => [k.fingerprint, k.after, k.upto]),
    [
      [k0, null, v1],
      [r1.to, v1, v2],
      [r2.to, v2, null],
    ],
  );

  // offline through both rotations: one sync walks k0 -> k1 -> k2
  ok(sync(homes.offline), 'sync offline');
  assert.equal(activeOf(homes.offline), String(v3));
  assert.deepEqual(fps(homes.offline), [k0, r1.to, r2.to]);
  ok(sedna(['model', 'verify', '--json'], { home: homes.offline }), 'model verify offline');

  // an edge enrolled after the rotations (kb device add handed it the newest key) needs no chain
  const freshHome = join(tmp.dir, 'fresh');
  initEdge(freshHome, { publicKey: dev.public_key, privateKey: '' }, { trial_inferences: 0 }, 'fresh', { url: kb.url, token: dev.token });
  ok(sync(freshHome), 'sync fresh');
  assert.equal(activeOf(freshHome), String(v3));

  // the retired key k0 cannot sign a version after v1 (a thief of the old private key, or a
  // publisher that missed the rotation): a KB answering version 4 signed by it is refused
  const forged = await forgedKb((v) => ({ version: v, sigKey: oldPrivate, transitions: null }));
  try {
    const before = installed(homes.online);
    const r = await syncAsync(withKbUrl(homes.online, forged.url, 'online-forged-old'));
    assert.equal(r.code, 5, `exit 5 (verification): ${r.stderr}`);
    assert.match(r.stderr, /signature does not verify with the KB key [0-9a-f]{16} this edge trusts for version \d+/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.deepEqual(installed(join(tmp.dir, 'online-forged-old')), before);
  } finally {
    forged.server.close();
  }
});

test('offline bundles carry the key chain: an edge offline through two rotations installs the newest version from one; a forged chain is refused', async () => {
  const keysLs = JSON.parse(ok(kb.cli(['keys', 'ls', '--json']), 'keys ls').stdout) as { current: string; keys: { fingerprint: string; after: number | null; upto: number | null }[] };
  const chain = keysLs.keys.map((k): [string, number | null, number | null] => [k.fingerprint, k.after, k.upto]);
  assert.equal(chain.length, 3, 'the first test rotated twice');
  const newest = (JSON.parse(ok(kb.cli(['versions', '--json']), 'kb versions').stdout) as { versions: { version: number }[] }).versions.map((v) => v.version).sort((a, b) => b - a)[0];
  const made = JSON.parse(ok(kb.cli(['bundle', String(newest), '-o', join(tmp.dir, 'newest.tar.gz'), '--json']), 'kb bundle newest').stdout) as { file: string; key_transitions: number };
  assert.equal(made.key_transitions, 2);

  // enrolled with the first key, never synced since: the chain of the bundle walks it to the newest
  const offline = newEdge('bundle-offline');
  assert.deepEqual(fps(offline), [chain[0][0]]);
  const r = sedna(['model', 'install', made.file, '--json'], { home: offline });
  assert.equal(r.code, 0, r.stderr);
  const rec = JSON.parse(r.stdout) as { version: string; keys_adopted: string[]; canary: number };
  assert.equal(rec.version, String(newest));
  assert.deepEqual(rec.keys_adopted, [chain[1][0], chain[2][0]]);
  assert.ok(rec.canary > 0, 'the canary (signed by the newest key) verified and was kept');
  assert.deepEqual(trusted(offline).map((e) => [e.fingerprint, e.after, e.upto]), chain);
  ok(sedna(['model', 'activate', String(newest)], { home: offline }), 'model activate');
  ok(sedna(['model', 'verify', '--json'], { home: offline }), 'model verify');
  // status shows the keys this edge trusts and the versions each may sign
  const st = JSON.parse(ok(sedna(['status', '--json'], { home: offline }), 'status --json').stdout) as { trusted_keys: { fingerprint: string; after: number | null; upto: number | null }[] };
  assert.deepEqual(st.trusted_keys.map((k) => [k.fingerprint, k.after, k.upto]), chain);
  const line = ok(sedna(['status'], { home: offline }), 'status').stdout.split('\n').find((l) => l.startsWith('kb keys'));
  const [v1, v2] = [chain[0][2], chain[1][2]] as number[];
  assert.equal(line, `kb keys    ${chain[0][0].slice(0, 16)} (first..v${v1}), ${chain[1][0].slice(0, 16)} (v${v1 + 1}..v${v2}), ${chain[2][0].slice(0, 16)} (v${v2 + 1}..)`);
  // the same bundle again: nothing new to adopt
  assert.deepEqual((JSON.parse(ok(sedna(['model', 'install', made.file, '--json'], { home: offline }), 'reinstall').stdout) as { keys_adopted: string[] }).keys_adopted, []);

  // model export passes the adopted chain on: a second offline edge installs the exported bundle
  const exported = join(tmp.dir, 'exported.tar.gz');
  ok(sedna(['model', 'export', String(newest), '-o', exported], { home: offline }), 'model export');
  const second = newEdge('bundle-offline-2');
  ok(sedna(['model', 'install', exported], { home: second }), 'install the exported bundle');
  assert.deepEqual(fps(second), chain.map((c) => c[0]));

  // an edge enrolled with the newest key installs an old version: the chain walks backwards
  const fresh = JSON.parse(ok(kb.cli(['device', 'add', 'bundle-new-key', '--json']), 'device add').stdout) as { public_key: string; token: string };
  const newKeyHome = join(tmp.dir, 'bundle-new-key');
  initEdge(newKeyHome, { publicKey: fresh.public_key, privateKey: '' }, { trial_inferences: 0 }, 'bundle-new-key', { url: kb.url, token: fresh.token });
  const oldMade = JSON.parse(ok(kb.cli(['bundle', String(v1), '-o', join(tmp.dir, 'v1-after-rotation.tar.gz'), '--json']), 'kb bundle v1').stdout) as { file: string };
  ok(sedna(['model', 'install', oldMade.file], { home: newKeyHome }), 'old version on an edge enrolled with the newest key');
  assert.deepEqual(fps(newKeyHome), chain.map((c) => c[0]));

  // a bundle made before the rotation (no keys.json) still installs
  const plain = newEdge('bundle-plain');
  const old = JSON.parse(ok(sedna(['model', 'install', join(tmp.dir, 'v1-before-rotation.tar.gz'), '--json'], { home: plain }), 'install a bundle without a chain').stdout) as { version: string; keys_adopted: string[] };
  assert.equal(old.version, String(v1));
  assert.deepEqual(old.keys_adopted, []);

  // the same entries, the chain last (a bundle made with a plain tar tool): the chain is still used
  const entries = await bundleEntries(made.file);
  assert.equal(entries[0].path, 'keys.json', 'kb bundle writes the chain first');
  const reordered = writeRaw('chain-last.tar.gz', [...entries.slice(1), entries[0]]);
  const last = newEdge('bundle-chain-last');
  ok(sedna(['model', 'install', reordered], { home: last }), 'install with the chain last');
  assert.equal(fps(last).length, 3);

  // refusals: nothing adopted, nothing installed, nothing left in tmp
  const thief = generateSigningKeys();
  const rec9 = { format: KEY_TRANSITION_FORMAT, seq: 9, from_key: kb.publicKeyPem, to_key: thief.publicKey, last_version: 1000, created_at: new Date().toISOString() };
  const bytes = transitionBytes(rec9 as never);
  const forgedT = { record: bytes.toString('base64'), sig: signBytes(bytes, thief.privateKey), to_sig: signBytes(bytes, thief.privateKey) };
  const genuine = JSON.parse(entries[0].data!.toString('utf8')) as { transitions: unknown[] };
  const cases: [string, RawEntry[], RegExp][] = [
    ['forged', [{ path: 'keys.json', data: Buffer.from(JSON.stringify({ transitions: [forgedT] })) }, ...entries.slice(1)], /bundle refused: KB key chain \(keys\.json\): key transition 9: not signed by the trusted key [0-9a-f]{16} it hands trust on from; refusing it; no key adopted, nothing installed$/],
    ['no-chain', entries.slice(1), /bundle refused: bad signature on index\.json \(not by the KB key this edge trusts for its version\)$/],
    ['not-a-chain', [{ path: 'keys.json', data: Buffer.from('{"keys":[]}') }, ...entries.slice(1)], /bundle refused: keys\.json: expected \{"transitions": \[\.\.\.\]\}$/],
  ];
  for (const [name, es, why] of cases) {
    const home = newEdge(`bundle-${name}`);
    const before = { keys: fps(home), versions: installed(home) };
    const res = sedna(['model', 'install', writeRaw(`${name}.tar.gz`, es), '--json'], { home });
    assert.equal(res.code, 5, `${name}: exit 5: ${res.stderr}`);
    assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
    assert.match(res.stderr.trim(), why, name);
    assert.deepEqual({ keys: fps(home), versions: installed(home) }, before, `${name}: nothing adopted, nothing installed`);
    assert.deepEqual(existsSync(homePaths(home).tmp) ? readdirSync(homePaths(home).tmp) : [], [], `${name}: no trace in tmp`);
  }
  // a forged transition from a key the chain has moved past hands nothing on (as at sync): ignored
  const mixed = newEdge('bundle-forged-among-genuine');
  ok(sedna(['model', 'install', writeRaw('mixed.tar.gz', [{ path: 'keys.json', data: Buffer.from(JSON.stringify({ transitions: [...genuine.transitions, forgedT] })) }, ...entries.slice(1)])], { home: mixed }), 'install: forged transition off the chain');
  assert.deepEqual(fps(mixed), chain.map((c) => c[0]), 'the thief key is not trusted');
});

/** The entries of a bundle, in archive order. */
async function bundleEntries(file: string): Promise<RawEntry[]> {
  const { Parser } = await import('tar');
  const out: RawEntry[] = [];
  await new Promise<void>((resolve, reject) => {
    const p = new Parser();
    p.on('entry', (e) => {
      const chunks: Buffer[] = [];
      e.on('data', (c: Buffer) => chunks.push(c));
      e.on('end', () => out.push({ path: e.path, type: e.type === 'Directory' ? 'Directory' : 'File', data: Buffer.concat(chunks) }));
    });
    p.on('end', () => resolve());
    p.on('error', reject);
    createReadStream(file).on('error', reject).pipe(p as unknown as NodeJS.WritableStream);
  });
  return out;
}
function writeRaw(name: string, entries: RawEntry[]): string {
  const f = join(tmp.dir, name);
  writeFileSync(f, rawTarGz(entries));
  return f;
}

test('a transition not signed by a trusted key is refused: exit 5, one line, no key adopted, nothing installed', async () => {
  const home = homes.online;
  const thief = generateSigningKeys();
  const current = trusted(home).at(-1)!;
  // a KB that stole a database row (no private key): it announces its own key as the next one
  const rec = { format: KEY_TRANSITION_FORMAT, seq: 9, from_key: current.key, to_key: thief.publicKey, last_version: 1000, created_at: new Date().toISOString() };
  const bytes = transitionBytes(rec as never);
  const t = { record: bytes.toString('base64'), sig: signBytes(bytes, thief.privateKey), to_sig: signBytes(bytes, thief.privateKey) };
  const forged = await forgedKb((v) => ({ version: v, sigKey: thief.privateKey, transitions: [t] }));
  try {
    const copy = withKbUrl(home, forged.url, 'online-forged-transition');
    const before = { keys: fps(copy), versions: installed(copy) };
    const r = await syncAsync(copy);
    assert.equal(r.code, 5, `exit 5: ${r.stderr}`);
    assert.match(r.stderr, /key transition 9: not signed by the trusted key [0-9a-f]{16} it hands trust on from; refusing it; no key adopted, nothing installed/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'verify');
    assert.deepEqual(fps(copy), before.keys);
    assert.deepEqual(installed(copy), before.versions);
  } finally {
    forged.server.close();
  }
});

test('kill -9 of sync while it adopts a new key: before or after, never broken; the next sync finishes', async () => {
  // the 'killed' edge runs v1 under k0 only; the KB is two rotations further
  const template = homes.killed;
  assert.equal(fps(template).length, 1);
  const chain = JSON.parse(ok(kb.cli(['keys', 'ls', '--json']), 'keys ls').stdout) as { current: string; keys: unknown[] };
  const newest = chain.current;
  const chainLength = chain.keys.length;
  assert.ok(chainLength >= 2, 'the KB rotated');
  const t0 = Date.now();
  ok(sync(withKbUrl(template, kb.url, 'killed-measure')), 'a whole sync');
  const full = Date.now() - t0;
  const rand = mulberry32(Number(process.env.KEY_ROTATION_KILL_SEED ?? 77));
  const ITER = Number(process.env.KEY_ROTATION_KILL_ITER ?? 8);
  const outcomes = { before: 0, after: 0 };
  for (let i = 0; i < ITER; i++) {
    const home = withKbUrl(template, kb.url, `killed-${i}`);
    const delay = Math.floor(rand() * full * 1.2);
    const p = sednaSpawn(['sync'], { home });
    p.stdout!.resume();
    p.stderr!.resume();
    const timer = setTimeout(() => p.kill('SIGKILL'), delay);
    await new Promise((resolve) => p.once('exit', resolve));
    clearTimeout(timer);
    const keys = fps(home);
    assert.ok(keys.length === 1 || keys.length === chainLength, `iteration ${i} (kill after ${delay} ms): the edge trusts ${keys.length} keys: before (1) or after (${chainLength}) only`);
    outcomes[keys.length === 1 ? 'before' : 'after']++;
    ok(sedna(['model', 'verify', '--json'], { home }), `iteration ${i}: model verify`);
    ok(sync(home), `iteration ${i}: the next sync`);
    assert.equal(fps(home).at(-1), newest, `iteration ${i}: the newest key trusted after the next sync`);
    ok(sedna(['model', 'verify', '--json'], { home }), `iteration ${i}: model verify after`);
  }
  process.stderr.write(`kill -9 outcomes: ${JSON.stringify(outcomes)} (full sync ${full} ms)\n`);
});

test('kb keys rotate needs the current private key; the edge of an old KB (no /v1/keys) refuses as before', async () => {
  // a machine without the key file: nothing rotates, nothing changes
  const data = kb.dataDir;
  const before = readFileSync(join(data, 'keys', 'signing.pub'), 'utf8');
  const missing = join(tmp.dir, 'nope.key');
  const r = sedna(['kb', 'keys', 'rotate', '--data', data, '--signing-key', missing]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /nope\.key: KB signing key missing/);
  assert.equal(readFileSync(join(data, 'keys', 'signing.pub'), 'utf8'), before);
  assert.equal(JSON.parse(ok(sedna(['kb', 'keys', 'ls', '--json', '--data', data]), 'keys ls').stdout).keys.length, 3);

  // an old KB: answers 404 to /v1/keys; an index signed by a key the edge does not know is refused
  const stranger = generateSigningKeys();
  const old = await forgedKb((v) => ({ version: v, sigKey: stranger.privateKey, transitions: null }));
  try {
    const home = withKbUrl(homes.killed, old.url, 'old-kb');
    const res = await syncAsync(home);
    assert.equal(res.code, 5, res.stderr);
    assert.match(res.stderr, /signature does not verify with the KB key/);
  } finally {
    old.server.close();
  }
});

/** `sedna-ll sync --json` without blocking this process (the forged KB below answers from it). */
function syncAsync(home: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = sednaSpawn(['sync', '--json'], { home });
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => p.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

/** A copy of an edge home whose config points at url (the original stays as it is). */
function withKbUrl(home: string, url: string, name: string): string {
  const copy = join(tmp.dir, name);
  cpSync(home, copy, { recursive: true });
  const cfgPath = homePaths(copy).config;
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  cfg.kb.url = url;
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  return copy;
}

/**
 * An attacker's KB on loopback: GET /v1/index answers a copy of the real KB's newest index
 * renumbered to since+1 and signed by sigKey; GET /v1/keys answers `transitions` (null: 404, a KB
 * without rotation support). Blobs are proxied from the real KB.
 */
async function forgedKb(make: (v: number) => { version: number; sigKey: string; transitions: unknown[] | null }): Promise<{ server: Server; url: string }> {
  const real = await fetch(`${kb.url}/v1/index?since=0`, { headers: { authorization: `Bearer ${tokens.online}` } });
  const index = JSON.parse(Buffer.from(await real.arrayBuffer()).toString('utf8')) as Record<string, unknown>;
  const server = createServer(async (req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.pathname === '/v1/index') {
      const spec = make(Number(u.searchParams.get('since') ?? 0) + 1);
      const bytes = Buffer.from(JSON.stringify({ ...index, version: spec.version, parent: spec.version - 1 }, null, 2) + '\n');
      res.writeHead(200, { 'content-type': 'application/json', 'x-sedna-signature': signBytes(bytes, spec.sigKey), 'x-sedna-version': String(spec.version) });
      return res.end(bytes);
    }
    if (u.pathname === '/v1/keys') {
      const spec = make(0);
      if (!spec.transitions) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end('{"error":"not found"}');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ transitions: spec.transitions }));
    }
    if (u.pathname.startsWith('/v1/blobs/')) {
      const r = await fetch(`${kb.url}${u.pathname}`, { headers: { authorization: `Bearer ${tokens.online}` } });
      res.writeHead(r.status, { 'content-type': 'application/octet-stream' });
      return res.end(Buffer.from(await r.arrayBuffer()));
    }
    if (req.method === 'POST') {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(u.pathname === '/v1/report' ? '{"ok":true}' : '{"stored":[]}');
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not found"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}` };
}
