// sync transport: HTTPS to a KB with a private CA (--ca / config kb.ca_file; refused without
// it, exit 1 not 3), HTTP_PROXY (CONNECT tunnel) and NO_PROXY honoured, usage errors (exit 2),
// --jitter, --help.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sedna, tempDir } from './helpers/cli.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { edgeIds, editConfig, makeEdge, sednaAsync, seedOutbox, suiteKb } from './helpers/sync-edge.js';

/** A private CA and a server certificate for 127.0.0.1 signed by it (openssl CLI). */
function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const f = (n: string) => join(dir, n);
  const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=sedna-ll test CA']);
  ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  ssl(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return { ca: f('ca.pem'), cert: f('srv.pem'), key: f('srv.key') };
}

describe('sync over HTTPS with a private CA', () => {
  let kb: TestKb;
  const certs = tempDir('sedna-ll-certs-');
  let ca = '';
  before(async () => {
    const c = makeCerts(certs.dir);
    ca = c.ca;
    kb = await startTestKb({ serveArgs: ['--tls-cert', c.cert, '--tls-key', c.key] });
  });
  after(async () => {
    await kb?.stop();
    certs.cleanup();
  });

  it('is refused without the CA (exit 1, not "offline"), works with --ca and with config kb.ca_file', async () => {
    assert.match(kb.url, /^https:/);
    const e = makeEdge(kb);
    try {
      seedOutbox(e.home, 50, 512, { seed: 31 });
      const bad = sedna(['sync', '--push-only'], { home: e.home });
      assert.equal(bad.code, 1, bad.stderr);
      assert.match(bad.stderr, /certificate|CERT/i);
      assert.equal(edgeIds(e.home).pending.length, 50);

      const ok = sedna(['sync', '--push-only', '--ca', ca, '--json'], { home: e.home });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(JSON.parse(ok.stdout).acked, 50);

      seedOutbox(e.home, 10, 512, { seed: 32 });
      editConfig(e.home, (c) => {
        c.kb!.ca_file = ca;
      });
      const ok2 = sedna(['sync', '--json'], { home: e.home });
      assert.equal(ok2.code, 0, ok2.stderr);
      assert.equal(JSON.parse(ok2.stdout).acked, 10);

      const missing = sedna(['sync', '--ca', join(certs.dir, 'nope.pem')], { home: e.home });
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /--ca .*nope\.pem/);
    } finally {
      e.cleanup();
    }
  });
});

describe('sync through an HTTP proxy', () => {
  const kb = suiteKb();

  it('HTTP_PROXY tunnels every request through the proxy (CONNECT); NO_PROXY bypasses it', async () => {
    const tunnels: string[] = [];
    const sockets = new Set<Socket>();
    const proxy = createHttpServer((_req, res) => {
      res.statusCode = 405;
      res.end();
    });
    proxy.on('connect', (req, client: Socket, head: Buffer) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const up = netConnect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) up.write(head);
        up.pipe(client);
        client.pipe(up);
      });
      sockets.add(up).add(client);
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    const e = makeEdge(kb());
    try {
      seedOutbox(e.home, 40, 512, { seed: 33 });
      const r = await sednaAsync(['sync', '--json'], { home: e.home, env: { HTTP_PROXY: proxyUrl, NO_PROXY: '' } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).acked, 40);
      assert.ok(tunnels.length >= 1, 'requests went through the proxy');
      assert.ok(tunnels.every((t) => t === `127.0.0.1:${kb().port}`), tunnels.join(','));

      const before = tunnels.length;
      seedOutbox(e.home, 5, 512, { seed: 34 });
      const r2 = await sednaAsync(['sync', '--json'], { home: e.home, env: { HTTP_PROXY: proxyUrl, NO_PROXY: '127.0.0.1' } });
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(JSON.parse(r2.stdout).acked, 5);
      assert.equal(tunnels.length, before, 'NO_PROXY bypassed the proxy');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => proxy.close(r));
      e.cleanup();
    }
  });

  it('usage errors exit 2; --jitter still syncs; --help states the options and exit codes', () => {
    const e = makeEdge(kb());
    try {
      assert.equal(sedna(['sync', '--push-only', '--pull-only'], { home: e.home }).code, 2);
      assert.equal(sedna(['sync', '--max-time', '0'], { home: e.home }).code, 2);
      assert.equal(sedna(['sync', '--batch-size', 'many'], { home: e.home }).code, 2);
      const j = sedna(['sync', '--jitter', '0.3', '--json'], { home: e.home });
      assert.equal(j.code, 0, j.stderr);
      const h = sedna(['sync', '--help']);
      assert.equal(h.code, 0);
      for (const o of ['--push-only', '--pull-only', '--batch-size', '--batch-bytes', '--max-time', '--jitter', '--ca', '--json', 'HTTPS_PROXY', 'NO_PROXY']) assert.ok(h.stdout.includes(o), o);
      assert.match(h.stdout, /6 +another sync/);
      const none = tempDir();
      try {
        const r = sedna(['sync'], { home: join(none.dir, 'nohome') });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /not an edge home/);
      } finally {
        none.cleanup();
      }
    } finally {
      e.cleanup();
    }
  });
});
