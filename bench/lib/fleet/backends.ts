// The KB backends a fleet run can use: a store (the embedded SQLite file, or PostgreSQL) times
// a blob store (files of the data directory, or an S3 bucket on a throw-away Ceph RADOS gateway),
// behind one shape: which arguments and environment `kb serve` and the KB CLI take, how to open
// the store in-process (bulk device enrolment through the same addDevice the CLI calls), the
// database's size on disk, and which engine processes to charge CPU to.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ROOT, sedna, tempDir } from '../../../test/helpers/cli.js';
import type { KbStore } from '../../../src/kb/store.js';
import type { CpuTracker } from './proc-cpu.js';
import { postgresAvailable, startPostgres, type Postgres } from './postgres.js';

export type StoreKind = 'sqlite' | 'postgres';
export type BlobsKind = 'files' | 's3';

export interface KbBackend {
  /** sqlite | sqlite+s3 | postgres | postgres+s3 */
  name: string;
  /** where state lives, for every KB CLI command and kb serve */
  args: string[];
  /** kb serve only (e.g. presigned URLs on) */
  serveArgs: string[];
  env: NodeJS.ProcessEnv;
  adminToken: string;
  publicKeyPem: string;
  /** a directory for logs and the model file */
  workDir: string;
  openStore(): Promise<KbStore>;
  /** bytes of the sample database (tables + indexes as committed, no WAL copies) */
  databaseBytes(): number;
  /** charge the engines' processes (postgres, radosgw, ceph) to named CPU groups */
  trackEngines(t: CpuTracker): void;
  /** can devices get presigned blob URLs (GET /v1/blobs/:sha/url)? */
  presigned: boolean;
  stop(): Promise<void>;
}

