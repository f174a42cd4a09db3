// Shared by the push benches (bench/sync.ts, bench/push-floor.ts): the frames/JSON sink both
// push to, running processes with wall time, the seeded template outbox and edge homes holding
// a copy of it, and sedna-ll runs (with CPU profiles when BENCH_CPU_PROF_DIR is set).
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { closeSync, copyFileSync, fsyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createGunzip, gunzipSync } from 'node:zlib';
import { readFrames } from '../../src/format/sample-frames.js';
import { BIN, ROOT } from '../../test/helpers/cli.js';
import { makeEdge, seedOutbox } from '../../test/helpers/sync-edge.js';
import { openEdgeDb } from '../../src/store/db.js';
import { homePaths } from '../../src/store/home.js';
import { PAYLOAD_SQL } from '../../src/store/outbox.js';
import { generateSigningKeys } from '../../src/format/signature.js';

/** payload bytes of every seeded sample (float32 features, 3 decimals) */
export const SAMPLE_BYTES = 3072;

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // fields[11], [12]: utime, stime (fields 14 and 15 of proc(5), counted after the comm)
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const mb = (n: number) => +(n / 1e6).toFixed(1);
export const log = (s: string) => process.stderr.write(s + '\n');

/** Run a process to completion; wall ms, exit code, output. */
export function runProc(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ ms: number; code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ ms: performance.now() - t0, code: code ?? -1, stdout, stderr }));
  });
}

// BENCH_CPU_PROF_DIR=<dir>: every sedna-ll run writes a V8 CPU profile there (node --cpu-prof;
// NODE_OPTIONS may not carry it), to see where a push or pull spends its time
export const PROF_ARGS = process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
/** a sedna-ll run: this checkout's bin/sedna-ll, or `bin` (another build, for an A/B) */
export const sedna = (home: string, args: string[], wrap: string[] = [], bin = BIN) =>
  wrap.length ? runProc(wrap[0], [...wrap.slice(1), process.execPath, ...PROF_ARGS, bin, ...args], { SEDNA_LL_HOME: home }) : runProc(process.execPath, [...PROF_ARGS, bin, ...args], { SEDNA_LL_HOME: home });

/** The sink: /raw discards, /v1/samples gunzips and acks every id, /v1/index 304. */
export async function startSink(): Promise<{ url: string; server: Server; received: () => number }> {
  let received = 0;
  const body = (req: IncomingMessage) =>
    new Promise<Buffer[]>((res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => {
        received += c.length;
        parts.push(c);
      });
      req.on('end', () => res(parts));
    });
  const server = createServer(async (req, res) => {
    if (req.url === '/raw') {
      req.on('data', (c: Buffer) => (received += c.length));
      req.on('end', () => res.end('ok'));
      return;
    }
    if (req.url === '/v1/protocol') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ revision: 2, push_framings: ['json', 'frames1'], push_encodings: ['identity', 'gzip'] }));
    }
    if (req.url === '/v1/sample-frames') {
      // the minimum to ack a frames push: read the records as they arrive, collect the ids
      let src: AsyncIterable<Buffer>;
      if (req.headers['content-encoding'] === 'gzip') {
        req.on('data', (c: Buffer) => (received += c.length));
        src = req.pipe(createGunzip());
      } else
        src = (async function* () {
          for await (const c of req as AsyncIterable<Buffer>) {
            received += c.length;
            yield c;
          }
        })();
      const ids: string[] = [];
      for await (const recs of readFrames(src, { maxRecordBytes: 64 << 20 })) for (const r of recs) ids.push(r.id);
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ stored: ids }));
    }
    if (req.url === '/v1/samples') {
      const raw = Buffer.concat(await body(req));
      const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('latin1');
      const ids: string[] = [];
      for (const m of text.matchAll(/\{"id":"([A-Za-z0-9-]+)"/g)) ids.push(m[1]);
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ stored: ids }));
    }
    await body(req);
    if (req.url?.startsWith('/v1/index')) {
      res.statusCode = 304;
      return res.end();
    }
    res.setHeader('content-type', 'application/json');
    res.end(req.url === '/v1/labels' ? '{"stored":[]}' : '{"ok":true}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server, received: () => received };
}

/** A fresh edge home for `kb` holding a copy of the template outbox. */
export function edgeWithOutbox(kb: { url: string; deviceToken: string; publicKeyPem: string }, templateDb: string, url?: string) {
  const e = makeEdge(kb, { url, maxOutboxMb: 8192 });
  copyFileSync(templateDb, homePaths(e.home).db);
  // flushed before the timed run: otherwise the kernel writes the copy back (150 MB for the
  // push part) while the push is being timed, and curl's payload file has no such cost
  syncFile(homePaths(e.home).db);
  rmSync(homePaths(e.home).db + '-wal', { force: true });
  rmSync(homePaths(e.home).db + '-shm', { force: true });
  return e;
}

export function syncFile(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Build a template edge.db with n samples; returns its path and the payload file for curl. */
export function buildTemplate(dir: string, n: number, payloadFile?: string): { db: string; payloadBytes: number } {
  const dummy = { url: 'http://127.0.0.1:9', deviceToken: 'x'.repeat(20), publicKeyPem: '' };
  // init needs a valid ed25519 key; the template never talks to a KB
  const { publicKey } = generateSigningKeys();
  const e = makeEdge({ ...dummy, publicKeyPem: publicKey }, { maxOutboxMb: 8192 });
  const t0 = performance.now();
  seedOutbox(e.home, n, SAMPLE_BYTES, { seed: 42, chunk: 2000 });
  log(`  seeded ${n} samples in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const db = openEdgeDb(homePaths(e.home).db);
  let payloadBytes = 0;
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    if (payloadFile) {
      const fd = openSync(payloadFile, 'w');
      // PAYLOAD_SQL: inline payloads live in sample_payloads since edge schema migration 4
      for (const r of db.prepare(`SELECT ${PAYLOAD_SQL} AS payload FROM samples ORDER BY created_at, id`).iterate() as Iterable<{ payload: Buffer }>) {
        writeSync(fd, r.payload);
        payloadBytes += r.payload.length;
      }
      fsyncSync(fd); // written back now, not during curl's timed run
      closeSync(fd);
    } else payloadBytes = (db.prepare('SELECT SUM(payload_bytes) AS s FROM samples').get() as { s: number }).s;
  } finally {
    db.close();
  }
  const out = join(dir, `template-${n}.db`);
  copyFileSync(homePaths(e.home).db, out);
  e.cleanup();
  return { db: out, payloadBytes };
}
