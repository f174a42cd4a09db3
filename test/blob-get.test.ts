// The raw blob reader of sync pulls over plain http (sync/blob-get.ts), through the pull's own
// download loop (pull.ts downloadBlob): against a real `kb serve` on loopback (a whole blob, a
// resume with 206, a cut at a random offset leaving the exact prefix, then resumed to the right
// hash) and against a raw TCP server for what a real KB never sends (a wrong Content-Range, a
// body longer than the signed size, malformed status lines and headers, headers past the cap,
// a stalled body or no answer at all: small configured timeouts, no sleeps), and the answers it
// hands back to node:http (no Content-Length, chunked).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/cli.js';
import { writeRandomMlp } from './helpers/models.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { KbClient, SyncHttpError } from '../src/sync/http.js';
import { proxyEnv } from '../src/sync/transport.js';
import { undiciTransport } from '../src/sync/transport-undici.js';
import { startHttpProxy } from './helpers/http-proxy.js';
import { downloadBlob } from '../src/sync/pull.js';
import { blobGet, parseHead, HEAD_MAX } from '../src/sync/blob-get.js';
import { homePaths } from '../src/store/home.js';
import { VerificationError } from '../src/errors.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A TCP server that reads one request head and hands the socket to `answer`. */
async function rawServer(answer: (sock: Socket, request: string) => void): Promise<{ url: string; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const socks = new Set<Socket>();
  const srv: Server = createServer((sock) => {
    socks.add(sock);
    sock.on('close', () => socks.delete(sock)).on('error', () => {});
    let got = '';
    const onData = (c: Buffer) => {
      got += c.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      sock.off('data', onData);
      requests.push(got);
      answer(sock, got);
    };
    sock.on('data', onData);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

const client = (baseUrl: string, o: Partial<Parameters<typeof KbClient.create>[0]> = {}) =>
  KbClient.create({ baseUrl, token: 'tok', retries: 0, backoffBaseMs: 1, backoffCapMs: 1, connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 2000, env: {}, ...o });

function home() {
  const d = tempDir('sedna-ll-blobget-');
  const paths = homePaths(d.dir);
  mkdirSync(paths.tmp, { recursive: true });
  return { ...d, paths };
}

describe('blob reader against a real kb serve', () => {
  let kb: TestKb;
  let blob: Buffer;
  let sha: string;
  const models = tempDir('sedna-ll-models-');
  before(async () => {
    kb = await startTestKb();
    const file = writeRandomMlp(models.dir, 'm', [1024, 1024, 10], 3); // ~4.2 MB: several buffers
    assert.equal(kb.cli(['task', 'add', file, '--task', 'global', '--fallback']).code, 0);
    assert.equal(kb.cli(['publish', '--json']).code, 0);
    blob = readFileSync(file);
    sha = sha256(blob);
  });
  after(async () => {
    await kb?.stop();
    models.cleanup();
  });

  it('downloads a whole blob: placed under its sha256, byte for byte, bytes counted', async () => {
    const h = home();
    const c = await client(kb.url, { token: kb.deviceToken });
    try {
      const got = await downloadBlob(h.paths, c, sha, blob.length);
      assert.equal(got, blob.length);
      assert.equal(c.traffic.down, blob.length);
      assert.ok(readFileSync(join(h.paths.models, `${sha}.onnx`)).equals(blob));
      assert.equal(existsSync(join(h.paths.tmp, `${sha}.part`)), false);
    } finally {
      await c.close();
      h.cleanup();
    }
  });

  it('HTTP_PROXY set, NO_PROXY naming the KB host: the raw reader, nothing through the proxy; NO_PROXY read as the proxied carrier (undici) reads it', async () => {
    const proxy = await startHttpProxy();
    const seen = () => proxy.tunnels.length + proxy.forwarded.length;
    const port = new URL(kb.url).port;
    try {
      // bypassed or not, as undici's EnvHttpProxyAgent decides for each (the carrier of every
      // proxied sync request): asked through it, the proxy counting what it carried
      const cases = ['', '127.0.0.1', `127.0.0.1:${port}`, '127.0.0.1:1', '*', '.0.0.1', '*.0.0.1', 'example.com, LOCALHOST 127.0.0.1', 'example.com', '127.0.0.12'];
      for (const noProxy of cases) {
        const env = { HTTP_PROXY: proxy.url, NO_PROXY: noProxy };
        const t = await undiciTransport({ connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 2000 }, proxyEnv(env));
        let before = seen();
        try {
          await (await t.send(new URL(`${kb.url}/healthz`), { method: 'GET', headers: {} })).discard();
        } finally {
          await t.destroy();
        }
        const bypassed = seen() === before;
        before = seen();
        const c = await client(kb.url, { token: kb.deviceToken, env });
        try {
          const r = await c.openBlob({ path: `/v1/blobs/${sha}` });
          assert.equal(r.statusCode, 200);
          await r.discard();
          assert.equal('sinkInto' in r, bypassed, `NO_PROXY="${noProxy}": ${bypassed ? 'bypassed, yet the blob did not come through the raw reader' : 'proxied, yet the raw reader ran'}`);
          assert.equal(seen() === before, bypassed, `NO_PROXY="${noProxy}": the blob request ${bypassed ? 'went through' : 'bypassed'} the proxy`);
        } finally {
          await c.close();
        }
      }
    } finally {
      await proxy.close();
    }
  });

  it('a cut at a random offset keeps the exact prefix; the next attempt resumes it with a 206 to the right hash', async () => {
    const cutAt = randomInt(1, blob.length - 1);
    // the KB's own answer head and the body up to cutAt, then the connection dies
    const relay = await rawServer((sock, req) => {
      fetch(kb.url + req.split(' ')[1], { headers: { authorization: `Bearer ${kb.deviceToken}` } }).then(async (r) => {
        const body = Buffer.from(await r.arrayBuffer());
        sock.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\netag: ${r.headers.get('etag')}\r\n\r\n`);
        sock.end(body.subarray(0, cutAt), () => sock.destroy());
      });
    });
    const h = home();
    const cut = await client(relay.url, { token: kb.deviceToken });
    const c = await client(kb.url, { token: kb.deviceToken });
    try {
      await assert.rejects(downloadBlob(h.paths, cut, sha, blob.length), (e: SyncHttpError) => e.kind === 'unreachable' && /aborted|ECONNRESET/.test(e.message));
      const part = readFileSync(join(h.paths.tmp, `${sha}.part`));
      assert.equal(part.length, cutAt, `the .part file holds what arrived (cut at ${cutAt})`);
      assert.ok(part.equals(blob.subarray(0, cutAt)), 'and exactly those bytes');
      const got = await downloadBlob(h.paths, c, sha, blob.length);
      assert.equal(got, blob.length - cutAt, 'only the rest was fetched (206)');
      assert.equal(sha256(readFileSync(join(h.paths.models, `${sha}.onnx`))), sha);
    } finally {
      await cut.close();
      await c.close();
      await relay.close();
      h.cleanup();
    }
  });

  it('reads the body straight into reused buffers: blobGet + sinkInto, resumed from an offset', async () => {
    const from = 1_234_567;
    const url = new URL(`${kb.url}/v1/blobs/${sha}`);
    const r = await blobGet(url, { authorization: `Bearer ${kb.deviceToken}`, range: `bytes=${from}-`, 'if-range': `"${sha}"` }, { connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 2000 });
    assert.ok(r);
    assert.equal(r.statusCode, 206);
    assert.equal(r.headers['content-range'], `bytes ${from}-${blob.length - 1}/${blob.length}`);
    const h = home();
    const p = join(h.dir, 'b.part');
    writeFileSync(p, blob.subarray(0, from));
    const fd = openSync(p, 'r+');
    const hash = createHash('sha256').update(blob.subarray(0, from));
    try {
      const end = await r.sinkInto(fd, from, hash, { size: blob.length, tooLarge: () => new Error('too large') });
      assert.equal(end, blob.length);
    } finally {
      closeSync(fd);
    }
    assert.equal(hash.digest('hex'), sha);
    assert.ok(readFileSync(p).equals(blob));
    h.cleanup();
  });
});

describe('blob reader against hostile or unusual answers', () => {
  const blob = randomBytes(3 * 1024 * 1024 + 17);
  const sha = sha256(blob);
  const size = blob.length;

  /** download with the pull's loop from a raw server answering `answer` */
  async function attempt(answer: (sock: Socket, req: string) => void, o: Partial<Parameters<typeof KbClient.create>[0]> = {}, prefix?: Buffer) {
    const srv = await rawServer(answer);
    const h = home();
    if (prefix) writeFileSync(join(h.paths.tmp, `${sha}.part`), prefix);
    const c = await client(srv.url, o);
    try {
      const r = await downloadBlob(h.paths, c, sha, size).then(
        (n) => ({ ok: true as const, n }),
        (e: Error) => ({ ok: false as const, e }),
      );
      const partFile = join(h.paths.tmp, `${sha}.part`);
      return { ...r, requests: srv.requests, part: existsSync(partFile) ? readFileSync(partFile) : null, placed: existsSync(join(h.paths.models, `${sha}.onnx`)) };
    } finally {
      await c.close();
      await srv.close();
      h.cleanup();
    }
  }

  it('a 206 whose Content-Range is not the range asked for: refused, the partial file dropped', async () => {
    const r = await attempt((s) => s.end(`HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-${size - 1}/${size}\r\ncontent-length: ${size}\r\n\r\n`), {}, blob.subarray(0, 1000));
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.e instanceof SyncHttpError && r.e.kind === 'protocol' && /a range we did not ask for/.test(r.e.message), String(!r.ok && r.e.message));
    assert.match(r.requests[0], /\r\nrange: bytes=1000-\r\n/);
    // the close is ours, after the body (a server closing first raced its last bytes through the bench's slow-link proxy)
    assert.doesNotMatch(r.requests[0], /\r\nconnection:/i);
    assert.equal(r.part, null);
  });

  it('a body longer than the signed size: refused as tampering, nothing placed', async () => {
    const r = await attempt((s) => s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${size + 10}\r\n\r\n`), blob, Buffer.alloc(10)])));
    assert.ok(!r.ok && r.e instanceof VerificationError && /more than the \d+ bytes the signed index lists/.test(r.e.message), String(!r.ok && r.e.message));
    assert.equal(r.placed, false);
    assert.equal(r.part, null);
  });

  it('bytes past Content-Length are not part of the body', async () => {
    const r = await attempt((s) => s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`), blob, Buffer.from('garbage')])));
    assert.ok(r.ok, String(!r.ok && r.e.message));
    assert.equal(r.placed, true);
  });

  it('malformed status lines and headers, and headers past the cap: one protocol error each, nothing placed', async () => {
    const heads = [
      'HTTP/1.1 2000 OK\r\ncontent-length: 1\r\n\r\nx',
      'ICY 200 OK\r\ncontent-length: 1\r\n\r\nx',
      'HTTP/1.1 200 OK\r\ncontent length: 1\r\n\r\nx',
      'HTTP/1.1 200 OK\r\ncontent-length: 1\r\n folded: on\r\n\r\nx',
      'HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nx',
      'HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nx',
      `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(HEAD_MAX)}\r\ncontent-length: 1\r\n\r\nx`,
    ];
    for (const head of heads) {
      const r = await attempt((s) => s.end(head));
      assert.ok(!r.ok && r.e instanceof SyncHttpError && r.e.kind === 'protocol' && /malformed HTTP answer/.test(r.e.message), `${JSON.stringify(head.slice(0, 60))}: ${!r.ok ? r.e.message : 'accepted'}`);
      assert.equal(r.placed, false);
    }
  });

  it('parseHead: lower-case names, repeated headers joined, equal repeated Content-Lengths taken', () => {
    const h = parseHead('HTTP/1.1 206 Partial\r\nContent-Length: 5, 5\r\nX-A: 1\r\nx-a: 2\r\nETag:  "e" ', 'GET /x');
    assert.equal(h.status, 206);
    assert.equal(h.length, 5);
    assert.equal(h.headers['x-a'], '1, 2');
    assert.equal(h.headers.etag, '"e"');
    assert.equal(parseHead('HTTP/1.0 404', 'GET /x').status, 404);
  });

  it('an interim 103 answer before the real one is skipped', async () => {
    const r = await attempt((s) => s.end(Buffer.concat([Buffer.from(`HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`), blob])));
    assert.ok(r.ok, String(!r.ok && r.e.message));
    assert.equal(r.placed, true);
  });

  it('a body that stalls: the idle timeout (from sinkInto on) ends the attempt, the prefix received is kept for the resume', async () => {
    const sent = 100_000;
    const r = await attempt((s) => s.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`), blob.subarray(0, sent)])), { bodyTimeoutMs: 150 });
    assert.ok(!r.ok && r.e instanceof SyncHttpError && r.e.kind === 'unreachable' && /connection timed out/.test(r.e.message), String(!r.ok && r.e.message));
    assert.ok(r.part?.equals(blob.subarray(0, sent)), `the .part file holds the ${sent} bytes received`);
  });

  it('a body taken only after longer than the idle timeout (the caller busy first): whole, the timer starts at sinkInto', async () => {
    // the whole answer is sent at once; the part past the first read waits in the socket while
    // the caller has not asked for it (as a pull hashing a large .part prefix once did)
    const bodyTimeoutMs = 300;
    const srv = await rawServer((s) => s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`), blob])));
    const h = home();
    const p = join(h.dir, 'b.part');
    const fd = openSync(p, 'w');
    try {
      const r = await blobGet(new URL(`${srv.url}/x`), {}, { connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs });
      assert.ok(r);
      // the gate: opened by a real timer set after the answer, longer than the idle timeout (a
      // timer running from the answer on expires first, whatever the machine's speed)
      const gate = new Promise<void>((open) => setTimeout(open, 2 * bodyTimeoutMs));
      await gate;
      const hash = createHash('sha256');
      const end = await r.sinkInto(fd, 0, hash, { size, tooLarge: () => new Error('too large') });
      assert.equal(end, size);
      assert.equal(hash.digest('hex'), sha);
    } finally {
      closeSync(fd);
      await srv.close();
    }
    assert.ok(readFileSync(p).equals(blob), 'the file holds the whole body');
    h.cleanup();
  });

  it('no answer at all: the headers timeout ends the attempt', async () => {
    const r = await attempt(() => {}, { headersTimeoutMs: 150 });
    assert.ok(!r.ok && r.e instanceof SyncHttpError && /no answer headers within 150 ms/.test(r.e.message), String(!r.ok && r.e.message));
  });

  it('a connection closed before the headers: a retryable hang-up, then the retry completes', async () => {
    let n = 0;
    const r = await attempt((s) => (n++ === 0 ? s.destroy() : s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`), blob]))), { retries: 1 });
    assert.ok(r.ok, String(!r.ok && r.e.message));
    assert.equal(r.requests.length, 2);
  });

  it('answers without a Content-Length (chunked, or until close) go to node:http, for the rest of the run', async () => {
    const chunked = (s: Socket) => {
      s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
      for (let o = 0; o < size; o += 1 << 20) {
        const c = blob.subarray(o, o + (1 << 20));
        s.write(`${c.length.toString(16)}\r\n`);
        s.write(c);
        s.write('\r\n');
      }
      s.end('0\r\n\r\n');
    };
    const r = await attempt(chunked);
    assert.ok(r.ok, String(!r.ok && r.e.message));
    assert.equal(r.placed, true);
    assert.equal(r.requests.length, 2, 'asked once by the raw reader, once through node:http');
    const untilClose = await attempt((s) => s.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n'), blob])));
    assert.ok(untilClose.ok, String(!untilClose.ok && untilClose.e.message));
    assert.equal(untilClose.placed, true);
  });

  it('a write that fails (a read-only fd here) ends the body with its error, nothing left running', async () => {
    const srv = await rawServer((s) => s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`), blob])));
    const h = home();
    const p = join(h.dir, 'ro');
    writeFileSync(p, '');
    const fd = openSync(p, 'r');
    try {
      const r = await blobGet(new URL(`${srv.url}/x`), {}, { connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 2000 });
      assert.ok(r);
      await assert.rejects(r.sinkInto(fd, 0, createHash('sha256'), { size, tooLarge: () => new Error('too large') }), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
    } finally {
      closeSync(fd);
      await srv.close();
      h.cleanup();
    }
  });

  it('a write that fails while the socket waits for more (a link slower than the disk): the body ends at once with the write error, no unhandled rejection', async () => {
    // one buffer's worth of the body, then nothing: the first write (to a read-only fd) fails
    // while no read is due. It used to be a rejection no one listened to (a crash of the CLI,
    // `EBADF: bad file descriptor, write` in a test run) and the body waited for the idle timeout
    const srv = await rawServer((s) => s.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`), blob.subarray(0, 1 << 20)])));
    const h = home();
    const p = join(h.dir, 'ro');
    writeFileSync(p, '');
    const fd = openSync(p, 'r');
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      // the idle timeout is only the fallback of a reader that missed the failure
      const r = await blobGet(new URL(`${srv.url}/x`), {}, { connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 20_000 });
      assert.ok(r);
      await assert.rejects(r.sinkInto(fd, 0, createHash('sha256'), { size, tooLarge: () => new Error('too large') }), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      closeSync(fd);
      await srv.close();
      h.cleanup();
    }
  });

  it('a 24 MiB body served faster than the disk takes it: whole and in order', async () => {
    const big = randomBytes(24 * 1024 * 1024 + 5);
    const srv = await rawServer((s) => s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${big.length}\r\n\r\n`), big])));
    const h = home();
    const c = await client(srv.url);
    try {
      const bigSha = sha256(big);
      assert.equal(await downloadBlob(h.paths, c, bigSha, big.length), big.length);
      const placed = join(h.paths.models, `${bigSha}.onnx`);
      assert.equal(statSync(placed).size, big.length);
      assert.ok(readFileSync(placed).equals(big));
    } finally {
      await c.close();
      await srv.close();
      h.cleanup();
    }
  });
});

it('an answer whose body is never taken does not keep the process alive', async () => {
  const srv = await rawServer((s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n'));
  try {
    // a child process that opens the answer and then drops it (a caller failing before sinkInto)
    const code = `import { blobGet } from ${JSON.stringify(new URL('../src/sync/blob-get.ts', import.meta.url).pathname)};
      const r = await blobGet(new URL(${JSON.stringify(srv.url + '/x')}), {}, { connectTimeoutMs: 5000, headersTimeoutMs: 5000, bodyTimeoutMs: 600000 });
      console.log(r.statusCode);`;
    // not spawnSync: the server answering it runs in this process
    const { execFile } = await import('node:child_process');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { timeout: 60_000 }, (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout))),
    );
    assert.equal(out.trim(), '200');
  } finally {
    await srv.close();
  }
});
