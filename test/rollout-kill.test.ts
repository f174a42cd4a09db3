// kill -9 at random moments of `model install --activate` and `model activate`: afterwards
// exactly one version is active, it is the old or the new one, `infer` works on it and
// `model verify` finds nothing wrong. Real processes, real SIGKILL, many iterations.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sedna, sednaSpawn, tempDir } from './helpers/cli.js';
import { bundleOf, computeCanary, generateSigningKeys, initEdge, inputs, makeVersion, mulberry32 } from './helpers/rollout-fixtures.js';

const keys = generateSigningKeys();
const tmp = tempDir('sedna-ll-rollout-kill-');
const home = join(tmp.dir, 'home');
const ITER = Number(process.env.ROLLOUT_KILL_ITER ?? 16);
const bundles = new Map<number, string>();
const rand = mulberry32(Number(process.env.ROLLOUT_KILL_SEED ?? 4242));

after(() => tmp.cleanup());

before(async () => {
  // trial_inferences 3 (rate check disabled): some iterations leave the new version on trial,
  // others commit it; quality rollbacks are rollout-trial.test.ts's business
  initEdge(home, keys, { trial_inferences: 3, trial_rate_factor: 1e6 });
  for (let v = 1; v <= 2 * ITER + 2; v++) {
    // two tasks, models shared across versions now and then (placeModels skips present files)
    const ver = makeVersion(keys, v, [
      { id: 'global', seed: v, scale: 8 },
      { id: 'berlin', seed: 1000 + (v % 3), site: 'berlin' },
    ]);
    bundles.set(v, await bundleOf(ver, join(tmp.dir, `v${v}.tar.gz`), await computeCanary(ver, tmp.dir, 2)));
  }
  const r = sedna(['model', 'install', bundles.get(1)!, '--activate'], { home });
  assert.equal(r.code, 0, r.stderr);
});

interface LsRow {
  id: string;
  state: string;
  active: boolean;
}

function activeNow(): string {
  const rows = JSON.parse(sedna(['model', 'ls', '--json'], { home }).stdout).versions as LsRow[];
  const act = rows.filter((r) => r.active);
  assert.equal(act.length, 1, `exactly one active version, got ${JSON.stringify(rows.map((r) => [r.id, r.state]))}`);
  assert.equal(rows.filter((r) => r.state === 'active' || r.state === 'trial').length, 1);
  return act[0].id;
}

function healthy(oldId: string, newId: string, what: string): string {
  const id = activeNow();
  assert.ok(id === oldId || id === newId, `${what}: active ${id} is neither old ${oldId} nor new ${newId}`);
  const v = sedna(['model', 'verify', '--json'], { home });
  assert.equal(v.code, 0, `${what}: verify: ${v.stdout} ${v.stderr}`);
  const inf = sedna(['infer'], { home, input: inputs(2, 5).map((x, i) => JSON.stringify({ x, attrs: i ? { site: 'berlin' } : {} })).join('\n') + '\n' });
  assert.equal(inf.code, 0, `${what}: infer: ${inf.stderr}`);
  assert.equal(inf.stdout.trim().split('\n').length, 2);
  return id;
}

/** Run sedna-ll with args and SIGKILL it after delayMs (or let it finish). */
function runKilled(args: string[], delayMs: number): Promise<{ killed: boolean; code: number | null; ms: number }> {
  const t0 = Date.now();
  const p = sednaSpawn(args, { home });
  p.stdout!.resume();
  p.stderr!.resume();
  const timer = setTimeout(() => p.kill('SIGKILL'), delayMs);
  return new Promise((resolve) =>
    p.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ killed: signal === 'SIGKILL', code, ms: Date.now() - t0 });
    }),
  );
}

async function measure(args: string[]): Promise<number> {
  const r = await runKilled(args, 60_000);
  assert.equal(r.code, 0);
  return r.ms;
}

test('kill -9 during model install --activate and model activate', async () => {
  let v = 2;
  let current = '1';
  // how long an uninterrupted run takes, so kill points cover start-up to the very end
  const tInstall = await measure(['model', 'install', bundles.get(v)!, '--activate']);
  current = healthy(current, String(v), 'uninterrupted install');
  v++;
  let killed = 0;
  let landedNew = 0;
  for (let i = 0; i < ITER; i++, v++) {
    const delay = Math.floor(rand() * tInstall * 1.15);
    const r = await runKilled(['model', 'install', bundles.get(v)!, '--activate'], delay);
    if (r.killed) killed++;
    const id = healthy(current, String(v), `install v${v} killed at ${delay} ms`);
    if (id === String(v)) landedNew++;
    current = id;
  }
  // activate only: the version is installed (staged) first
  sedna(['model', 'prune', '--keep', '2'], { home });
  const staged = sedna(['model', 'install', bundles.get(v)!], { home });
  assert.equal(staged.code, 0, staged.stderr);
  const tActivate = await measure(['model', 'activate', String(v)]);
  current = healthy(current, String(v), 'uninterrupted activate');
  v++;
  for (let i = 0; i < ITER && bundles.has(v); i++, v++) {
    const inst = sedna(['model', 'install', bundles.get(v)!], { home });
    assert.equal(inst.code, 0, inst.stderr);
    const delay = Math.floor(rand() * tActivate * 1.15);
    const r = await runKilled(['model', 'activate', String(v)], delay);
    if (r.killed) killed++;
    const id = healthy(current, String(v), `activate v${v} killed at ${delay} ms`);
    if (id === String(v)) landedNew++;
    current = id;
  }
  // the kill points really were spread: some runs died, and some of those still landed the new version or not
  assert.ok(killed >= ITER / 2, `only ${killed} runs were killed`);
  assert.ok(landedNew > 0 && landedNew < 2 * ITER, `new version landed ${landedNew} times`);
  process.stderr.write(`# kill test: ${killed} of ${2 * ITER} runs killed, new version active after ${landedNew}\n`);
});
