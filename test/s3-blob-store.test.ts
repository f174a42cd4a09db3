// S3BlobStore against a real Ceph RADOS gateway (scripts/ceph/start-rgw.sh): put/get/range/
// has/size/delete/list, a tampered signature refused by RGW, an uploader killed with -9 in the
// middle of a PUT leaves nothing visible, an unreachable object store is "unavailable" (503).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ObjectStoreUnavailableError, S3Client, S3Error } from '../src/kb/s3/client.js';
import { S3BlobStore } from '../src/kb/s3/blob-store.js';
import { rgwMissing, startRgw, type TestRgw } from './helpers/rgw.js';

const missing = rgwMissing();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function bytes(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

describe('S3BlobStore on Ceph RGW', { skip: missing ?? false }, () => {
  let rgw: TestRgw;
  let tmp: string;
  let store: S3BlobStore;
  const loc = (over: Partial<{ secretAccessKey: string; bucket: string; endpoint: string }> = {}) => ({
    endpoint: new URL(over.endpoint ?? rgw.endpoint),
    bucket: over.bucket ?? 'kb-test',
    region: rgw.region,
    credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: over.secretAccessKey ?? rgw.secretAccessKey },
    prefix: 'kb1/',
    tmpDir: tmp,
  });
  before(async () => {
    rgw = await startRgw();
    tmp = mkdtempSync(join(tmpdir(), 's3-blobs-'));
    store = new S3BlobStore(loc());
    await store.ensureBucket();
    await store.ensureBucket(); // idempotent
  });
  after(async () => {
    store?.close();
    await rgw?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('puts a buffer and a stream under their sha256; get, range, has, size, list, delete', async () => {
    const a = randomBytes(300_000);
    const r = await store.put(a);
    assert.deepEqual(r, { sha256: sha(a), size: a.length });
    assert.equal(await store.has(r.sha256), true);
    assert.equal(await store.size(r.sha256), a.length);
    assert.deepEqual(await bytes(await store.get(r.sha256)), a);
    assert.deepEqual(await bytes(await store.get(r.sha256, { start: 1000, end: 1999 })), a.subarray(1000, 2000));

    const b = randomBytes(3_000_000);
    const chunks = Array.from({ length: 30 }, (_, i) => b.subarray(i * 100_000, (i + 1) * 100_000));
    const rb = await store.put(Readable.from(chunks), sha(b));
    assert.equal(rb.sha256, sha(b));
    assert.deepEqual(await bytes(await store.get(rb.sha256)), b);

    const listed = new Map<string, number>();
    for await (const x of store.list()) listed.set(x.sha256, x.size);
    assert.equal(listed.get(r.sha256), a.length);
    assert.equal(listed.get(rb.sha256), b.length);

    await store.delete(r.sha256);
    await store.delete(r.sha256); // gone already: fine
    assert.equal(await store.has(r.sha256), false);
    assert.equal(await store.size(r.sha256), null);
    await assert.rejects(store.get(r.sha256), /not found/);
  });

  it('refuses content that is not the expected sha and stores nothing', async () => {
    const c = randomBytes(1000);
    const wrong = sha(Buffer.from('other'));
    await assert.rejects(store.put(Readable.from([c]), wrong), /expected/);
    assert.equal(await store.has(sha(c)), false);
    assert.equal(await store.has(wrong), false);
  });

  it('RGW checks signatures: a wrong secret and a tampered signature are refused (403)', async () => {
    const bad = new S3BlobStore(loc({ secretAccessKey: 'x'.repeat(40) }));
    try {
      await assert.rejects(bad.put(Buffer.from('forged')), (e: unknown) => e instanceof S3Error && e.status === 403);
    } finally {
      bad.close();
    }
    // a correctly signed request whose signature is then altered by one hex digit
    const client = new S3Client(loc());
    const body = Buffer.from('tampered');
    const res = await client.request({ method: 'PUT', key: `kb1/blobs/${sha(body)}`, body, payloadHash: sha(body), headers: { 'x-test-tamper': '1' } });
    res.resume();
    assert.equal(res.statusCode, 200, 'the untampered request is accepted');
    await store.delete(sha(body));
    const signed = await import('../src/kb/s3/sigv4.js');
    const h = signed.signHeaders(loc().credentials, { method: 'PUT', path: client.path(`kb1/blobs/${sha(body)}`), headers: { host: new URL(rgw.endpoint).host, 'content-length': String(body.length) }, payloadHash: sha(body), region: rgw.region });
    const last = h.authorization.slice(-1);
    const tampered = h.authorization.slice(0, -1) + (last === '0' ? '1' : '0');
    const r2 = await fetch(`${rgw.endpoint}${client.path(`kb1/blobs/${sha(body)}`)}`, { method: 'PUT', body, headers: { ...h, authorization: tampered } });
    assert.equal(r2.status, 403);
    assert.match(await r2.text(), /SignatureDoesNotMatch/);
    assert.equal(await store.has(sha(body)), false);
    client.close();
  });

  it('an uploader killed with -9 in the middle of a PUT leaves no object', async () => {
    const size = 8_000_000;
    // the child signs a PUT of `size` bytes, sends half, reports, and waits to be killed
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `
        const { S3Client } = await import(${JSON.stringify(new URL('../src/kb/s3/client.ts', import.meta.url).pathname)});
        const { PassThrough } = await import('node:stream');
        const loc = JSON.parse(process.env.LOC);
        const c = new S3Client({ ...loc, endpoint: new URL(loc.endpoint) });
        const body = new PassThrough();
        c.request({ method: 'PUT', key: 'kb1/blobs/' + 'a'.repeat(64), headers: { 'content-length': '${size}' }, body, payloadHash: 'UNSIGNED-PAYLOAD' }).catch(() => {});
        body.write(Buffer.alloc(${size / 2}, 1), () => setTimeout(() => process.stdout.write('half\\n'), 500));
        setInterval(() => {}, 1000);
        `,
      ],
      { env: { ...process.env, LOC: JSON.stringify({ ...loc(), endpoint: rgw.endpoint }) }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('half') && resolve());
      child.on('exit', (c) => reject(new Error(`uploader exited early (${c})`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    assert.equal(await store.size('a'.repeat(64)), null);
    for await (const x of store.list()) assert.notEqual(x.sha256, 'a'.repeat(64));
  });

  it('an unreachable object store is ObjectStoreUnavailableError (HTTP 503, retry later)', async () => {
    const down = new S3BlobStore(loc({ endpoint: 'http://127.0.0.1:9' }));
    try {
      await assert.rejects(down.put(Buffer.from('x')), (e: unknown) => e instanceof ObjectStoreUnavailableError && e.statusCode === 503);
      await assert.rejects(down.get('b'.repeat(64)), ObjectStoreUnavailableError);
    } finally {
      down.close();
    }
  });
});
