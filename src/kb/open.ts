// Opening a KB data directory: DATA/kb.json names the backend. The embedded SQLite + files
// backend is the only one today; a PostgreSQL + S3 backend plugs in here by its name.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, EXIT } from '../format/exit-codes.js';
import { chooseBlobs, openS3Blobs, type BlobsChoice } from './blob-config.js';
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

export function kbConfigPath(dataDir: string): string {
  return join(kbPaths(dataDir).data, 'kb.json');
}

export function isKb(dataDir: string): boolean {
  return existsSync(kbConfigPath(dataDir));
}

export function readKbConfig(dataDir: string): KbConfig {
  const p = kbConfigPath(dataDir);
  if (!existsSync(p)) throw new CliError(`${kbPaths(dataDir).data}: not a KB data directory (no kb.json); run "sedna-ll kb init --data DIR" first`, EXIT.FAILURE);
  let c: KbConfig;
  try {
    c = JSON.parse(readFileSync(p, 'utf8')) as KbConfig;
  } catch (e) {
    throw new CliError(`${p}: not valid JSON: ${(e as Error).message}`, EXIT.FAILURE);
  }
  if (c.format !== KB_FORMAT) throw new CliError(`${p}: unknown KB format "${c.format}"`, EXIT.FAILURE);
  return c;
}

/**
 * Open the store of an initialised KB data directory. blobs: --blobs / --s3-endpoint of the
 * command (see blob-config.ts for the order with the environment and kb.json).
 */
export async function openKbStore(dataDir: string, opts: { blobs?: BlobsChoice; createBucket?: boolean } = {}): Promise<KbStore> {
  const c = readKbConfig(dataDir);
  if (c.backend === 'sqlite') {
    const choice = chooseBlobs(opts.blobs ?? {}, { url: c.blobs, endpoint: c.s3_endpoint });
    const paths = kbPaths(dataDir);
    const blobs = choice.url ? await openS3Blobs({ ...choice, url: choice.url }, { tmpDir: paths.tmp, create: opts.createBucket }) : undefined;
    const { SqliteKbStore } = await import('./sqlite-store.js');
    return new SqliteKbStore(paths, { blobs });
  }
  throw new CliError(`${kbConfigPath(dataDir)}: unknown KB backend "${String(c.backend)}"`, EXIT.FAILURE);
}

/** Run fn with an open store and close it afterwards (CLI commands). */
export async function withKbStore<T>(dataDir: string, fn: (store: KbStore) => Promise<T>): Promise<T> {
  const store = await openKbStore(dataDir);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
