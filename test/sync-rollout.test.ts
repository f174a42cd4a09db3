// Sync and the fleet rollout, against a real KB server (kb serve child on loopback) and real
// edges: an aborted rollout reaches devices that already run the newer version (channel
// fallback through GET /v1/index?since=N&active=A); a pulled version failing its health check
// makes sync exit 5 with the trial in the --json summary, the previous version still active.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths } from '../src/store/home.js';
import { sedna, tempDir } from './helpers/cli.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { initEdge, inputs, modelBytes } from './helpers/rollout-fixtures.js';

const tmp = tempDir('sedna-ll-sync-rollout-');
let kb: TestKb;
const N = 20; // trial inferences on the edge that judges v2 by its outcomes
const homes: Record<string, string> = {};
const tokens: Record<string, string> = {};

function ok(r: { code: number; stdout: string; stderr: string }, what: string) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}: ${r.stderr}`);
  return r;
}
function publish(seed: number, scale: number, channel: string): number {
  const f = join(tmp.dir, `m-${seed}-${scale}.onnx`);
  writeFileSync(f, modelBytes(seed, scale));
  ok(kb.cli(['task', 'add', f, '--task', 'global', '--labels', 'a,b,c', '--fallback']), 'kb task add');
  return (JSON.parse(ok(kb.cli(['publish', '--channel', channel, '--json']), 'kb publish').stdout) as { version: number }).version;
}
const syncJson = (id: string) => {
  const r = sedna(['sync', '--json'], { home: homes[id] });
  return { code: r.code, stderr: r.stderr, s: JSON.parse(r.stdout) as Record<string, unknown> & { exit: number } };
};
const sync = (id: string) => {
  const r = syncJson(id);
  assert.equal(r.code, 0, `sync ${id}: exit ${r.code}: ${r.stderr}`);
  return r.s;
};
const infer = (id: string, n: number, seed: number) => ok(sedna(['infer'], { home: homes[id], input: inputs(n, seed).map((x) => JSON.stringify({ x })).join('\n') + '\n' }), `infer ${id}`);
const states = (id: string) => Object.fromEntries((JSON.parse(ok(sedna(['model', 'ls', '--json'], { home: homes[id] }), 'model ls').stdout).versions as { id: string; state: string; active: boolean }[]).map((r) => [r.id, r.active ? `${r.state}*` : r.state]));
const activeOf = (id: string) => Object.entries(states(id)).find(([, s]) => s.endsWith('*'))?.[0] ?? null;
const events = (id: string, kind: string) => {
  const db = openEdgeDb(homePaths(homes[id]).db);
  try {
    return (db.prepare('SELECT detail FROM events WHERE kind = ? ORDER BY id').all(kind) as { detail: string }[]).map((r) => JSON.parse(r.detail) as Record<string, unknown>);
  } finally {
    db.close();
  }
};
const channelVersion = (name: string) => (JSON.parse(ok(kb.cli(['channel', 'ls', '--json']), 'channel ls').stdout).channels as { name: string; version: number | null }[]).find((c) => c.name === name)!.version;
/** GET /v1/index as a device, raw. */
async function getIndex(token: string, query: string): Promise<{ status: number; version: string | null }> {
  const r = await fetch(`${kb.url}/v1/index?${query}`, { headers: { authorization: `Bearer ${token}` } });
  await r.arrayBuffer();
  return { status: r.status, version: r.headers.get('x-sedna-version') };
}

before(async () => {
  kb = await startTestKb({ deviceId: 'judge', channel: 'canary' });
  // one failed trial of one report aborts a canary rollout
  ok(kb.cli(['channel', 'add', 'canary', '--abort-pct', '50', '--min-reports', '1']), 'channel add');
  ok(kb.cli(['channel', 'add', 'stable']), 'channel add stable');
  tokens.judge = kb.deviceToken;
  tokens.early = kb.addDevice('early', 'canary').token;
  tokens.slow = kb.addDevice('slow', 'stable').token;
  tokens.manual = kb.addDevice('manual', 'canary').token;
  // judge: trial over N inferences (its outcomes abort the rollout); early: commits a version at once
  for (const [id, rollout] of [
    ['judge', { trial_inferences: N, trial_rate_factor: 1.5 }],
    ['early', { trial_inferences: 0 }],
    ['slow', { trial_inferences: 0 }],
    ['manual', { trial_inferences: 0, activate: 'manual' }],
  ] as const) {
    homes[id] = join(tmp.dir, id);
    initEdge(homes[id], { publicKey: kb.publicKeyPem, privateKey: '' }, rollout, id, { url: kb.url, token: tokens[id] });
  }
});

after(async () => {
  await kb?.stop();
  tmp.cleanup();
});

test('an aborted rollout reaches a device that already committed the newer version: it falls back at its next sync', async () => {
  const v1 = publish(1, 60, 'canary');
  for (const id of ['judge', 'early']) {
    sync(id);
    assert.equal(activeOf(id), String(v1));
  }
  // an operator-run gateway (rollout.activate manual) activates what sync installed by hand
  const activate = (v: number) => ok(sedna(['model', 'activate', String(v)], { home: homes.manual }), `model activate ${v}`);
  sync('manual');
  activate(v1);
  infer('judge', N + 10, 1); // v1 passes its trial on judge: the rate v2 is compared with
  sync('judge');

  // v2 answers uniformly: every sample is hard
  const v2 = publish(2, 0.001, 'canary');
  sync('manual');
  activate(v2);
  const e = sync('early');
  assert.equal(e.pulled_version, v2);
  assert.deepEqual(states('early'), { '1': 'previous', '2': 'active*' }, 'early committed v2 at once (trial_inferences 0)');

  sync('judge');
  infer('judge', N + 5, 2);
  assert.equal(activeOf('judge'), '1', 'judge failed the trial of v2 and rolled back by itself');
  sync('judge'); // reports the failed trial: 1 of 1 -> abort
  assert.equal(channelVersion('canary'), v1, 'the KB aborted the rollout: canary points at v1 again');

  // the protocol: without `active` (older edges) 304 as before; with the version it runs, the channel's index
  assert.deepEqual(await getIndex(tokens.early, `since=${v2}`), { status: 304, version: null });
  assert.deepEqual(await getIndex(tokens.early, `since=${v2}&active=${v2}`), { status: 200, version: String(v1) });
  assert.deepEqual(await getIndex(tokens.early, `since=${v2}&active=${v1}`), { status: 304, version: null });
  assert.equal((await getIndex(tokens.early, `since=${v2}&active=x`)).status, 400);

  // early's next sync: the channel's v1 (verified, already installed) is activated through the trial
  const f = sync('early');
  assert.equal(f.pulled_version, v1);
  assert.equal(f.activated, true);
  assert.equal(activeOf('early'), '1');
  assert.deepEqual(states('early'), { '1': 'active*', '2': 'previous' });
  const ev = events('early', 'channel_fallback');
  assert.equal(ev.length, 1);
  assert.deepEqual([ev[0].from, ev[0].to, ev[0].activated, ev[0].result], [v2, v1, true, 'pass']);
  // settled: the next syncs change nothing, on both devices
  for (const id of ['early', 'judge']) {
    const again = sync(id);
    assert.equal(again.pulled_version, null);
    assert.equal(activeOf(id), '1');
  }
  assert.equal(events('early', 'channel_fallback').length, 1);
  assert.equal(events('judge', 'channel_fallback').length, 0, 'judge rolled back by itself; v1 is what it runs');
  // manual activation: the fallback version is installed already; moving to it is the operator's call
  for (let i = 0; i < 2; i++) assert.equal(sync('manual').pulled_version, null);
  assert.equal(activeOf('manual'), String(v2));
  assert.equal(events('manual', 'channel_fallback').length, 0);
  const fleet = JSON.parse(ok(kb.cli(['fleet', '--json']), 'kb fleet').stdout).devices as { id: string; active_version: number | null }[];
  assert.equal(fleet.find((d) => d.id === 'early')!.active_version, v1, 'the KB sees early back on v1');
});

test('a pulled version that fails its health check at sync: exit 5, the trial and its reason in --json, the previous version stays active', async () => {
  const v = publish(4, 60, 'stable');
  sync('slow');
  assert.equal(activeOf('slow'), String(v));
  // this gateway now demands an impossible one-sample latency: the next version fails its check
  const cfgPath = join(homes.slow, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  cfg.rollout.max_latency_ms = 1e-6;
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  const bad = publish(5, 60, 'stable');
  const r = syncJson('slow');
  assert.equal(r.code, 5, r.stderr);
  assert.equal(r.s.exit, 5);
  assert.equal(r.s.pulled_version, bad);
  assert.equal(r.s.activated, false);
  const trial = r.s.trial as { version: number; result: string; reason: string };
  assert.deepEqual([trial.version, trial.result], [bad, 'fail']);
  assert.match(trial.reason, /latency .* exceeds max_latency_ms/);
  assert.match(r.stderr, new RegExp(`KB version ${bad} failed its health check .*; version ${v} stays active`));
  assert.deepEqual(states('slow'), { [String(v)]: 'active*', [String(bad)]: 'failed' });
  // the KB heard about it (the device report went out despite the failure)
  const fleet = JSON.parse(ok(kb.cli(['fleet', '--json']), 'kb fleet').stdout).devices as { id: string; active_version: number | null; last_trial: { version: number; result: string } | null }[];
  const me = fleet.find((d) => d.id === 'slow')!;
  assert.equal(me.active_version, v);
  assert.deepEqual([me.last_trial?.version, me.last_trial?.result], [bad, 'fail']);
  // exit 5 once: the next sync does not retry the failed version by itself (the channel still
  // points at it, but it failed here), and succeeds
  const again = syncJson('slow');
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.s.pulled_version, null);
  assert.equal(activeOf('slow'), String(v));
});
