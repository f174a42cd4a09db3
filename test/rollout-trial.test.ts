// Trial after activation: a version whose model does not load, one whose canary answers
// differently, and one whose unseen+hard rate is much worse than the previous version's all end
// with the previous version active, the new one 'failed' with its reason, and exit 5 where a
// command made the decision. A good version passes and is committed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { acquireLock } from '../src/durable/lock.js';
import { sedna, tempDir } from './helpers/cli.js';
import { bundleOf, computeCanary, generateSigningKeys, initEdge, inputs, makeVersion } from './helpers/rollout-fixtures.js';

const keys = generateSigningKeys();
const tmp = tempDir('sedna-ll-rollout-trial-');
after(() => tmp.cleanup());

const N = 40; // trial_inferences
let home: string;

interface LsRow {
  id: string;
  state: string;
  active: boolean;
  reason: string | null;
  trial: { phase: string; n: number } | null;
}
const ls = (h = home): LsRow[] => JSON.parse(sedna(['model', 'ls', '--json'], { home: h }).stdout).versions;
const row = (id: string, h = home) => ls(h).find((r) => r.id === id)!;
const active = (h = home) => ls(h).filter((r) => r.active).map((r) => r.id);
const infer = (n: number, seed: number, h = home) => {
  const r = sedna(['infer'], { home: h, input: inputs(n, seed).map((x) => JSON.stringify({ x })).join('\n') + '\n' });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
};
type Tasks = Parameters<typeof makeVersion>[2];
async function install(version: number, tasks: Tasks, opts: { canaryFrom?: Tasks; noCanary?: boolean } = {}): Promise<string> {
  const v = makeVersion(keys, version, tasks);
  let canary: Awaited<ReturnType<typeof computeCanary>> = [];
  if (opts.canaryFrom) {
    // expected outputs computed with other models: this version's model "answers wrongly"
    const other = makeVersion(keys, version, opts.canaryFrom);
    canary = await computeCanary(other, tmp.dir);
  } else if (!opts.noCanary) canary = await computeCanary(v, tmp.dir);
  const f = await bundleOf(v, join(tmp.dir, `v${version}-${randomBytes(3).toString('hex')}.tar.gz`), canary);
  const r = sedna(['model', 'install', f], { home });
  assert.equal(r.code, 0, r.stderr);
  return String(version);
}

before(async () => {
  home = join(tmp.dir, 'home');
  initEdge(home, keys, { trial_inferences: N, trial_rate_factor: 1.5 });
  // version 1: a confident model (few hard samples); goes through its own trial without a baseline
  await install(1, [{ id: 'global', seed: 1, scale: 60 }]);
  const a = sedna(['model', 'activate', '1', '--json'], { home });
  assert.equal(a.code, 0, a.stderr);
  assert.equal(JSON.parse(a.stdout).result, 'trial');
  infer(N + 10, 1);
  assert.equal(row('1').state, 'active', 'version 1 committed after its trial');
});

test('a bundle whose model is random bytes: check fails, previous stays active, reason recorded, exit 5', async () => {
  await install(2, [{ id: 'global', bytes: randomBytes(600) }], { noCanary: true });
  const r = sedna(['model', 'activate', '2'], { home });
  assert.equal(r.code, 5, r.stdout + r.stderr);
  assert.match(r.stdout, /failed its trial: .*does not load/);
  assert.deepEqual(active(), ['1']);
  const v2 = row('2');
  assert.equal(v2.state, 'failed');
  assert.match(v2.reason!, /does not load/);
  infer(3, 2); // still infers with version 1
  // a failed version is not retried by accident
  assert.equal(sedna(['model', 'activate', '2'], { home }).code, 5);
  assert.equal(sedna(['model', 'verify'], { home }).code, 0);
});

