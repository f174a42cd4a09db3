// The KB client's retry rules against a real node:http server on loopback: 5xx and resets are
// retried, 429 waits for Retry-After, 4xx are not retried, 401 is an auth failure, retries end
// in 'unreachable', and the deadline (--max-time) stops waiting. Every rule is checked over both
// carriers of sync/transport.ts: direct (node:http) and through a real HTTP proxy (HTTP_PROXY:
// undici's proxy agent, a CONNECT tunnel), where the proxy must have carried the requests.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { KbClient, SyncHttpError, retryAfterMs } from '../src/sync/http.js';
import { startHttpProxy, type HttpProxy } from './helpers/http-proxy.js';

for (const via of ['direct', 'proxy'] as const)
describe(`KbClient (${via})`, () => {
  let server: Server;
  let proxy: HttpProxy | null = null;
  let url = '';
  let script: ((n: number) => { status: number; headers?: Record<string, string>; reset?: boolean }) | null = null;
  let hits = 0;
  const auths: string[] = [];
  const requestIds: string[] = [];
  // a 3 MB body served in 64 KiB writes (a model blob)
  const blob = Buffer.alloc(3 << 20, 0);
  for (let i = 0; i < blob.length; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
  before(async () => {
    server = createServer((req, res) => {
      auths.push(String(req.headers.authorization));
      requestIds.push(String(req.headers['x-request-id']));
      if (req.url === '/blob') {
        res.writeHead(200, { 'content-length': String(blob.length) });
        for (let i = 0; i < blob.length; i += 65536) res.write(blob.subarray(i, i + 65536));
        return res.end();
      }
      const step = script ? script(hits++) : { status: 200 };
      req.resume();
      req.on('end', () => {
        if (step.reset) return req.socket.destroy();
        res.writeHead(step.status, { 'content-type': 'application/json', ...step.headers });
        res.end(JSON.stringify({ ok: step.status < 400, error: step.status >= 400 ? `status ${step.status}` : undefined }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    if (via === 'proxy') proxy = await startHttpProxy();
  });
  after(async () => {
    await proxy?.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const env = () => (proxy ? { HTTP_PROXY: proxy.url } : {});
  const client = (o: Partial<Parameters<typeof KbClient.create>[0]> = {}) => KbClient.create({ baseUrl: url, token: 'tok-123', backoffBaseMs: 20, backoffCapMs: 100, env: env(), ...o });
  /** the proxy carried requests since `before` tunnels (or, direct, no proxy was involved) */
  const carried = (before: number) => {
    if (proxy) assert.ok(proxy.tunnels.length > before && proxy.tunnels.every((t) => t === new URL(url).host), `through the proxy: ${proxy.tunnels.join(',')}`);
  };

  it('retries 5xx and connection resets, sends the bearer token and an X-Request-Id per request, counts bytes', async () => {
    hits = 0;
    requestIds.length = 0;
    const tunnels = proxy?.tunnels.length ?? 0;
    script = (n) => (n === 0 ? { status: 503 } : n === 1 ? { status: 200, reset: true } : { status: 200 });
    const c = await client();
    try {
      const r = await c.request({ method: 'POST', path: '/x', body: Buffer.from('hello') });
      assert.equal(r.status, 200);
      assert.equal(hits, 3);
      assert.equal(auths.at(-1), 'Bearer tok-123');
      // counted when the KB answered (503 and 200), not for the attempt the connection reset cut
      assert.equal(c.traffic.up, 10, 'the body counted for the two answered attempts');
      // one id per attempt, all under the client's prefix (what the sync record reports)
      assert.match(c.requestId, /^[0-9a-f]{16}$/);
      assert.deepEqual(requestIds, [1, 2, 3].map((n) => `${c.requestId}-${n}`));
      carried(tunnels);
    } finally {
      await c.close();
    }
  });

  it('streams a large body whole (openStream), and an oversized JSON answer is refused', async () => {
    const tunnels = proxy?.tunnels.length ?? 0;
    const c = await client();
    try {
      const res = await c.openStream({ path: '/blob' });
      assert.equal(res.statusCode, 200);
      const h = createHash('sha256');
      let n = 0;
      for await (const chunk of res.body) {
        h.update(chunk);
        n += chunk.length;
      }
      assert.equal(n, blob.length);
      assert.equal(h.digest('hex'), createHash('sha256').update(blob).digest('hex'));
      await assert.rejects(c.request({ method: 'GET', path: '/blob', maxBodyBytes: 1 << 20 }), (e: unknown) => e instanceof SyncHttpError && e.kind === 'protocol' && /larger than/.test(e.message));
      // the connection is usable after the refused answer
      hits = 0;
      script = () => ({ status: 200 });
      assert.equal((await c.request({ method: 'GET', path: '/x' })).status, 200);
      carried(tunnels);
    } finally {
      await c.close();
    }
  });

  it('429 waits for Retry-After', async () => {
    hits = 0;
    script = (n) => (n === 0 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 });
    const c = await client();
    try {
      const t0 = Date.now();
      await c.request({ method: 'GET', path: '/x' });
      assert.ok(Date.now() - t0 >= 950, `waited ${Date.now() - t0} ms`);
      assert.equal(retryAfterMs('2'), 2000);
      assert.ok(Math.abs(retryAfterMs(new Date(Date.now() + 3000).toUTCString())! - 3000) < 1100);
    } finally {
      await c.close();
    }
  });

  it('4xx is not retried; 401 is an auth failure; exhausted retries are "unreachable"', async () => {
    const c = await client({ retries: 2 });
    try {
      hits = 0;
      script = () => ({ status: 400 });
      await assert.rejects(c.request({ method: 'GET', path: '/x' }), (e: unknown) => e instanceof SyncHttpError && e.kind === 'protocol' && e.status === 400);
      assert.equal(hits, 1);
      hits = 0;
      script = () => ({ status: 401 });
      await assert.rejects(c.request({ method: 'GET', path: '/x' }), (e: unknown) => e instanceof SyncHttpError && e.kind === 'auth' && /token/.test(e.message));
      assert.equal(hits, 1);
      hits = 0;
      script = () => ({ status: 500 });
      await assert.rejects(c.request({ method: 'GET', path: '/x' }), (e: unknown) => e instanceof SyncHttpError && e.kind === 'unreachable' && /3 attempts/.test(e.message));
      assert.equal(hits, 3);
    } finally {
      await c.close();
    }
  });

  it('the deadline ends retries and waits early', async () => {
    hits = 0;
    script = () => ({ status: 503, headers: { 'retry-after': '30' } });
    const c = await client({ deadline: Date.now() + 1500, retries: 10 });
    try {
      const t0 = Date.now();
      await assert.rejects(c.request({ method: 'GET', path: '/x' }), (e: unknown) => e instanceof SyncHttpError && e.kind === 'deadline');
      assert.ok(Date.now() - t0 < 1500, 'did not sleep past the deadline');
    } finally {
      await c.close();
    }
  });
});
