// sync push against a real `kb serve` child on loopback: batches acked by the KB, idempotent
// re-runs, labels, the upload policy (payload none / per task, retention delete), and the exit
// codes for a wrong token (1), an unreachable KB (3) and --max-time (4).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { sedna } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { edgeIds, editConfig, kbSamples, labelSamples, makeEdge, sednaAsync, seedOutbox, suiteKb } from './helpers/sync-edge.js';

interface Summary {
  pushed: number;
  acked: number;
  pending: number;
  labels_pushed: number;
  pulled_version: number | null;
  activated: boolean;
  bytes_up: number;
  bytes_down: number;
  duration_ms: number;
  exit: number;
}
const summary = (out: string) => JSON.parse(out) as Summary;

describe('sync push', () => {
  const kb = suiteKb();

  it('pushes every pending sample in batches, marks exactly the acked ones, and a re-run sends nothing', async () => {
    const e = makeEdge(kb(), { deviceId: 'edge-1' });
    try {
      const ids = seedOutbox(e.home, 1200, 3072, { seed: 11 });
      labelSamples(e.home, ids.slice(0, 10).map((id) => ({ id, label: 'cat' })));
      const r = sedna(['sync', '--push-only', '--batch-size', '100', '--json'], { home: e.home });
      assert.equal(r.code, 0, r.stderr);
      const s = summary(r.stdout);
      assert.equal(s.pushed, 1200);
      assert.equal(s.acked, 1200);
      assert.equal(s.pending, 0);
      assert.equal(s.exit, 0);
      assert.ok(s.bytes_up > 0 && s.bytes_up < 1200 * 3072 * 1.4, `bytes_up ${s.bytes_up}`);
      const onKb = await kbSamples(kb(), 'edge-1');
      assert.deepEqual(onKb.map((x) => x.id).sort(), [...ids].sort());
      assert.equal(onKb.filter((x) => x.label === 'cat').length, 10, 'labels present at upload travel with the sample');
      assert.ok(onKb.every((x) => x.payload_kind === 'f32' && x.payload_bytes === 3072));
      assert.deepEqual(edgeIds(e.home).pending, []);
      assert.equal(edgeIds(e.home).labelsPending, 0);

      // labels attached after upload go through POST /v1/labels
      labelSamples(e.home, ids.slice(100, 105).map((id) => ({ id, label: 'dog' })));
      const r2 = sedna(['sync', '--push-only', '--json'], { home: e.home });
      assert.equal(r2.code, 0, r2.stderr);
      const s2 = summary(r2.stdout);
      assert.equal(s2.pushed, 0);
      assert.equal(s2.labels_pushed, 5);
      const after2 = await kbSamples(kb(), 'edge-1');
      assert.equal(after2.length, 1200, 'no duplicate after a re-run');
      assert.equal(after2.filter((x) => x.label === 'dog').length, 5);
      assert.equal(edgeIds(e.home).labelsPending, 0);
    } finally {
      e.cleanup();
    }
  });

  it('applies the upload policy: payload none (per-task raw override) and retention delete', async () => {
    const dev = kb().addDevice('edge-policy');
    const e = makeEdge({ ...kb(), deviceToken: dev.token }, { deviceId: 'edge-policy' });
    try {
      editConfig(e.home, (c) => {
        c.upload = { payload: 'none', per_task: { b: 'raw' }, retention: 'delete' };
      });
      const ids = seedOutbox(e.home, 300, 1024, { seed: 12, tasks: ['a', 'b'] });
      const r = sedna(['sync', '--push-only', '--batch-size', '64', '--json'], { home: e.home });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(summary(r.stdout).acked, 300);
      const onKb = await kbSamples(kb(), 'edge-policy');
      assert.deepEqual(onKb.map((x) => x.id).sort(), [...ids].sort());
      const byId = new Map(onKb.map((x) => [x.id, x]));
      for (let i = 0; i < ids.length; i++) {
        const x = byId.get(ids[i])!;
        // seedOutbox alternates tasks a, b
        assert.equal(x.payload_kind, i % 2 === 0 ? 'none' : 'f32', `sample ${i}`);
      }
      const left = edgeIds(e.home);
      assert.equal(left.pending.length + left.uploaded.length, 0, 'retention delete removes acked samples locally');
    } finally {
      e.cleanup();
    }
  });

  it('wrong token: exit 1 with a clear message, nothing marked uploaded', async () => {
    const e = makeEdge({ ...kb(), deviceToken: 'not-a-token-0123456789' }, { deviceId: 'edge-bad' });
    try {
      seedOutbox(e.home, 20, 256, { seed: 13 });
      const r = sedna(['sync', '--json'], { home: e.home });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /401/);
      assert.match(r.stderr, /token/);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      assert.equal(summary(r.stdout).exit, 1);
      assert.equal(edgeIds(e.home).pending.length, 20);
    } finally {
      e.cleanup();
    }
  });

  it('a bad SEDNA_LL_PUSH_READ_THREAD is a usage error (exit 2, one line), also with nothing pending', async () => {
    const e = makeEdge(kb(), { deviceId: 'edge-env' });
    try {
      for (const seeded of [0, 5]) {
        if (seeded) seedOutbox(e.home, seeded, 256, { seed: 17 });
        const r = sedna(['sync'], { home: e.home, env: { SEDNA_LL_PUSH_READ_THREAD: 'maybe' } });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /SEDNA_LL_PUSH_READ_THREAD="maybe": expected on, off or auto/);
        assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
        assert.equal(edgeIds(e.home).pending.length, seeded, 'nothing sent, nothing lost');
      }
    } finally {
      e.cleanup();
    }
  });

  it('KB unreachable: exit 3, nothing lost; --max-time with a slow link: exit 4 then a later run finishes', async () => {
    // a port that refuses connections: bind, note it, close
    const port = await new Promise<number>((res) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => res(p));
      });
    });
    const dev = kb().addDevice('edge-down');
    const e = makeEdge({ ...kb(), deviceToken: dev.token }, { deviceId: 'edge-down', url: `http://127.0.0.1:${port}` });
    let proxy: FaultProxy | null = null;
    try {
      const ids = seedOutbox(e.home, 400, 2048, { seed: 14 });
      const t0 = Date.now();
      const r = sedna(['sync', '--retries', '2', '--json'], { home: e.home });
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /unreachable/);
      assert.ok(Date.now() - t0 < 15_000);
      assert.equal(summary(r.stdout).acked, 0);
      assert.equal(edgeIds(e.home).pending.length, 400);

      // slow link: every chunk held 150 ms; a 5 s budget acks some batches and stops cleanly
      proxy = await startFaultProxy(kb().port);
      proxy.setPlan(() => ({ kind: 'delay', ms: 150 }));
      editConfig(e.home, (c) => {
        c.kb!.url = proxy!.url;
      });
      const r2 = await sednaAsync(['sync', '--push-only', '--batch-size', '20', '--max-time', '5', '--json'], { home: e.home });
      assert.equal(r2.code, 4, r2.stderr);
      const s2 = summary(r2.stdout);
      assert.ok(s2.acked > 0 && s2.acked < 400, `acked ${s2.acked}`);
      assert.ok(s2.duration_ms < 9000, `--max-time bounds the run: duration ${s2.duration_ms}`);
      assert.equal(s2.pending, 400 - s2.acked);

      proxy.setPlan(() => ({ kind: 'none' }));
      const r3 = await sednaAsync(['sync', '--push-only', '--json'], { home: e.home });
      assert.equal(r3.code, 0, r3.stderr);
      const onKb = await kbSamples(kb(), 'edge-down');
      assert.deepEqual(onKb.map((x) => x.id).sort(), [...ids].sort());
    } finally {
      await proxy?.close();
      e.cleanup();
    }
  });

  it('samples logged while a sync runs (a busy edge): the run still ends; the next run sends them', async () => {
    const dev = kb().addDevice('edge-busy');
    const proxy = await startFaultProxy(kb().port);
    const e = makeEdge({ ...kb(), deviceToken: dev.token }, { deviceId: 'edge-busy', url: proxy.url });
    try {
      const first = seedOutbox(e.home, 300, 1024, { seed: 16 });
      proxy.setPlan(() => ({ kind: 'delay', ms: 40 }));
      const run = sednaAsync(['sync', '--push-only', '--batch-size', '25', '--json'], { home: e.home });
      const later: string[] = [];
      for (let i = 0; i < 6; i++) {
        await new Promise((r) => setTimeout(r, 150));
        later.push(...seedOutbox(e.home, 50, 1024, { seed: 160 + i })); // concurrent writer (like infer)
      }
      const r = await run;
      assert.equal(r.code, 0, r.stderr);
      const acked = JSON.parse(r.stdout).acked as number;
      assert.ok(acked >= 300, `acked ${acked}`);
      proxy.setPlan(() => ({ kind: 'none' }));
      const r2 = await sednaAsync(['sync', '--push-only', '--json'], { home: e.home });
      assert.equal(r2.code, 0, r2.stderr);
      const onKb = await kbSamples(kb(), 'edge-busy');
      assert.deepEqual(onKb.map((x) => x.id).sort(), [...first, ...later].sort());
      assert.deepEqual(edgeIds(e.home).pending, []);
    } finally {
      await proxy.close();
      e.cleanup();
    }
  });

  it('500s and lost responses are retried; a KB that stays broken gives exit 3 with nothing marked', async () => {
    const dev = kb().addDevice('edge-faults');
    const proxy = await startFaultProxy(kb().port);
    const e = makeEdge({ ...kb(), deviceToken: dev.token }, { deviceId: 'edge-faults', url: proxy.url });
    try {
      const ids = seedOutbox(e.home, 500, 1024, { seed: 15 });
      proxy.setPlan(() => ({ kind: 'http500' }));
      const r = await sednaAsync(['sync', '--push-only', '--retries', '2', '--json'], { home: e.home });
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /500/);
      assert.equal(edgeIds(e.home).pending.length, 500);

      // first connections: 500, then "committed but answer lost", then a cut answer
      const faults = [{ kind: 'http500' }, { kind: 'lost-response' }, { kind: 'cut-response', at: 100 }, { kind: 'lost-response' }] as const;
      const before = proxy.stats.connections;
      proxy.setPlan((i) => (i - before >= 0 && i - before < faults.length ? { ...faults[i - before] } : { kind: 'none' }));
      const r2 = await sednaAsync(['sync', '--push-only', '--batch-size', '100', '--json'], { home: e.home });
      assert.equal(r2.code, 0, r2.stderr);
      const onKb = await kbSamples(kb(), 'edge-faults');
      assert.equal(onKb.length, 500, 'no duplicates despite re-sent batches');
      assert.deepEqual(onKb.map((x) => x.id).sort(), [...ids].sort());
      assert.deepEqual(edgeIds(e.home).pending, []);
    } finally {
      await proxy.close();
      e.cleanup();
    }
  });
});
