// Fleet rollout against a real KB server (kb serve child on loopback) and real edges syncing:
// a version rolled out to the canary channel that makes the canary devices' trials fail is
// aborted automatically (canary falls back to its previous version) and the stable channel
// never sees it; a good version passes on canary, is promoted, and reaches stable.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sedna, tempDir } from './helpers/cli.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { initEdge, inputs, modelBytes } from './helpers/rollout-fixtures.js';

const tmp = tempDir('sedna-ll-rollout-fleet-');
let kb: TestKb;
const N = 20; // trial inferences on every edge
const edges: Record<string, { home: string; channel: string }> = {};

function ok(r: { code: number; stdout: string; stderr: string }, what: string) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}: ${r.stderr}`);
  return r;
}

function kbJson<T>(args: string[]): T {
  return JSON.parse(ok(kb.cli([...args, '--json']), `kb ${args.join(' ')}`).stdout) as T;
}

/** Register a model as task "global" and publish it to a channel; returns the version number. */
function publish(seed: number, scale: number, channel: string): number {
  const f = join(tmp.dir, `m-${seed}-${scale}.onnx`);
  writeFileSync(f, modelBytes(seed, scale));
  ok(kb.cli(['task', 'add', f, '--task', 'global', '--labels', 'a,b,c', '--fallback']), 'kb task add');
  return kbJson<{ version: number }>(['publish', '--channel', channel]).version;
}

const sync = (id: string) => ok(sedna(['sync', '--json'], { home: edges[id].home }), `sync ${id}`);
const infer = (id: string, n: number, seed: number) => ok(sedna(['infer'], { home: edges[id].home, input: inputs(n, seed).map((x) => JSON.stringify({ x })).join('\n') + '\n' }), `infer ${id}`);
const activeOf = (id: string) => (JSON.parse(sedna(['model', 'ls', '--json'], { home: edges[id].home }).stdout).versions as { id: string; active: boolean }[]).find((r) => r.active)?.id ?? null;
const versionsOf = (id: string) => (JSON.parse(sedna(['model', 'ls', '--json'], { home: edges[id].home }).stdout).versions as { id: string; state: string }[]).map((r) => `${r.id}:${r.state}`).sort();

interface Channel {
  name: string;
  version: number | null;
  previous_version: number | null;
  rollout: { status: string; version: number; failed: number; reported: number; reason?: string } | null;
}
const channel = (name: string) => kbJson<{ channels: Channel[] }>(['channel', 'ls']).channels.find((c) => c.name === name)!;

before(async () => {
  kb = await startTestKb({ deviceId: 'canary-1', channel: 'canary' });
  ok(kb.cli(['channel', 'add', 'canary', '--abort-pct', '50', '--min-reports', '2']), 'channel add');
  ok(kb.cli(['channel', 'add', 'stable']), 'channel add stable');
  const tokens: Record<string, string> = { 'canary-1': kb.deviceToken };
  tokens['canary-2'] = kb.addDevice('canary-2', 'canary').token;
  tokens['canary-3'] = kb.addDevice('canary-3', 'canary').token;
  tokens['stable-1'] = kb.addDevice('stable-1', 'stable').token;
  tokens['stable-2'] = kb.addDevice('stable-2', 'stable').token;
  for (const [id, token] of Object.entries(tokens)) {
    const home = join(tmp.dir, id);
    edges[id] = { home, channel: id.split('-')[0] };
    initEdge(home, { publicKey: kb.publicKeyPem, privateKey: '' }, { trial_inferences: N, trial_rate_factor: 1.5 }, id, { url: kb.url, token });
  }
  // version 1: a confident model on both channels; every edge runs it through its trial
  const v1 = publish(1, 60, 'stable');
  ok(kb.cli(['rollout', String(v1), '--channel', 'canary']), 'rollout v1 to canary');
  for (const id of Object.keys(edges)) {
    sync(id);
    assert.equal(activeOf(id), String(v1), `${id} runs v1`);
    infer(id, N + 10, 1);
    sync(id); // reports the passed trial
  }
});

after(async () => {
  await kb?.stop();
  tmp.cleanup();
});

test('a failing canary rollout is aborted; the stable channel never sees it', async () => {
  // version 2 answers uniformly: every sample is hard, far above v1's rate
  const v2 = publish(2, 0.001, 'canary');
  assert.equal(channel('canary').version, v2);
  assert.equal(channel('stable').version, 1);

  // first canary device: pulls v2, trial fails on the hard rate, rolls back, reports
  sync('canary-1');
  assert.equal(activeOf('canary-1'), String(v2));
  infer('canary-1', N + 5, 2);
  assert.equal(activeOf('canary-1'), '1', 'canary-1 rolled back by itself');
  sync('canary-1');
  let c = channel('canary');
  assert.equal(c.version, v2, 'one failure of the minimum two: still rolling');
  assert.equal(c.rollout!.failed, 1);
  // promotion of a version that failed somewhere is refused
  const pr = kb.cli(['promote', '--from', 'canary', '--to', 'stable']);
  assert.equal(pr.code, 1);
  assert.match(pr.stderr, /failed the trial of version 2/);

  // second canary device fails too: 2 of 2 reports failed >= 50% -> abort, canary back to v1
  sync('canary-2');
  infer('canary-2', N + 5, 3);
  assert.equal(activeOf('canary-2'), '1');
  sync('canary-2');
  c = channel('canary');
  assert.equal(c.version, 1, 'canary fell back to its previous version');
  assert.equal(c.rollout!.status, 'aborted');
  assert.match(c.rollout!.reason!, /2 of 2 reporting devices failed/);

  // canary-3 had not synced yet: it never gets v2 now
  sync('canary-3');
  assert.deepEqual(versionsOf('canary-3'), ['1:active']);

  // stable devices sync (and infer) throughout: they never see version 2
  for (const id of ['stable-1', 'stable-2']) {
    sync(id);
    infer(id, 3, 4);
    sync(id);
    assert.deepEqual(versionsOf(id), ['1:active'], `${id} saw only v1`);
  }
  const fleet = kbJson<{ devices: { id: string; channel: string; active_version: number | null; last_trial: { version: number; result: string; reason?: string } | null; last_seen: string | null }[] }>(['fleet']).devices;
  const byId = Object.fromEntries(fleet.map((d) => [d.id, d]));
  assert.equal(byId['canary-1'].last_trial!.result, 'fail');
  assert.match(byId['canary-1'].last_trial!.reason!, /unseen\+hard rate/);
  assert.equal(byId['canary-1'].active_version, 1);
  assert.equal(byId['stable-1'].active_version, 1);
  assert.equal(byId['stable-1'].last_trial!.result, 'pass');
  assert.ok(fleet.every((d) => d.last_seen), 'every device reported');
  const human = ok(kb.cli(['fleet']), 'kb fleet').stdout;
  assert.match(human, /canary-1\s+canary\s+1\s+\S+\s+v2 fail/);
});

test('a good version passes on canary, is promoted and reaches stable', async () => {
  const v3 = publish(3, 60, 'canary');
  for (const id of ['canary-1', 'canary-2', 'canary-3']) {
    sync(id);
    infer(id, N + 2, 5);
    assert.equal(activeOf(id), String(v3), `${id} committed v3`);
    sync(id);
  }
  assert.equal(channel('canary').rollout!.status, 'rolling');
  const p = kbJson<{ version: number; previous_version: number }>(['promote', '--from', 'canary', '--to', 'stable']);
  assert.equal(p.version, v3);
  assert.equal(p.previous_version, 1);
  for (const id of ['stable-1', 'stable-2']) {
    sync(id);
    assert.equal(activeOf(id), String(v3));
    assert.ok(!versionsOf(id).some((v) => v.startsWith('2:')), `${id} never installed v2`);
  }
  // an offline bundle of the version, with canary outputs computed on the KB, installs and passes its check
  const bundle = join(tmp.dir, 'v3.tar.gz');
  const b = kbJson<{ canary: { task: string; records: number; source: string }[] }>(['bundle', String(v3), '-o', bundle]);
  assert.ok(b.canary[0].records > 0);
  const h = join(tmp.dir, 'usb-edge');
  initEdge(h, { publicKey: kb.publicKeyPem, privateKey: '' }, { trial_inferences: 0 }, 'usb-edge');
  const inst = sedna(['model', 'install', bundle, '--activate', '--json'], { home: h });
  assert.equal(inst.code, 0, inst.stderr);
  assert.equal(JSON.parse(inst.stdout).activation.checks.canary.records, b.canary[0].records);
});
