// Opening a KB store. Two backends:
//   embedded: a data directory (--data / $SEDNA_LL_KB_DATA); DATA/kb.json names the backend
//             (SQLite + files), written last by `kb init`.
//   shared:   --store postgres://... ($SEDNA_LL_KB_STORE): PostgreSQL metadata shared by any
//             number of `kb serve` replicas and a trainer elsewhere; no data directory. Blobs go
//             to --blobs ($SEDNA_LL_KB_BLOBS): a directory every replica mounts, or s3://bucket.
// The private signing key is only where versions are published: --signing-key FILE
// ($SEDNA_LL_KB_SIGNING_KEY); the embedded default is DATA/keys/signing.key.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ReportedError, UsageError } from '../errors.js';
import { chooseBlobs, openS3Blobs, type BlobsChoice } from './blob-config.js';
import type { BlobStore } from './blob-store.js';
import { kbPaths } from './paths.js';
import type { KbStore } from './store.js';

export const KB_FORMAT = 'sedna-ll/kb@1';

/** Contents of DATA/kb.json, written last by `kb init`: its presence marks a complete KB. */
export interface KbConfig {
  format: typeof KB_FORMAT;
  backend: 'sqlite';
  created_at: string;
  /** blobs in an S3-compatible bucket (s3://bucket[/prefix]) instead of DATA/blobs/ */
  blobs?: string;
  s3_endpoint?: string;
}

/** Where a command's KB is: the --data / --store / --blobs / --signing-key flags. */
export interface StoreFlags {
  data?: string;
  store?: string;
  /** s3://bucket[/prefix] (blob-config.ts); with --store also a shared directory */
  blobs?: string;
  s3Endpoint?: string;
  s3PublicEndpoint?: string;
  signingKey?: string;
  /** create the S3 bucket when missing (kb serve, kb init) */
  createBucket?: boolean;
}

export function kbConfigPath(dataDir: string): string {
  return join(kbPaths(dataDir).data, 'kb.json');
}

export function isKb(dataDir: string): boolean {
  return existsSync(kbConfigPath(dataDir));
}

export function readKbConfig(dataDir: string): KbConfig {
  const p = kbConfigPath(dataDir);
  if (!existsSync(p)) throw new UsageError(`${kbPaths(dataDir).data}: not a KB data directory (no kb.json); run "sedna-ll kb init --data DIR" first`);
  let c: KbConfig;
  try {
    c = JSON.parse(readFileSync(p, 'utf8')) as KbConfig;
  } catch (e) {
    throw new ReportedError(`${p}: not valid JSON: ${(e as Error).message}`);
  }
  if (c.format !== KB_FORMAT) throw new ReportedError(`${p}: unknown KB format "${c.format}"`);
  return c;
}

/** The flags with the environment filled in (flags win). */
export function resolveFlags(f: StoreFlags): StoreFlags {
  const env = process.env;
  return {
    ...f,
    data: f.data ?? env.SEDNA_LL_KB_DATA,
    store: f.store ?? env.SEDNA_LL_KB_STORE,
    signingKey: f.signingKey ?? env.SEDNA_LL_KB_SIGNING_KEY,
  };
}

/** the postgres:// URL of --store, or null for the embedded backend; a usage error otherwise */
export function storeUrl(f: StoreFlags): string | null {
  if (!f.store) return null;
  if (/^postgres(ql)?:\/\//.test(f.store)) return f.store;
  throw new UsageError(`--store "${f.store.replace(/\/\/[^@/]*@/, '//***@')}": expected postgres://[user@]host[:port]/database (omit --store for the embedded KB in --data)`);
}

/**
 * The blob store of --blobs: a directory (or file:///dir), or s3://bucket[/prefix] (see
 * src/kb/s3/); without --blobs, DATA/blobs of --data.
 */
export async function openBlobStore(f: StoreFlags): Promise<BlobStore> {
  const choice = chooseBlobs({ url: f.blobs, endpoint: f.s3Endpoint, publicEndpoint: f.s3PublicEndpoint });
  const spec = choice.url ?? (f.data ? kbPaths(f.data).blobs : undefined);
  // commands that never touch a blob (device add, labels) run without --blobs
  if (!spec) return missingBlobStore('--store postgres://... needs --blobs DIR|s3://bucket (or SEDNA_LL_KB_BLOBS) for model files and large payloads');
  if (spec.startsWith('s3://')) return openS3Blobs({ ...choice, url: spec }, { create: f.createBucket });
  const dir = resolve(spec.startsWith('file://') ? new URL(spec).pathname : spec);
  const { FsBlobStore } = await import('./blob-store.js');
  return new FsBlobStore(dir, join(dir, '.tmp'));
}

/** A BlobStore whose every use fails with a usage error saying what to configure. */
function missingBlobStore(msg: string): BlobStore {
  const fail = (): never => {
    throw new UsageError(msg);
  };
  return { put: async () => fail(), get: async () => fail(), has: async () => fail(), size: async () => fail(), delete: async () => fail(), list: () => fail() };
}

/** Open the store the flags name (an initialised data directory, or a PostgreSQL database). */
export async function openStore(flags: StoreFlags): Promise<KbStore> {
  const f = resolveFlags(flags);
  const url = storeUrl(f);
  if (url) {
    const { PgKbStore } = await import('./pg-store.js');
    // connections per process: a replica's concurrent requests beyond this queue for one
    const pool = process.env.SEDNA_LL_KB_PG_POOL;
    const poolSize = pool === undefined ? undefined : Number(pool);
    if (poolSize !== undefined && !(Number.isInteger(poolSize) && poolSize > 0)) throw new UsageError(`SEDNA_LL_KB_PG_POOL "${pool}": expected a positive integer`);
    return PgKbStore.open({ url, blobs: await openBlobStore(f), signingKey: f.signingKey, poolSize });
  }
  if (!f.data) throw new UsageError('no KB: pass --data DIR (embedded) or --store postgres://... (or set SEDNA_LL_KB_DATA / SEDNA_LL_KB_STORE)');
  return openKbStore(f.data, { blobs: { url: f.blobs, endpoint: f.s3Endpoint, publicEndpoint: f.s3PublicEndpoint }, createBucket: f.createBucket, signingKey: f.signingKey });
}

/**
 * Open the store of an initialised KB data directory. blobs: --blobs / --s3-endpoint of the
 * command (see blob-config.ts for the order with the environment and kb.json).
 */
export async function openKbStore(dataDir: string, opts: { blobs?: BlobsChoice; createBucket?: boolean; signingKey?: string } = {}): Promise<KbStore> {
  const c = readKbConfig(dataDir);
  if (c.backend === 'sqlite') {
    const choice = chooseBlobs(opts.blobs ?? {}, { url: c.blobs, endpoint: c.s3_endpoint });
    const paths = kbPaths(dataDir);
    const blobs = choice.url ? await openS3Blobs({ ...choice, url: choice.url }, { tmpDir: paths.tmp, create: opts.createBucket }) : undefined;
    const { SqliteKbStore } = await import('./sqlite-store.js');
    return new SqliteKbStore(paths, { blobs, signingKey: opts.signingKey });
  }
  throw new ReportedError(`${kbConfigPath(dataDir)}: unknown KB backend "${String(c.backend)}"`);
}

/** Run fn with an open store and close it afterwards (CLI commands). */
export async function withKbStore<T>(target: string | StoreFlags, fn: (store: KbStore) => Promise<T>): Promise<T> {
  const store = typeof target === 'string' ? await openKbStore(target) : await openStore(target);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