function must(r: { code: number; stdout: string; stderr: string }, what: string): string {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** `kb <args>` with the backend's arguments; stdout, throws on failure. */
export function kbCli(b: Pick<KbBackend, 'args' | 'env'>, args: string[], what = `kb ${args[0]}`): string {
  return must(sedna(['kb', ...args, ...b.args], { env: b.env, timeoutMs: 600_000 }), what);
}

/** What this build of `kb serve` supports: a PostgreSQL store, S3 blobs with presigned URLs. */
export function kbSupports(): { postgres: boolean; s3: boolean } {
  const help = sedna(['kb', 'serve', '--help']).stdout;
  return { postgres: /--store\b/.test(help), s3: /--presign-expiry\b/.test(help) };
}

const RGW_START = join(ROOT, 'scripts', 'ceph', 'start-rgw.sh');
const RGW_STOP = join(ROOT, 'scripts', 'ceph', 'stop-rgw.sh');

/** Why a Ceph RGW cannot be started here, or null. */
export function rgwMissing(): string | null {
  if (!existsSync(RGW_START)) return 'scripts/ceph/start-rgw.sh is not in this tree';
  for (const p of ['radosgw', 'ceph-mon', 'ceph-osd']) if (spawnSync('sh', ['-c', `command -v ${p}`]).status !== 0) return `${p} not found (apt-get install -y ceph-mon ceph-osd radosgw)`;
  return null;
}

export function postgresMissingHere(): string | null {
  return postgresAvailable() ? null : 'PostgreSQL not installed (apt-get install -y postgresql)';
}

interface Rgw {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  dir: string;
}

async function startRgw(): Promise<Rgw> {
  return new Promise((resolve, reject) => {
    // the cluster goes with this process however it ends (--watch-pid)
    const p = spawn('bash', [RGW_START, '--watch-pid', String(process.pid), '--memstore-mb', '1024'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`start-rgw.sh failed (exit ${code}): ${err.trim().slice(-1500)}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!) as Rgw);
      } catch (e) {
        reject(new Error(`start-rgw.sh printed no JSON line: ${(e as Error).message}: ${out}`));
      }
    });
  });
}

const pidOf = (file: string) => (existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : null);

export async function startBackend(store: StoreKind, blobs: BlobsKind, log: (s: string) => void): Promise<KbBackend> {
  const t = tempDir(`sedna-fleet-${store}-`);
  const data = join(t.dir, 'kb');
  let pg: Postgres | null = null;
  let rgw: Rgw | null = null;
  const cleanup = async () => {
    if (rgw) spawnSync('bash', [RGW_STOP, rgw.dir]);
    pg?.stop();
    t.cleanup();
  };
  try {
    const env: NodeJS.ProcessEnv = {};
    const serveArgs: string[] = [];
    if (blobs === 's3') {
      const t0 = performance.now();
      rgw = await startRgw();
      log(`  Ceph RGW (mon + memstore osd + radosgw) at ${rgw.endpoint} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      Object.assign(env, {
        SEDNA_LL_KB_BLOBS: 's3://sedna-fleet',
        SEDNA_LL_KB_S3_ENDPOINT: rgw.endpoint,
        AWS_ACCESS_KEY_ID: rgw.accessKeyId,
        AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey,
        AWS_REGION: rgw.region,
      });
      serveArgs.push('--presign-expiry', '3600');
    }
    let args = ['--data', data];
    let initArgs = args;
    if (blobs === 'files' && store === 'postgres') env.SEDNA_LL_KB_BLOBS = join(t.dir, 'blobs'); // a directory every replica mounts
    if (store === 'postgres') {
      const t0 = performance.now();
      pg = await startPostgres();
      log(`  PostgreSQL 15 (throw-away cluster, fsync on) at 127.0.0.1:${pg.port} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      // no data directory: replicas hold the URL; the private signing key only where versions
      // are published (the CLI here), never on the replicas
      args = ['--store', pg.url];
      env.SEDNA_LL_KB_SIGNING_KEY = join(t.dir, 'signing.key');
      initArgs = [...args, '--signing-key', env.SEDNA_LL_KB_SIGNING_KEY];
    }
    const init = JSON.parse(must(sedna(['kb', 'init', ...initArgs, '--json'], { env }), 'kb init')) as { admin_token: string; public_key: string };
    const p = pg;
    const r = rgw;
    return {
      name: store + (blobs === 's3' ? '+s3' : ''),
      args,
      serveArgs,
      env,
      adminToken: init.admin_token,
      publicKeyPem: init.public_key,
      workDir: t.dir,
      async openStore() {
        // openStore (flags: data | store, blobs, signing key) where the PostgreSQL backend is
        // built in; openKbStore (a data directory) before it
        const m = (await import('../../../src/kb/open.js')) as unknown as {
          openStore?: (f: { data?: string; store?: string }) => Promise<KbStore>;
          openKbStore: (d: string) => Promise<KbStore>;
        };
        // the CLI's environment (blobs, S3 settings) for the in-process store too
        const saved = { ...process.env };
        Object.assign(process.env, env);
        try {
          if (p) {
            if (!m.openStore) throw new Error('this build has no PostgreSQL store (src/kb/open.ts openStore)');
            return await m.openStore({ store: p.url });
          }
          return await m.openKbStore(data);
        } finally {
          for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k];
          Object.assign(process.env, saved);
        }
      },
      databaseBytes() {
        if (p) {
          p.query('CHECKPOINT');
          return p.databaseBytes();
        }
        // the database's pages as committed (WAL included), without the WAL's extra copies
        const db = new Database(join(data, 'kb.db'), { readonly: true, fileMustExist: true });
        try {
          const pages = (db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number);
          return pages * (db.pragma('page_size', { simple: true }) as number);
        } finally {
          db.close();
        }
      },
      trackEngines(tr) {
        if (p) tr.add('postgres (all processes)', p.pid, { tree: true });
        if (r) {
          const rgwPid = pidOf(join(r.dir, 'run', 'client.rgw.a.pid'));
          if (rgwPid) tr.add('radosgw', rgwPid);
          for (const f of ['mon.a.pid', 'osd.0.pid']) {
            const pid = pidOf(join(r.dir, 'run', f));
            if (pid) tr.add('ceph mon+osd', pid);
          }
        }
      },
      presigned: blobs === 's3',
      stop: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
