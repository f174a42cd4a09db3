// `kb init`: a new KB data directory with its store, ed25519 signing keys and admin token.
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, ConflictError } from '../errors.js';
import { generateSigningKeys } from '../format/signature.js';
import { writeFileAtomic } from '../durable/atomic-write.js';
import { KB_FORMAT, isKb, kbConfigPath, openStore, resolveFlags, type KbConfig, type StoreFlags } from './open.js';
import { openS3Blobs, type BlobsChoice } from './blob-config.js';
import { kbPaths } from './paths.js';
import { hashToken, newToken } from './tokens.js';

export interface InitResult {
  data: string;
  /** printed once; the KB keeps only its hash */
  admin_token: string;
  public_key: string;
}

/**
 * `kb init --store postgres://... --signing-key FILE`: create the schema of a shared KB (also
 * done by every open: idempotent), a new key pair (the private key goes to FILE, mode 0600, for
 * the publishing machine; the database keeps only the public key) and the admin token.
 */
export async function initSharedKb(flags: StoreFlags): Promise<InitResult> {
  const f = resolveFlags(flags);
  if (!f.signingKey) throw new UsageError('kb init --store: pass --signing-key FILE: where the new private signing key is written (keep it on the machine that publishes)');
  if (existsSync(f.signingKey)) throw new UsageError(`--signing-key ${f.signingKey}: exists; not overwriting a key (move it away, or it is already this KB's key)`);
  const store = await openStore({ ...f, signingKey: undefined });
  try {
    if (await store.getMeta('admin_token_hash')) throw new ConflictError(`${store.describe}: already a KB (drop and create the database to start over)`);
    const keys = generateSigningKeys();
    writeFileAtomic(f.signingKey, keys.privateKey, 0o600);
    const admin_token = newToken('adm');
    await store.tx(async (t) => {
      await t.setMeta('signing_public_key', keys.publicKey);
      await t.setMeta('admin_token_hash', hashToken(admin_token));
      await t.setMeta('created_at', new Date().toISOString());
      await t.upsertChannel('stable', {});
      await t.logEvent('kb_init', {});
    });
    return { data: store.describe, admin_token, public_key: keys.publicKey };
  } finally {
    await store.close();
  }
}

export async function initKb(dataDir: string, opts: { force?: boolean; blobs?: BlobsChoice } = {}): Promise<InitResult> {
  const p = kbPaths(dataDir);
  // a file (or another non-directory) there: mkdir's bare "EEXIST: file already exists, mkdir" named no cause
  if (existsSync(p.data) && !statSync(p.data).isDirectory()) throw new UsageError(`${p.data}: exists and is not a directory (kb init --data takes a directory)`);
  if (isKb(dataDir) && !opts.force) {
    throw new ConflictError(`${p.data}: a KB already exists here (kb.json); pass --force to wipe it and start over`);
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
