// The single-instance lock through the real CLI: a second concurrent sync exits 6 at once, a
// kill -9'd sync's lock is taken over by the next run. The lock itself (stale holders, racing
// takeovers, a contending process) is tested in durable-lock.test.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { edgeIds, kbSamples, makeEdge, sednaAsync, seedOutbox, suiteKb } from './helpers/sync-edge.js';
import { sednaSpawn } from './helpers/cli.js';

describe('lock (sync CLI)', () => {
  const kb = suiteKb();

  it('a second concurrent sync exits 6 at once; a kill -9 leaves a stale lock the next run takes over', async () => {
    const proxy = await startFaultProxy(kb().port);
    const e = makeEdge(kb(), { url: proxy.url });
    try {
      const ids = seedOutbox(e.home, 600, 2048, { seed: 21 });
      proxy.setPlan(() => ({ kind: 'delay', ms: 100 })); // a slow link keeps the first run busy
      const first = sednaSpawn(['sync', '--push-only', '--batch-size', '20'], { home: e.home });
      const lockPath = join(e.home, 'locks', 'sync.lock');
      const t0 = Date.now();
      while (!existsSync(lockPath) && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 20));
      assert.ok(existsSync(lockPath), 'first sync holds the lock');
      assert.equal(JSON.parse(readFileSync(lockPath, 'utf8')).pid, first.pid);

      // once the first has pushed something, the link stalls: the first run is stuck mid-push,
      // holding its lock, for as long as the rest takes (a hand-off, not a race against its speed)
      const t2 = Date.now();
      while ((await kbSamples(kb(), kb().deviceId)).length === 0 && first.exitCode === null && Date.now() - t2 < 120_000) await new Promise((r) => setTimeout(r, 50));
      proxy.hold();
      assert.equal(first.exitCode, null, 'the first sync is still running when the link stalls');

      const second = await sednaAsync(['sync', '--json'], { home: e.home });
      assert.equal(second.code, 6, second.stderr);
      assert.match(second.stderr, /locked: another sync is running \(pid \d+/);
      assert.equal(JSON.parse(second.stdout).exit, 6, '--json answers even when the run cannot start');

      // kill -9 the holder mid-push: its lock file stays behind
      first.kill('SIGKILL');
      await new Promise((r) => first.on('close', r));
      assert.ok(existsSync(lockPath), 'a killed run leaves its lock file');
      proxy.release();

      proxy.setPlan(() => ({ kind: 'none' }));
      const third = await sednaAsync(['sync', '--push-only', '--json'], { home: e.home });
      assert.equal(third.code, 0, third.stderr);
      assert.ok(!existsSync(lockPath), 'released after the run');
      const onKb = await kbSamples(kb(), kb().deviceId);
      assert.deepEqual(onKb.map((x) => x.id).sort(), [...ids].sort());
      assert.deepEqual(edgeIds(e.home).pending, []);
    } finally {
      await proxy.close();
      e.cleanup();
    }
  });
});
