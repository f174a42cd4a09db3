// sync transport: HTTPS to a KB with a private CA (--ca / config kb.ca_file; refused without
// it, exit 1 not 3; an unreadable CA file exit 2), HTTP_PROXY (CONNECT tunnel, model downloads included) and NO_PROXY
// honoured, X-Request-Id logged by the KB, usage errors (exit 2), --jitter, --help.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sedna, tempDir } from './helpers/cli.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { startHttpProxy } from './helpers/http-proxy.js';
import { writeRandomMlp } from './helpers/models.js';
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

      // through an HTTPS_PROXY: a CONNECT tunnel, TLS to the KB inside it with the same CA
      const proxy = await startHttpProxy();
      try {
        seedOutbox(e.home, 7, 512, { seed: 37 });
        const viaProxy = await sednaAsync(['sync', '--json'], { home: e.home, env: { HTTPS_PROXY: proxy.url, NO_PROXY: '' } });
        assert.equal(viaProxy.code, 0, viaProxy.stderr);
        assert.equal(JSON.parse(viaProxy.stdout).acked, 7);
        assert.ok(proxy.tunnels.length >= 1 && proxy.tunnels.every((t) => t === `127.0.0.1:${kb.port}`), proxy.tunnels.join(','));
      } finally {
        await proxy.close();
      }

      // a CA file that cannot be read: a usage error (2), one line naming it and why; nothing sent
      seedOutbox(e.home, 3, 512, { seed: 38 });
      const nope = join(certs.dir, 'nope.pem');
      const missing = sedna(['sync', '--ca', nope], { home: e.home });
      assert.equal(missing.code, 2, missing.stderr);
      assert.equal(missing.stderr, `sedna-ll: --ca ${nope}: cannot read: ENOENT\n`);
      editConfig(e.home, (c) => {
        c.kb!.ca_file = nope;
      });
      const missingCfg = sedna(['sync', '--json'], { home: e.home });
      assert.equal(missingCfg.code, 2, missingCfg.stderr);
      assert.match(missingCfg.stderr, /^sedna-ll: \S*config\.json: kb\.ca_file \S*nope\.pem: cannot read: ENOENT\n$/);
      assert.equal(edgeIds(e.home).pending.length, 3);
    } finally {
      e.cleanup();
    }
  });
});

describe('sync through an HTTP proxy', () => {
  const kb = suiteKb();
  const models = tempDir('sedna-ll-models-');
  after(() => models.cleanup());
  const publish = (dims: number[], seed: number) => {
    const file = writeRandomMlp(models.dir, `m${seed}`, dims, seed);
    for (const a of [['task', 'add', file, '--task', 'global', '--fallback'], ['publish', '--json']]) {
      const r = kb().cli(a);
      assert.equal(r.code, 0, r.stderr);
    }
    return statSync(file).size;
  };

  it('HTTP_PROXY carries every request, model blobs too, through the proxy (CONNECT); NO_PROXY bypasses it; the KB logs each request id', async () => {
    const proxy = await startHttpProxy();
    const e = makeEdge(kb());
    try {
      seedOutbox(e.home, 40, 512, { seed: 33 });
      const size = publish([256, 1024, 10], 35); // ~1 MB: the blob download goes through the proxy too
      const r = await sednaAsync(['sync', '--json'], { home: e.home, env: { HTTP_PROXY: proxy.url, NO_PROXY: '' } });
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout) as { acked: number; pulled_version: number | null; model_bytes_down: number; request_id: string };
      assert.equal(s.acked, 40);
      assert.ok(s.pulled_version !== null && s.model_bytes_down === size, r.stdout);
      assert.ok(proxy.tunnels.length >= 1, 'requests went through the proxy');
      assert.ok(proxy.tunnels.every((t) => t === `127.0.0.1:${kb().port}`), proxy.tunnels.join(','));
      assert.ok(proxy.down() > size, `the model's ${size} bytes came through the proxy (${proxy.down()} relayed)`);
      // every request carried <request_id>-<n>, and the KB logged it as req_id: the edge's record
      // finds the run in the KB's log
      assert.match(s.request_id, /^[0-9a-f]{16}$/);
      const logged = [...kb().stderr().matchAll(new RegExp(`"req_id":"${s.request_id}-(\\d+)"`, 'g'))].map((m) => Number(m[1]));
      assert.ok(logged.length >= 4, `KB log lines of this run: ${logged.length}`); // push, labels, index, blob, report
      assert.deepEqual([...new Set(logged)].sort((x, y) => x - y), Array.from({ length: new Set(logged).size }, (_, i) => i + 1));

      const before = proxy.tunnels.length;
      const relayed = proxy.down();
      seedOutbox(e.home, 5, 512, { seed: 34 });
      publish([256, 1024, 10], 36);
      const r2 = await sednaAsync(['sync', '--json'], { home: e.home, env: { HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } });
      assert.equal(r2.code, 0, r2.stderr);
      const s2 = JSON.parse(r2.stdout) as { acked: number; pulled_version: number | null };
      assert.equal(s2.acked, 5);
      assert.ok(s2.pulled_version !== null && s2.pulled_version > s.pulled_version!, r2.stdout);
      assert.equal(proxy.tunnels.length, before, 'NO_PROXY bypassed the proxy');
      assert.equal(proxy.down(), relayed, 'no byte through the proxy');
    } finally {
      await proxy.close();
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
