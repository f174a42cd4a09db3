// sync pull against a real `kb serve`: signed index -> model blobs -> install -> activate; a
// cut download resumes with Range and re-fetches at most one chunk (bytes counted through the
// proxy); a kill -9 mid-download resumes from tmp/<sha>.part; a tampered index, signature or
// blob (man in the middle) is refused with exit 5 and changes nothing; manual activation.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sednaSpawn, tempDir } from './helpers/cli.js';
import { writeRandomMlp } from './helpers/models.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { editConfig, makeEdge, sednaAsync } from './helpers/sync-edge.js';
import { openEdgeDb, kvGet } from '../src/store/db.js';
import { homePaths } from '../src/store/home.js';
import { sha256Hex } from '../src/format/signature.js';
import { readFileSync } from 'node:fs';

const CHUNK = 64 * 1024;

function edgeState(home: string) {
  const p = homePaths(home);
  const db = openEdgeDb(p.db);
  try {
    return {
      active: kvGet(db, 'active_version'),
      versions: (db.prepare('SELECT id, state FROM kb_versions ORDER BY seq').all() as { id: string; state: string }[]).map((v) => `${v.id}:${v.state}`),
      models: existsSync(p.models) ? readdirSync(p.models).sort() : [],
      kbDirs: existsSync(p.kb) ? readdirSync(p.kb).sort() : [],
      tmp: existsSync(p.tmp) ? readdirSync(p.tmp).filter((f) => f.endsWith('.part')) : [],
    };
  } finally {
    db.close();
  }
}