test('a bundle whose model loads but answers wrongly: canary mismatch, automatic rollback', async () => {
  await install(3, [{ id: 'global', seed: 3, scale: 60 }], { canaryFrom: [{ id: 'global', seed: 4, scale: 60 }] });
  const dry = sedna(['model', 'activate', '3', '--dry-run', '--json'], { home });
  assert.equal(dry.code, 5);
  assert.equal(row('3').state, 'staged', 'dry run changes nothing');
  const r = sedna(['model', 'install', join(tmp.dir, 'none.tar.gz')], { home });
  assert.equal(r.code, 2, 'a missing bundle file is a usage error, like every input file named on the command line');
  const a = sedna(['model', 'activate', '3', '--json'], { home });
  assert.equal(a.code, 5);
  const res = JSON.parse(a.stdout);
  assert.equal(res.result, 'fail');
  assert.match(res.reason, /canary mismatch/);
  assert.equal(res.active_version, '1');
  assert.match(row('3').reason!, /canary mismatch/);
  assert.deepEqual(active(), ['1']);
});

test('a version with a much higher unseen+hard rate is rolled back after N inferences', async () => {
  // near-zero weights: uniform outputs, every sample is hard (cross-entropy filter)
  await install(5, [{ id: 'global', seed: 5, scale: 0.001 }]);
  const a = sedna(['model', 'activate', '5', '--json'], { home });
  assert.equal(a.code, 0, a.stderr);
  assert.equal(JSON.parse(a.stdout).result, 'trial');
  assert.deepEqual(active(), ['5']);
  assert.equal(row('5').state, 'trial');
  const out = infer(N - 5, 3);
  assert.ok(out.every((o) => o.hard), 'the bad version answers uncertainly');
  assert.equal(row('5').state, 'trial', 'still observing');
  infer(10, 4);
  const v5 = row('5');
  assert.equal(v5.state, 'failed');
  assert.match(v5.reason!, /unseen\+hard rate 1\.000 .* exceeds 1\.5 x/);
  assert.deepEqual(active(), ['1'], 'automatic rollback to the previous version');
  const after = infer(5, 5);
  assert.ok(after.filter((o) => o.hard).length < 5, 'inference is back on the confident version');
  assert.equal(sedna(['model', 'verify'], { home }).code, 0);
});

test('a good version passes its trial and is committed; model rollback goes back by hand', async () => {
  await install(6, [{ id: 'global', seed: 6, scale: 60 }]);
  assert.equal(sedna(['model', 'activate', '6'], { home }).code, 0);
  infer(N, 6);
  const v6 = row('6');
  assert.equal(v6.state, 'active');
  assert.equal(v6.trial!.phase, 'passed');
  const rb = sedna(['model', 'rollback', '--json'], { home });
  assert.equal(rb.code, 0, rb.stderr);
  const rbr = JSON.parse(rb.stdout);
  assert.deepEqual([rbr.from_version, rbr.to_version], ['6', '1']);
  assert.equal(row('6').reason, 'rolled back by operator');
  assert.equal(sedna(['model', 'rollback'], { home }).code, 1, 'no previous version left');
  // prune keeps active + previous, removes the rest and their models
  const p = sedna(['model', 'prune', '--keep', '0', '--json'], { home });
  assert.equal(p.code, 0, p.stderr);
  assert.deepEqual(ls().map((r) => r.id), ['1']);
  assert.equal(sedna(['model', 'verify'], { home }).code, 0);
  infer(2, 7);
});

test('usage errors and a held lock', () => {
  const bad = sedna(['model', 'activate', '99'], { home });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /version 99: not installed/);
  assert.equal(sedna(['model', 'prune', '--keep', '-1'], { home }).code, 2);
  // a live sync holds the lock: rollout commands refuse at once with exit 6, changing nothing
  const lock = acquireLock(join(home, 'locks'), 'sync');
  try {
    for (const args of [['model', 'activate', '1'], ['model', 'rollback'], ['model', 'prune', '--keep', '0'], ['model', 'install', join(tmp.dir, 'x.tar.gz')]]) {
      const r = sedna(args, { home });
      assert.equal(r.code, 6, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /locked/);
    }
    // reading is never blocked
    assert.equal(sedna(['model', 'ls'], { home }).code, 0);
    assert.equal(sedna(['model', 'verify'], { home }).code, 0);
  } finally {
    lock.release();
  }
});
