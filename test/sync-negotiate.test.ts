// The push framing is asked once per KB and kept in the edge's kv table (src/sync/negotiate.ts):
// real `kb serve` on loopback, real `sync` runs; GET /v1/protocol counted in the KB's request log.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openEdgeDb, kvGet, kvSet } from '../src/store/db.js';
import { homePaths } from '../src/store/home.js';
import { FRAMING_KV, JSON_RECHECK_MS } from '../src/sync/negotiate.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { editConfig, edgeIds, kbSamples, makeEdge, sednaAsync, seedOutbox } from './helpers/sync-edge.js';

interface Summary {
  acked: number;
  pending: number;
  push_framing: 'frames' | 'json' | null;
}

const push = async (home: string) => {
  const r = await sednaAsync(['sync', '--push-only', '--json', '--batch-size', '100'], { home });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Summary;
};

/** GET /v1/protocol requests in the KB's log so far (answered or 404) */
const probes = (kb: TestKb) => (kb.stderr().match(/"url":"\/v1\/protocol"/g) ?? []).length;

function cached(home: string): { url: string; framing: string; at: number } | null {
  const db = openEdgeDb(homePaths(home).db);
  try {
    const v = kvGet(db, FRAMING_KV);
    return v ? JSON.parse(v) : null;
  } finally {
    db.close();
  }
}

function setCached(home: string, fn: (c: Record<string, unknown>) => void): void {
  const db = openEdgeDb(homePaths(home).db);
  try {
    const c = JSON.parse(kvGet(db, FRAMING_KV)!) as Record<string, unknown>;
    fn(c);
    kvSet(db, FRAMING_KV, JSON.stringify(c));
  } finally {
    db.close();
  }
}

describe('push framing negotiation, kept per KB', () => {
  it('asked once: later syncs push frames without GET /v1/protocol; another URL asks again', async () => {
    const kb = await startTestKb();
    const e = makeEdge(kb);
    try {
      const ids = seedOutbox(e.home, 250, 512, { seed: 1 });
      let s = await push(e.home);
      assert.deepEqual([s.push_framing, s.acked, s.pending], ['frames', 250, 0]);
      assert.equal(probes(kb), 1);
      assert.deepEqual([cached(e.home)?.url, cached(e.home)?.framing], [kb.url, 'frames']);

      ids.push(...seedOutbox(e.home, 250, 512, { seed: 2 }));
      s = await push(e.home);
      assert.deepEqual([s.push_framing, s.acked, s.pending], ['frames', 250, 0]);
      assert.equal(probes(kb), 1, 'the cached answer: no probe');

      // the same KB under another name is another URL for the edge: asked again
      editConfig(e.home, (c) => (c.kb!.url = kb.url.replace('127.0.0.1', 'localhost')));
      ids.push(...seedOutbox(e.home, 10, 512, { seed: 3 }));
      s = await push(e.home);
      assert.deepEqual([s.push_framing, s.acked], ['frames', 10]);
      assert.equal(probes(kb), 2);
      assert.equal(cached(e.home)?.url, kb.url.replace('127.0.0.1', 'localhost'));
      assert.deepEqual((await kbSamples(kb, kb.deviceId)).map((x) => x.id).sort(), [...ids].sort());
    } finally {
      e.cleanup();
      await kb.stop();
    }
  });

  it('a KB restarted json-only refuses the cached frames: the push falls back to JSON and uploads everything; then JSON is kept, and asked again when old', async () => {
    const kb = await startTestKb();
    const e = makeEdge(kb);
    try {
      const ids = seedOutbox(e.home, 50, 512, { seed: 4 });
      assert.equal((await push(e.home)).push_framing, 'frames');
      assert.equal(cached(e.home)?.framing, 'frames');

      // downgraded in place: same URL and key, no GET /v1/protocol, 404 to POST /v1/sample-frames
      await kb.stop({ keep: true });
      await kb.restart({ serveArgs: ['--json-push-only'] });
      ids.push(...seedOutbox(e.home, 300, 512, { seed: 5 }));
      let s = await push(e.home);
      assert.deepEqual([s.push_framing, s.acked, s.pending], ['json', 300, 0]);
      assert.equal(probes(kb), 1, 'the refusal, not a probe, found the downgrade');
      assert.match(kb.stderr(), /"url":"\/v1\/sample-frames"[^\n]*"status":404/);
      assert.equal(cached(e.home), null, 'the refused answer is forgotten');
      assert.deepEqual(edgeIds(e.home).pending, []);
      assert.deepEqual((await kbSamples(kb, kb.deviceId)).map((x) => x.id).sort(), [...ids].sort());

      // the next run asks (404: JSON) and keeps the answer
      ids.push(...seedOutbox(e.home, 20, 512, { seed: 6 }));
      s = await push(e.home);
      assert.deepEqual([s.push_framing, s.acked], ['json', 20]);
      assert.equal(probes(kb), 2);
      assert.equal(cached(e.home)?.framing, 'json');
      ids.push(...seedOutbox(e.home, 20, 512, { seed: 7 }));
      assert.equal((await push(e.home)).push_framing, 'json');
      assert.equal(probes(kb), 2, 'a fresh json answer: no probe');

      // upgraded again: a json answer older than JSON_RECHECK_MS is asked again, and frames follow
      await kb.stop({ keep: true });
      await kb.restart({ serveArgs: [] });
      setCached(e.home, (c) => (c.at = Date.now() - JSON_RECHECK_MS - 1000));
      ids.push(...seedOutbox(e.home, 20, 512, { seed: 8 }));
      s = await push(e.home);
      assert.deepEqual([s.push_framing, s.acked], ['frames', 20]);
      assert.equal(probes(kb), 3);
      assert.equal(cached(e.home)?.framing, 'frames');
      assert.deepEqual((await kbSamples(kb, kb.deviceId)).map((x) => x.id).sort(), [...ids].sort());
    } finally {
      e.cleanup();
      await kb.stop();
    }
  });
});
