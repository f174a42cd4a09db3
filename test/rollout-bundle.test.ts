// Offline bundles: hostile or damaged bundles are refused with exit 5 and leave the edge home
// exactly as it was; a good one installs, exports and re-installs byte-identically.
import assert from 'node:assert/strict';
import { canaryBytes, signCanary } from '../src/rollout/bundle.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sedna, tempDir } from './helpers/cli.js';
import { bundleOf, computeCanary, generateSigningKeys, goodEntries, initEdge, inputs, makeVersion, modelBytes, rawTarGz, sha256, snapshot, type RawEntry, type VersionFixture } from './helpers/rollout-fixtures.js';

const keys = generateSigningKeys();
const tmp = tempDir('sedna-ll-rollout-bundle-');
const home = join(tmp.dir, 'home');
let v2: VersionFixture;

before(async () => {
  initEdge(home, keys, { trial_inferences: 0 });
  const v1 = makeVersion(keys, 1, [{ id: 'global', seed: 1 }]);
  const r = sedna(['model', 'install', await bundleOf(v1, join(tmp.dir, 'v1.tar.gz'), await computeCanary(v1, tmp.dir)), '--activate'], { home });
  assert.equal(r.code, 0, r.stderr);
  v2 = makeVersion(keys, 2, [{ id: 'global', seed: 2 }, { id: 'berlin', seed: 3, site: 'berlin' }]);
});
after(() => tmp.cleanup());

function refused(name: string, bytes: Buffer, why: RegExp): void {
  const f = join(tmp.dir, `${name}.tar.gz`);
  writeFileSync(f, bytes);
  const beforeFiles = snapshot(home);
  const beforeLs = JSON.parse(sedna(['model', 'ls', '--json'], { home }).stdout).versions;
  const r = sedna(['model', 'install', f, '--activate'], { home });
  assert.equal(r.code, 5, `${name}: expected exit 5, got ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, why, name);
  assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: one-line error`);
  assert.deepEqual(snapshot(home), beforeFiles, `${name}: home changed`);
  const ls = sedna(['model', 'ls', '--json'], { home });
  assert.deepEqual(JSON.parse(ls.stdout).versions, beforeLs, `${name}: versions changed (ls exit ${ls.code}: ${ls.stderr})`);
}

const withEntries = (f: (e: RawEntry[]) => RawEntry[]) => rawTarGz(f(goodEntries(v2)));

test('a hand-built good bundle installs (the fixtures below differ from it in one point only)', () => {
  // sanity of the fixture builder, on a scratch home so the shared one stays at version 1
  const h = join(tmp.dir, 'scratch');
  initEdge(h, keys);
  const f = join(tmp.dir, 'raw-good.tar.gz');
  writeFileSync(f, withEntries((e) => e));
  const r = sedna(['model', 'install', f], { home: h });
  assert.equal(r.code, 0, r.stderr);
});

test('bad signature', () => {
  const other = generateSigningKeys();
  const forged = makeVersion(other, 2, [{ id: 'global', seed: 2 }]);
  refused('bad-sig', rawTarGz(goodEntries(forged)), /bad signature/);
  refused('sig-of-other-index', withEntries((e) => e.map((x) => (x.path === 'index.json.sig' ? { ...x, data: Buffer.from(forged.sig) } : x))), /bad signature/);
});

test('changed model bytes', () => {
  refused(
    'changed-model',
    withEntries((e) =>
      e.map((x) => {
        if (!x.path.startsWith('models/')) return x;
        const d = Buffer.from(x.data!);
        d[d.length - 5] ^= 0xff;
        return { ...x, data: d };
      }),
    ),
    /sha256 mismatch/,
  );
  // a model swapped for another under the right name
  refused('swapped-model', withEntries((e) => e.map((x) => (x.path.startsWith('models/') ? { ...x, data: modelBytes(77) } : x))), /sha256 mismatch|size/);
  refused('missing-model', withEntries((e) => e.filter((x) => !x.path.startsWith('models/'))), /missing/);
});