describe('sync pull', () => {
  let kb: TestKb;
  let proxy: FaultProxy;
  const models = tempDir('sedna-ll-models-');
  const publish = (file: string, task = 'global') => {
    const a = kb.cli(['task', 'add', file, '--task', task, '--fallback']);
    assert.equal(a.code, 0, a.stderr);
    const p = kb.cli(['publish', '--json']);
    assert.equal(p.code, 0, p.stderr);
    return JSON.parse(p.stdout) as { version: number };
  };
  const run = (home: string, extra: string[] = []) => sednaAsync(['sync', '--pull-only', '--json', ...extra], { home });

  before(async () => {
    kb = await startTestKb();
    proxy = await startFaultProxy(kb.port);
  });
  after(async () => {
    await proxy?.close();
    await kb?.stop();
    models.cleanup();
  });

  it('pulls, verifies, installs and activates a published version; 304 when current; reports to the KB', async () => {
    const e = makeEdge(kb);
    try {
      const v = publish(writeRandomMlp(models.dir, 'small', [8, 16, 3], 1));
      const r = await run(e.home);
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout);
      assert.equal(s.pulled_version, v.version);
      assert.equal(s.activated, true);
      const st = edgeState(e.home);
      assert.equal(st.active, String(v.version));
      assert.equal(st.models.length, 1);
      assert.deepEqual(st.tmp, []);
      const again = await run(e.home);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(JSON.parse(again.stdout).pulled_version, null);
      const devs = (await (await fetch(`${kb.url}/v1/admin/devices`, { headers: { authorization: `Bearer ${kb.adminToken}` } })).json()) as { devices: { id: string; active_version: number | null }[] };
      assert.equal(devs.devices.find((d) => d.id === kb.deviceId)?.active_version, v.version, 'the device reported its active version');
    } finally {
      e.cleanup();
    }
  });

  it('a cut model download resumes with Range/If-Range and re-fetches at most one chunk', async () => {
    const e = makeEdge(kb, { url: proxy.url });
    try {
      const file = writeRandomMlp(models.dir, 'big', [784, 1024, 10], 2); // ~3.2 MB
      const size = statSync(file).size;
      const v = publish(file);
      const requests: string[] = [];
      proxy.setTransform((dir, chunk) => {
        if (dir === 'up') requests.push(chunk.toString('latin1'));
        return chunk;
      });
      const base = proxy.stats.connections;
      const cutAt = Math.floor(size * 0.45);
      // the first connection asking for the blob (read off the socket on a connection of its
      // own: sync/blob-get.ts) is cut at cutAt, in the blob; the resumed request goes over a new
      // connection, left whole. Chosen by what it asks for, not by connection order: the
      // keep-alive connection of the index dropping would shift that order
      const sha = sha256Hex(readFileSync(file));
      let cut = false;
      const isFirstBlobGet = (req: string) => {
        if (cut || !req.startsWith(`GET /v1/blobs/${sha} `)) return false;
        cut = true;
        return true;
      };
      proxy.setPlan(() => ({ kind: 'cut-response', at: cutAt, onlyIf: isFirstBlobGet }));
      const down0 = proxy.stats.down;
      const r = await run(e.home);
      proxy.setTransform(null);
      proxy.setPlan(() => ({ kind: 'none' }));
      assert.equal(r.code, 0, r.stderr);
      assert.ok(cut, 'the blob request was cut');
      assert.equal(JSON.parse(r.stdout).pulled_version, v.version);
      const relayed = proxy.stats.down - down0;
      // everything relayed = index + blob + one re-fetched chunk at most + headers/replies
      const indexBytes = 16 * 1024;
      assert.ok(relayed <= size + CHUNK + indexBytes, `relayed ${relayed} for a ${size}-byte blob`);
      const ranged = requests.filter((q) => /^GET \/v1\/blobs\//.test(q) && /\r\nrange: bytes=\d+-/i.test(q));
      assert.equal(ranged.length, 1, `one resumed request; saw: ${requests.map((q) => q.split("\r\n").filter((l) => !/^(host|authorization|user-agent|connection):/i.test(l)).join(" / ").slice(0, 300)).join("  ||  ")} conns ${proxy.stats.connections - base} faults ${JSON.stringify(proxy.stats.faults)} relayed ${proxy.stats.down - down0} size ${size}`);
      assert.match(ranged[0], /\r\nif-range: "[0-9a-f]{64}"/i);
      const from = Number(/range: bytes=(\d+)-/i.exec(ranged[0])![1]);
      assert.ok(from > 0 && from <= cutAt && cutAt - from <= CHUNK, `resumed from ${from}, cut at ${cutAt}`);
      const st = edgeState(e.home);
      assert.equal(st.active, String(v.version));
      assert.ok(st.models.includes(`${sha}.onnx`));
      assert.deepEqual(st.tmp, []);
    } finally {
      proxy.setTransform(null);
      e.cleanup();
    }
  });

  it('kill -9 mid-download: the next run resumes from tmp/<sha>.part', async () => {
    const e = makeEdge(kb, { url: proxy.url });
    try {
      const file = writeRandomMlp(models.dir, 'big2', [784, 1024, 10], 3);
      const size = statSync(file).size;
      const sha = sha256Hex(readFileSync(file));
      publish(file);
      proxy.setPlan(() => ({ kind: 'delay', ms: 30 }));
      const p = sednaSpawn(['sync', '--pull-only'], { home: e.home });
      const part = join(homePaths(e.home).tmp, `${sha}.part`);
      const t0 = Date.now();
      while (!(existsSync(part) && statSync(part).size > size / 4) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 10));
      p.kill('SIGKILL');
      await new Promise((r) => p.on('close', r));
      const have = statSync(part).size;
      assert.ok(have > 0 && have < size, `partial ${have} of ${size}`);
      proxy.setPlan(() => ({ kind: 'none' }));
      const down0 = proxy.stats.down;
      const r = await run(e.home);
      assert.equal(r.code, 0, r.stderr);
      const relayed = proxy.stats.down - down0;
      assert.ok(relayed <= size - have + 32 * 1024, `second run relayed ${relayed}, needed ${size - have}`);
      assert.ok(edgeState(e.home).models.includes(`${sha}.onnx`));
    } finally {
      proxy.setPlan(() => ({ kind: 'none' }));
      e.cleanup();
    }
  });

  it('a tampered index, signature or blob is refused with exit 5 and changes nothing', async () => {
    const e = makeEdge(kb, { url: proxy.url });
    try {
      // bring the edge to the current version first
      const r0 = await run(e.home);
      assert.equal(r0.code, 0, r0.stderr);
      const before = edgeState(e.home);
      assert.ok(before.active);
      publish(writeRandomMlp(models.dir, 'next', [8, 32, 3], 4));

      const flipOnce = (find: (s: string) => number) => {
        let done = false;
        return (dir: 'up' | 'down', chunk: Buffer) => {
          if (dir !== 'down' || done) return chunk;
          const at = find(chunk.toString('latin1'));
          if (at < 0) return chunk;
          done = true;
          const out = Buffer.from(chunk);
          out[at] = out[at] === 0x41 ? 0x42 : 0x41; // same length: Content-Length stays right
          return out;
        };
      };
      // 1. index body: one byte of the signed JSON changed
      proxy.setTransform(flipOnce((s) => (s.includes('x-sedna-signature') ? s.indexOf('"created_at"') + 15 : -1)));
      let r = await run(e.home);
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /signature does not verify/);
      assert.deepEqual(edgeState(e.home), before);

      // 2. the signature header itself
      proxy.setTransform(flipOnce((s) => (s.includes('x-sedna-signature: ') ? s.indexOf('x-sedna-signature: ') + 25 : -1)));
      r = await run(e.home);
      assert.equal(r.code, 5, r.stderr);
      assert.deepEqual(edgeState(e.home), before);

      // 3. a model blob: one byte flipped after its headers
      let sawBlob = false;
      let flipped = false;
      proxy.setTransform((dir, chunk) => {
        if (dir !== 'down' || flipped) return chunk;
        const s = chunk.toString('latin1');
        const h = s.indexOf('application/octet-stream');
        if (h >= 0) sawBlob = true;
        if (!sawBlob) return chunk;
        const bodyAt = h >= 0 ? s.indexOf('\r\n\r\n', h) : -1;
        const at = h >= 0 ? (bodyAt >= 0 && bodyAt + 40 < chunk.length ? bodyAt + 40 : -1) : Math.min(20, chunk.length - 1);
        if (at < 0) return chunk;
        flipped = true;
        const out = Buffer.from(chunk);
        out[at] ^= 0xff;
        return out;
      });
      r = await run(e.home);
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /sha256/);
      assert.ok(flipped);
      assert.deepEqual(edgeState(e.home), before, 'no model, no version, no .part left');

      // untouched traffic: installs
      proxy.setTransform(null);
      r = await run(e.home);
      assert.equal(r.code, 0, r.stderr);
      assert.notEqual(edgeState(e.home).active, before.active);
    } finally {
      proxy.setTransform(null);
      e.cleanup();
    }
  });

  it('rollout.activate=manual stages the pulled version and leaves the active one', async () => {
    const e = makeEdge(kb);
    try {
      editConfig(e.home, (c) => {
        c.rollout.activate = 'manual';
      });
      const r = await run(e.home);
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout);
      assert.ok(s.pulled_version > 0);
      assert.equal(s.activated, false);
      const st = edgeState(e.home);
      assert.equal(st.active, null);
      assert.deepEqual(st.versions, [`${s.pulled_version}:staged`]);
    } finally {
      e.cleanup();
    }
  });
});
