// `serve` follows activations made by other processes without a restart and without failing a
// request: a client keeps a steady stream of requests going while `model activate` and then
// `model rollback` run; every request succeeds and the answers switch between the versions'
// models.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { sedna, sednaSpawn, tempDir } from './helpers/cli.js';
import { bundleOf, computeCanary, generateSigningKeys, initEdge, makeVersion } from './helpers/rollout-fixtures.js';

const tmp = tempDir('sedna-ll-rollout-serve-');
after(() => tmp.cleanup());

test('serve switches to a newly activated version and back on rollback, dropping no request', async (t) => {
  const keys = generateSigningKeys();
  const home = join(tmp.dir, 'home');
  initEdge(home, keys, { trial_inferences: 0 });
  const v1 = makeVersion(keys, 1, [{ id: 'global', seed: 1, scale: 8 }]);
  const v2 = makeVersion(keys, 2, [{ id: 'global', seed: 2, scale: 8 }]);
  for (const v of [v1, v2]) {
    const f = await bundleOf(v, join(tmp.dir, `v${v.version}.tar.gz`), await computeCanary(v, tmp.dir));
    assert.equal(sedna(['model', 'install', f, ...(v.version === 1 ? ['--activate'] : [])], { home }).code, 0);
  }
  // the answer of each version for one fixed input, computed offline with its own model
  const expect = { '1': (await computeCanary(v1, tmp.dir, 1))[0], '2': (await computeCanary(v2, tmp.dir, 1))[0] };
  const child = sednaSpawn(['serve', '--port', '0', '--recheck', '100000'], { home });
  t.after(() => child.kill('SIGKILL'));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const m = /"listening":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (c) => reject(new Error(`serve exited ${c}`)));
  });
  const x0 = expect['1'].x;
  const ask = async () => {
    const r = await fetch(`${url}/infer`, { method: 'POST', body: JSON.stringify({ x: x0 }) });
    assert.equal(r.status, 200, await r.clone().text());
    return ((await r.json()) as { scores: number[] }).scores;
  };
  const close = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) < 1e-4);
  const which = (s: number[]) => (close(s, expect['1'].expected) ? '1' : close(s, expect['2'].expected) ? '2' : '?');

  // a client hammering the server the whole time
  let stop = false;
  const seen: string[] = [];
  let failures = 0;
  const client = (async () => {
    while (!stop) {
      try {
        seen.push(which(await ask()));
      } catch {
        failures++;
      }
    }
  })();
  const waitFor = async (id: string) => {
    const t0 = Date.now();
    while (Date.now() - t0 < 15_000) {
      const h = (await (await fetch(`${url}/healthz`)).json()) as { version: string };
      if (h.version === id) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`serve did not switch to version ${id}`);
  };
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(sedna(['model', 'activate', '2'], { home }).code, 0);
  await waitFor('2');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(sedna(['model', 'rollback'], { home }).code, 0);
  await waitFor('1');
  await new Promise((r) => setTimeout(r, 300));
  stop = true;
  await client;
  assert.equal(failures, 0, 'no request failed');
  assert.ok(!seen.includes('?'), 'every answer is exactly one version\'s');
  // the stream saw 1, then 2, then 1 again, in that order
  const runs = seen.filter((v, i) => i === 0 || v !== seen[i - 1]);
  assert.deepEqual(runs, ['1', '2', '1']);
  child.kill('SIGTERM');
});