test('path traversal, absolute path and unexpected entries', () => {
  refused('traversal', withEntries((e) => [...e, { path: '../../evil.sh', data: Buffer.from('#!/bin/sh\n') }]), /path traversal/);
  refused('traversal-mid', withEntries((e) => [...e, { path: 'models/../../../x.onnx', data: Buffer.from('x') }]), /path traversal/);
  refused('absolute', withEntries((e) => [...e, { path: '/tmp/evil', data: Buffer.from('x') }]), /absolute path/);
  refused('unexpected', withEntries((e) => [...e, { path: 'run.sh', data: Buffer.from('x') }]), /unexpected entry/);
  refused('unused-model', withEntries((e) => [...e, { path: `models/${sha256(modelBytes(9))}.onnx`, data: modelBytes(9) }]), /not used by index.json/);
  refused('duplicate', withEntries((e) => [...e, e[0]]), /duplicate entry/);
});

test('symlink, hard link and device entries', () => {
  refused('symlink', withEntries((e) => [{ path: 'canary.jsonl', type: 'SymbolicLink', linkpath: '/etc/passwd' }, ...e]), /link/);
  const m = goodEntries(v2).find((x) => x.path.startsWith('models/'))!;
  refused('symlink-model', withEntries((e) => [...e.filter((x) => x.path !== m.path), { path: m.path, type: 'SymbolicLink', linkpath: '/dev/zero' }]), /link/);
  refused('hardlink', withEntries((e) => [...e, { path: 'canary.jsonl', type: 'Link', linkpath: 'index.json' }]), /link/);
  refused('chardev', withEntries((e) => [...e, { path: 'canary.jsonl', type: 'CharacterDevice' }]), /not a regular file/);
  refused('fifo', withEntries((e) => [...e, { path: 'canary.jsonl', type: 'FIFO' }]), /not a regular file/);
  refused('dir', withEntries((e) => [...e, { path: 'kb/', type: 'Directory' }]), /unexpected entry|unexpected directory/);
});

test('oversized entries and too many entries', () => {
  // a signature file far over its 1 KiB cap
  refused('big-sig', withEntries((e) => e.map((x) => (x.path === 'index.json.sig' ? { ...x, data: Buffer.alloc(64 * 1024, 0x41) } : x))), /over the limit/);
  // a model entry whose header claims 5 TB: refused from the header, before reading anything
  refused('huge-claim', rawTarGz([...goodEntries(v2).slice(0, 2), { path: `models/${'a'.repeat(64)}.onnx`, size: 5 * 1024 ** 4 }]), /over the limit/);
  // index.json over 16 MiB (random so that gzip cannot shrink it below the ratio guard)
  const big = Buffer.alloc(17 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((Math.imul(i, 2654435761) ^ 0x5bd1e995) >>> 0, i);
  refused('big-index', withEntries((e) => e.map((x) => (x.path === 'index.json' ? { ...x, data: big } : x))), /over the limit/);
  const many: RawEntry[] = Array.from({ length: 1100 }, () => ({ path: 'models/', type: 'Directory' as const }));
  refused('many', withEntries((e) => [...many, ...e]), /more than \d+ entries/);
});

test('truncated, corrupt and non-gzip archives', async () => {
  const good = await bundleOf(v2, join(tmp.dir, 'good-v2.tar.gz'));
  const bytes = (await import('node:fs')).readFileSync(good);
  for (const cut of [0.25, 0.5, 0.9]) refused(`truncated-${cut}`, bytes.subarray(0, Math.floor(bytes.length * cut)), /bundle refused/);
  refused('truncated-trailer', bytes.subarray(0, bytes.length - 4), /bundle refused/);
  const flipped = Buffer.from(bytes);
  flipped[Math.floor(flipped.length / 2)] ^= 0x55;
  refused('bitflip', flipped, /bundle refused/);
  refused('not-gzip', Buffer.from('index.json\n'), /not a gzip file/);
  refused('empty-gzip', rawTarGz([]), /missing index.json|Unrecognized archive/);
  // canary.jsonl is signed by the KB (bound to the index): a signed but malformed canary, a
  // tampered one, one signed for another index, and a signature without a canary are refused
  const badCanary = [{ task: 'nope', x: [1], expected: [1] }];
  const signedCanary = (recs: typeof badCanary, indexBytes = v2.indexBytes) => [
    { path: 'canary.jsonl', data: canaryBytes(recs) },
    { path: 'canary.jsonl.sig', data: Buffer.from(signCanary(indexBytes, recs, v2.privateKey)) },
  ];
  refused('bad-canary', withEntries((e) => [...e, ...signedCanary(badCanary)]), /canary.jsonl line 1/);
  const fine = [{ task: 'global', x: [1, 2, 3, 4], expected: [0.2, 0.3, 0.5] }];
  const tampered = signedCanary(fine);
  tampered[0] = { path: 'canary.jsonl', data: canaryBytes([{ ...fine[0], expected: [0.9, 0.05, 0.05] }]) };
  refused('tampered-canary', withEntries((e) => [...e, ...tampered]), /bad signature on canary\.jsonl/);
  refused('canary-of-other-index', withEntries((e) => [...e, ...signedCanary(fine, Buffer.from('{}'))]), /bad signature on canary\.jsonl/);
  refused('canary-sig-alone', withEntries((e) => [...e, signedCanary(fine)[1]]), /canary\.jsonl\.sig without canary\.jsonl/);
});

test('an unsigned canary (a bundle of an older KB) is not used, and install says so', () => {
  const h = join(tmp.dir, 'old-canary');
  initEdge(h, keys);
  const f = join(tmp.dir, 'old-canary.tar.gz');
  writeFileSync(f, withEntries((e) => [...e, { path: 'canary.jsonl', data: Buffer.from('{"task":"global","x":[1,2,3,4],"expected":[1,0,0]}\n') }]));
  const r = sedna(['model', 'install', f, '--json'], { home: h });
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.canary, 0);
  assert.match(j.canary_note, /not signed .*ignored/);
  assert.match(r.stderr, /canary\.jsonl is not signed/);
});

