// A KB whose blobs live in a real Ceph RADOS gateway (S3): models published into the bucket and
// pulled through the KB (streamed) or from presigned URLs (the edge follows them without its
// token, resumes a cut with Range, fetches a new URL when one expired, and refuses a tampered
// object by its sha256); with the gateway down the KB answers 503 + Retry-After and the edge
// keeps its samples.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { S3BlobStore } from '../src/kb/s3/blob-store.js';
import { tempDir } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { writeRandomMlp } from './helpers/models.js';
import { rgwMissing, startRgw, type TestRgw } from './helpers/rgw.js';
import { edgeIds, editConfig, makeEdge, sednaAsync, seedOutbox } from './helpers/sync-edge.js';

const missing = rgwMissing();
const BUCKET = 'kb-e2e';

describe('KB with blobs in S3 (Ceph RGW)', { skip: missing ?? false }, () => {
  let rgw: TestRgw;
  let proxy: FaultProxy;
  let kb: TestKb;
  let s3: S3BlobStore;
  const models = tempDir('sedna-ll-s3-models-');
  const publish = (file: string, task: string) => {
    const a = kb.cli(['task', 'add', file, '--task', task, '--fallback']);
    assert.equal(a.code, 0, a.stderr);
    const p = kb.cli(['publish', '--json']);
    assert.equal(p.code, 0, p.stderr);
    return { version: (JSON.parse(p.stdout) as { version: number }).version, sha: createHash('sha256').update(readFileSync(file)).digest('hex'), size: readFileSync(file).length };
  };
  const pull = (home: string) => sednaAsync(['sync', '--pull-only', '--retries', '6', '--json'], { home });
  /** the KB's request log: routes asked, in order */
  const routes = () =>
    kb
      .stderr()
      .split('\n')
      .filter((l) => l.includes('"route"'))
      .map((l) => JSON.parse(l) as { route: string; status: number });

  before(async () => {
    rgw = await startRgw();
    // devices reach the object store through a fault proxy (the URLs are presigned for it);
    // the KB talks to the gateway directly
    proxy = await startFaultProxy(Number(new URL(rgw.endpoint).port));
    const env = {
      ...process.env,
      SEDNA_LL_KB_BLOBS: `s3://${BUCKET}/kb`,
      SEDNA_LL_KB_S3_ENDPOINT: rgw.endpoint,
      AWS_ACCESS_KEY_ID: rgw.accessKeyId,
      AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey,
      AWS_REGION: rgw.region,
    };
    // presigned URLs valid 1 s: the expiry test below makes one expire by holding a request
    kb = await startTestKb({ env, verbose: true, serveArgs: ['--presign-expiry', '1', '--s3-public-endpoint', proxy.url] });
    s3 = new S3BlobStore({ endpoint: new URL(rgw.endpoint), bucket: BUCKET, prefix: 'kb/', region: rgw.region, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey }, tmpDir: models.dir });
  });
  after(async () => {
    s3?.close();
    await kb?.stop();
    await proxy?.close();
    await rgw?.stop();
    models.cleanup();
  });

  it('publishes model blobs into the bucket (not the data dir) and streams them to a device', async () => {
    const m = publish(writeRandomMlp(models.dir, 'streamed', [8, 16, 3], 1), 'streamed');
    assert.equal(await s3.size(m.sha), m.size, 'the model is in the bucket under kb/blobs/<sha256>');
    const local = join(kb.dataDir, 'blobs');
    assert.deepEqual(existsSync(local) ? readdirSync(local).filter((f) => /^[0-9a-f]{64}$/.test(f)) : [], [], 'nothing in DATA/blobs');
    const e = makeEdge(kb);
    try {
      const r = await pull(e.home);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).pulled_version, m.version);
      assert.ok(routes().some((x) => x.route === '/v1/blobs/:sha' && x.status === 200), 'streamed through the KB');
      // a ranged GET through the KB is served from a ranged GET of the object
      const ranged = await fetch(`${kb.url}/v1/blobs/${m.sha}`, { headers: { authorization: `Bearer ${kb.deviceToken}`, range: 'bytes=10-109' } });
      assert.equal(ranged.status, 206);
      assert.equal(ranged.headers.get('content-range'), `bytes 10-109/${m.size}`);
      assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), readFileSync(join(models.dir, 'streamed.onnx')).subarray(10, 110));
    } finally {
      e.cleanup();
    }
  });

  it('presigned: the edge downloads from the object store, resumes a cut, and fetches a new URL when one expired', async () => {
    const m = publish(writeRandomMlp(models.dir, 'presigned', [256, 600, 3], 2), 'presigned');
    assert.ok(m.size > 500_000);
    // a device's GET of the URL route answers a URL of the proxy with a 1 s expiry
    const u = await fetch(`${kb.url}/v1/blobs/${m.sha}/url`, { headers: { authorization: `Bearer ${kb.deviceToken}` } });
    assert.equal(u.status, 200);
    assert.equal(u.headers.get('cache-control'), 'no-store');
    const body = (await u.json()) as { url: string; size: number; sha256: string };
    assert.equal(body.size, m.size);
    assert.ok(body.url.startsWith(`${proxy.url}/${BUCKET}/kb/blobs/${m.sha}?`), body.url);
    assert.match(body.url, /X-Amz-Expires=1&/);

    const e = makeEdge(kb);
    editConfig(e.home, (c) => {
      c.kb!.presigned_blobs = true;
    });
    const streamedBefore = routes().filter((x) => x.route === '/v1/blobs/:sha').length;
    const urlsBefore = routes().filter((x) => x.route === '/v1/blobs/:sha/url').length;
    // 1st connection to the store: cut after 200 KB; 2nd: held 2.5 s before it reaches the
    // gateway, so the URL has expired there (403); then a new URL and a clean resume
    const first = proxy.stats.connections;
    const faults = [{ kind: 'cut-response', at: 200_000 }, { kind: 'hold-first', ms: 2500 }] as const;
    proxy.setPlan((i) => (i - first < faults.length ? { ...faults[i - first] } : { kind: 'none' }));
    try {
      const r = await pull(e.home);
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout);
      assert.equal(s.pulled_version, m.version);
      assert.equal(s.activated, true);
      assert.equal(routes().filter((x) => x.route === '/v1/blobs/:sha').length, streamedBefore, 'nothing streamed through the KB');
      assert.ok(routes().filter((x) => x.route === '/v1/blobs/:sha/url').length - urlsBefore >= 2, 'a new URL after the expired one (the edge asks again only after a 403)');
      assert.equal(proxy.stats.faults['cut-response'], 1);
      assert.ok(proxy.stats.down < m.size + 200_000 + 64 * 1024, `resumed, not restarted: ${proxy.stats.down} bytes for ${m.size}`);
    } finally {
      proxy.setPlan(() => ({ kind: 'none' }));
      e.cleanup();
    }
  });

  it('presigned: a tampered object in the store fails the sha256 check (exit 5), nothing installed', async () => {
    const file = writeRandomMlp(models.dir, 'tampered', [16, 32, 3], 3);
    const m = publish(file, 'tampered');
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0xff; // same size, other content
    // written straight into the bucket under the published name (the KB never would)
    const evil = createHash('sha256').update(bytes).digest('hex');
    const res = await s3.client.call({ method: 'PUT', key: `kb/blobs/${m.sha}`, body: bytes, payloadHash: evil });
    assert.equal(res.status, 200);
    const e = makeEdge(kb);
    editConfig(e.home, (c) => {
      c.kb!.presigned_blobs = true;
    });
    try {
      const r = await pull(e.home);
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /sha256/);
      const models = join(e.home, 'models');
      assert.equal(existsSync(models) && readdirSync(models).some((f) => f.startsWith(m.sha)), false);
    } finally {
      e.cleanup();
    }
  });

  it('kb gc on the bucket: sample payloads and models stay, an unreferenced object goes (young ones only with --grace 0)', async () => {
    const e = makeEdge(kb, { deviceId: kb.deviceId });
    try {
      seedOutbox(e.home, 2, 400_000, { seed: 9 }); // > the inline limit: payloads in the bucket
      const p = await sednaAsync(['sync', '--push-only', '--json'], { home: e.home });
      assert.equal(p.code, 0, p.stderr);
    } finally {
      e.cleanup();
    }
    const before = new Set<string>();
    for await (const b of s3.list()) before.add(b.sha256);
    const stray = await s3.put(Buffer.from('nobody references this'));
    const dry = kb.cli(['gc', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const j = JSON.parse(dry.stdout);
    assert.equal(j.blobs, before.size + 1);
    assert.equal(j.referenced, before.size, 'models and the pushed payloads are referenced');
    assert.ok(before.size >= 5, `3 models + 2 payloads at least, got ${before.size}`);
    assert.equal(j.young, 1);
    const del = JSON.parse(kb.cli(['gc', '--delete', '--grace', '0', '--json']).stdout);
    assert.deepEqual(del.orphans.map((o: { sha256: string }) => o.sha256), [stray.sha256]);
    assert.equal(del.deleted, 1);
    const afterGc = new Set<string>();
    for await (const b of s3.list()) afterGc.add(b.sha256);
    assert.deepEqual([...afterGc].sort(), [...before].sort());
  });

  it('object store down: blob routes and pushes of large payloads answer 503 with Retry-After; the edge keeps its samples', async () => {
    const latest = publish(writeRandomMlp(models.dir, 'down', [8, 8, 3], 4), 'down');
    rgw.killGateway();
    const auth = { authorization: `Bearer ${kb.deviceToken}` };
    for (const path of [`/v1/blobs/${latest.sha}`, `/v1/blobs/${latest.sha}/url`]) {
      const r = await fetch(`${kb.url}${path}`, { headers: auth });
      assert.equal(r.status, 503, path);
      assert.ok(Number(r.headers.get('retry-after')) > 0, `${path}: Retry-After`);
      assert.match(((await r.json()) as { error: string }).error, /object store/);
    }
    const e = makeEdge(kb, { deviceId: kb.deviceId });
    try {
      const ids = seedOutbox(e.home, 3, 400_000, { seed: 5 }); // > the inline limit: blobs
      const r = await sednaAsync(['sync', '--push-only', '--retries', '1', '--json'], { home: e.home });
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /503/);
      assert.equal(edgeIds(e.home).pending.length, ids.length, 'nothing marked uploaded');
    } finally {
      e.cleanup();
    }
  });
});
