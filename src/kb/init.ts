// `kb init`: a new KB data directory with its store, ed25519 signing keys and admin token.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, EXIT } from '../format/exit-codes.js';
import { generateSigningKeys } from '../format/signature.js';
import { writeFileAtomic } from '../durable/atomic-write.js';
import { KB_FORMAT, isKb, kbConfigPath, type KbConfig } from './open.js';
import { openS3Blobs, type BlobsChoice } from './blob-config.js';
import { kbPaths, type KbPaths } from './paths.js';
import { hashToken, newToken } from './tokens.js';

export interface InitResult {
  data: string;
  /** printed once; the KB keeps only its hash */
  admin_token: string;
  public_key: string;
}

export async function initKb(dataDir: string, opts: { force?: boolean; blobs?: BlobsChoice } = {}): Promise<InitResult> {
  const p = kbPaths(dataDir);
  if (isKb(dataDir) && !opts.force) {
    throw new CliError(`${p.data}: a KB already exists here (kb.json); pass --force to wipe it and start over`, EXIT.FAILURE);
  }
  if (opts.force) {
    for (const f of ['kb.json', 'kb.db', 'kb.db-wal', 'kb.db-shm']) rmSync(join(p.data, f), { force: true });
    for (const d of [p.blobs, p.versions, p.keys, p.tmp]) rmSync(d, { recursive: true, force: true });
  }
  // an S3 bucket named: check the credentials and create the bucket before anything is written
  if (opts.blobs?.url) (await openS3Blobs({ ...opts.blobs, url: opts.blobs.url }, { create: 'strict' })).close();
  mkdirSync(p.data, { recursive: true, mode: 0o700 });
  mkdirSync(p.keys, { recursive: true, mode: 0o700 });
  const keys = generateSigningKeys();
  writeFileAtomic(p.privateKey, keys.privateKey, 0o600);
  writeFileAtomic(p.publicKey, keys.publicKey, 0o644);

  const admin_token = newToken('adm');
  const { SqliteKbStore } = await import('./sqlite-store.js');
  const store = new SqliteKbStore(p);
  try {
    await store.setMeta('admin_token_hash', hashToken(admin_token));
    await store.setMeta('created_at', new Date().toISOString());
    await store.upsertChannel('stable', {});
    await store.logEvent('kb_init', {});
  } finally {
    await store.close();
  }
  // written last: its presence marks a complete KB
  const cfg: KbConfig = { format: KB_FORMAT, backend: 'sqlite', created_at: new Date().toISOString() };
  if (opts.blobs?.url) {
    cfg.blobs = opts.blobs.url;
    if (opts.blobs.endpoint) cfg.s3_endpoint = opts.blobs.endpoint;
  }
  writeFileAtomic(kbConfigPath(dataDir), JSON.stringify(cfg, null, 2) + '\n');
  return { data: p.data, admin_token, public_key: keys.publicKey };
}

export function readPublicKey(p: KbPaths): string {
  if (!existsSync(p.publicKey)) throw new CliError(`${p.publicKey}: KB public key missing`, EXIT.FAILURE);
  return readFileSync(p.publicKey, 'utf8');
}

export function readPrivateKey(p: KbPaths): string {
  if (!existsSync(p.privateKey)) throw new CliError(`${p.privateKey}: KB signing key missing`, EXIT.FAILURE);
  return readFileSync(p.privateKey, 'utf8');
}