test('a good bundle installs; export of the installed version reproduces it and infers', async () => {
  const canary = await computeCanary(v2, tmp.dir);
  const f = await bundleOf(v2, join(tmp.dir, 'v2.tar.gz'), canary);
  const r = sedna(['model', 'install', f, '--json'], { home });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).version, '2');
  // again: a no-op
  const again = sedna(['model', 'install', f, '--json'], { home });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).already, true);
  const out = join(tmp.dir, 'export-v2.tar.gz');
  const ex = sedna(['model', 'export', '2', '-o', out, '--json'], { home });
  assert.equal(ex.code, 0, ex.stderr);
  assert.equal(JSON.parse(ex.stdout).canary, canary.length);
  // the exported bundle installs on a fresh edge and is used by infer there
  const h2 = join(tmp.dir, 'other');
  initEdge(h2, keys, { trial_inferences: 0 });
  const inst = sedna(['model', 'install', out, '--activate'], { home: h2 });
  assert.equal(inst.code, 0, inst.stderr);
  const inf = sedna(['infer'], { home: h2, input: inputs(2).map((x) => JSON.stringify({ x, attrs: { site: 'berlin' } })).join('\n') + '\n' });
  assert.equal(inf.code, 0, inf.stderr);
  assert.equal(JSON.parse(inf.stdout.split('\n')[0]).task, 'berlin');
  assert.equal(sedna(['model', 'verify'], { home: h2 }).code, 0);
});

test('a bundle made with a plain tar tool ("./" prefixes, directory entries) installs', async () => {
  const tar = await import('tar');
  const { mkdirSync } = await import('node:fs');
  const v = makeVersion(keys, 3, [{ id: 'global', seed: 5 }]);
  const dir = join(tmp.dir, 'plain-tar');
  mkdirSync(join(dir, 'models'), { recursive: true });
  writeFileSync(join(dir, 'index.json'), v.indexBytes);
  writeFileSync(join(dir, 'index.json.sig'), v.sig + '\n');
  for (const [sha, bytes] of v.models) writeFileSync(join(dir, 'models', `${sha}.onnx`), bytes);
  const f = join(tmp.dir, 'plain.tar.gz');
  await tar.c({ gzip: true, file: f, cwd: dir }, ['.']);
  const h = join(tmp.dir, 'plain-home');
  initEdge(h, keys, { trial_inferences: 0 });
  const r = sedna(['model', 'install', f, '--activate'], { home: h });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(sedna(['model', 'verify'], { home: h }).code, 0);
});
