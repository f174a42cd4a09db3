// Installed KB versions on the edge: the files under kb/<id>/ and models/, their rows in
// kb_versions, and the `active` pointer (kv active_version / previous_version).
//
// Version ids: "<n>" for a version signed by the KB (n = index.version, origin kb or bundle),
// "local-<n>" for one made on this edge by `task add` (origin local). The namespaces never collide.
//
// Life cycle: installVersion -> 'staged'; activateVersion -> 'active' (the old active becomes
// 'previous', the old previous 'retired'). The rollout engineer adds 'trial' / 'failed' and
// rollback on top of these two calls.
//
// Crash safety: model files are content-addressed and written temp+fsync+rename before the row;
// the version directory is built under kb/.tmp-* and renamed into place inside the transaction
// that inserts its row, so a row never points at a half-written directory.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskIndex } from '../format/index-manifest.js';
import { parseIndex } from '../format/validate-index.js';
import { verifyBytes } from '../format/signature.js';
import { keyForVersion } from '../format/key-chain.js';
import { trustedKeys } from './trusted-keys.js';
import { UsageError, VerificationError } from '../errors.js';
import { type DB, kvGet, logEvent } from './db.js';
import { fsyncDir, writeFileAtomic } from '../durable/atomic-write.js';
import { type HomePaths, loadConfig } from './home.js';
import { type VersionOrigin, getVersion, modelFile, versionDir, versionId } from './version-rows.js';

export { type VersionOrigin, type VersionRow, type VersionState, getVersion, latestKbSeq, listVersions, modelFile, nextLocalSeq, versionDir, versionId } from './version-rows.js';

export interface InstallOptions {
  /** the exact bytes of index.json (for KB versions: exactly as signed) */
  indexBytes: Buffer;
  /** base64 ed25519 signature of indexBytes; required for origin kb/bundle, null for local */
  sig: string | null;
  origin: VersionOrigin;
  /** path of a file holding the model with this sha256 (verified here before it is copied) */
  modelPath: (sha256: string) => string;
  /**
   * KB public key (PEM) to verify sig with. Defaults to config.json's kb.public_key: a KB or
   * bundle version is never installed unverified.
   */
  publicKey?: string;
  /**
   * sha256s of models the caller itself has just verified (hashed while streaming, size
   * checked) and placed at models/<sha>.onnx, e.g. sync's pull: trusted as they are instead of
   * being read and hashed a second time (~100 ms for a 50 MB model). Other models, and every
   * model of callers that pass nothing (bundles, task add), are verified here as before.
   */
  verifiedModels?: ReadonlySet<string>;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function configuredKey(paths: HomePaths): string | undefined {
  try {
    return loadConfig(paths.home).kb?.public_key || undefined;
  } catch {
    return undefined;
  }
}

function fileSize(path: string): number | null {
  try {
    return statSync(path).size;
  } catch {
    return null;
  }
}

/**
 * Place every model of the index under models/<sha>.onnx, verifying each source's sha256 and
 * size first. A model already present is kept when its bytes still hash to its name, or, for a
 * sha256 in `verified`, when its size matches (the caller hashed those bytes itself).
 */
export function placeModels(paths: HomePaths, index: TaskIndex, modelPath: (sha: string) => string, verified?: ReadonlySet<string>): number {
  mkdirSync(paths.models, { recursive: true });
  let placed = 0;
  const seen = new Set<string>();
  for (const t of index.tasks) {
    const { sha256: sha, size } = t.model;
    if (seen.has(sha)) continue;
    seen.add(sha);
    const dest = modelFile(paths, sha);
    if (verified?.has(sha) && fileSize(dest) === size) continue;
    if (existsSync(dest) && sha256(readFileSync(dest)) === sha) continue;
    const src = modelPath(sha);
    let bytes: Buffer;
    try {
      bytes = readFileSync(src);
    } catch (e) {
      throw new VerificationError(`task "${t.id}": model ${sha.slice(0, 12)}: cannot read ${src}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const got = sha256(bytes);
    if (got !== sha) throw new VerificationError(`task "${t.id}": model ${src}: sha256 ${got.slice(0, 12)}… does not match the index (${sha.slice(0, 12)}…)`);
    if (bytes.length !== size) throw new VerificationError(`task "${t.id}": model ${src}: size ${bytes.length} does not match the index (${size})`);
    writeFileAtomic(dest, bytes, { syncDir: false }); // one dir fsync for all below
    placed++;
  }
  if (placed) fsyncDir(paths.models);
  return placed;
}

/**
 * Install a version as 'staged': verify (schema, signature for KB versions, model hashes), place
 * models, write kb/<id>/index.json (+ .sig), insert its kb_versions row. Returns the id.
 * Installing the same index bytes again is a no-op returning the same id; different bytes under
 * an existing id are refused (exit 5).
 */
export function installVersion(paths: HomePaths, db: DB, opts: InstallOptions): string {
  const index = parseIndex(opts.indexBytes);
  const wantOrigin = opts.origin === 'local' ? 'local' : 'kb';
  if (index.origin !== wantOrigin) {
    throw new VerificationError(`index.json: origin "${index.origin}" cannot be installed as a ${opts.origin} version`);
  }
  if (opts.origin !== 'local') {
    if (!opts.sig) throw new VerificationError(`index.json version ${index.version}: no signature`);
    // the key this edge trusts for this version (trusted-keys.ts: after a KB key rotation, the
    // key of the epoch the version belongs to)
    const key = opts.publicKey ?? keyForVersion(trustedKeys(db, configuredKey(paths)), index.version)?.key;
    if (!key) throw new VerificationError(`no KB public key configured; run "sedna-ll init --kb-key FILE" first`);
    if (!verifyBytes(opts.indexBytes, opts.sig, key)) {
      throw new VerificationError(`index.json version ${index.version}: signature does not verify with the KB public key`);
    }
  }
  const id = versionId(index, opts.origin);
  const indexSha = sha256(opts.indexBytes);

  const existing = getVersion(db, id);
  if (existing) {
    if (existing.index_sha === indexSha) return id;
    throw new VerificationError(`version ${id} is already installed with a different index.json`);
  }

  placeModels(paths, index, opts.modelPath, opts.verifiedModels);

  // build the directory aside, then move it into place in the same transaction as its row
  mkdirSync(paths.kb, { recursive: true });
  const tmpDir = join(paths.kb, `.tmp-${id}-${process.pid}-${Date.now()}`);
  mkdirSync(tmpDir, { recursive: true });
  writeFileAtomic(join(tmpDir, 'index.json'), opts.indexBytes, { syncDir: false });
  if (opts.sig) writeFileAtomic(join(tmpDir, 'index.json.sig'), opts.sig.trim() + '\n', { syncDir: false });
  fsyncDir(tmpDir);
  const dir = versionDir(paths, id);
  try {
    db.transaction(() => {
      const again = getVersion(db, id);
      if (again) {
        if (again.index_sha === indexSha) return; // a concurrent install of the same bytes won
        throw new VerificationError(`version ${id} is already installed with a different index.json`);
      }
      db.prepare(
        `INSERT INTO kb_versions (id, seq, origin, state, index_sha, installed_at) VALUES (?, ?, ?, 'staged', ?, ?)`,
      ).run(id, index.version, opts.origin, indexSha, Date.now());
      // no row owned this directory: it is a leftover of a crash between rename and commit
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
      renameSync(tmpDir, dir);
      fsyncDir(paths.kb);
      logEvent(db, 'version_installed', { id, origin: opts.origin, seq: index.version, tasks: index.tasks.map((t) => t.id) });
    }).immediate();
  } finally {
    if (existsSync(tmpDir)) rmSync(tmpDir, { recursive: true, force: true });
  }
  return id;
}

/**
 * Make a version the active one, in ONE transaction: the old previous -> 'retired', the old
 * active -> 'previous', id -> 'active'; kv active_version / previous_version; an events row.
 * Activating the active version is a no-op. A 'failed' version is refused unless opts.force.
 */
export function activateVersion(db: DB, id: string, opts: { reason?: string; force?: boolean } = {}): { id: string; previous: string | null } {
  return db.transaction(() => {
    const row = getVersion(db, id);
    if (!row) throw new UsageError(`version ${id}: not installed`);
    const current = kvGet(db, 'active_version');
    if (current === id && row.state === 'active') return { id, previous: kvGet(db, 'previous_version') };
    if (row.state === 'failed' && !opts.force) throw new VerificationError(`version ${id} failed verification${row.reason ? ` (${row.reason})` : ''}; refusing to activate it`);
    const now = Date.now();
    db.prepare(`UPDATE kb_versions SET state = 'retired' WHERE state = 'previous' AND id <> ?`).run(id);
    db.prepare(`UPDATE kb_versions SET state = 'previous' WHERE state IN ('active', 'trial') AND id <> ?`).run(id);
    db.prepare(`UPDATE kb_versions SET state = 'active', activated_at = ?, reason = ? WHERE id = ?`).run(now, opts.reason ?? null, id);
    const set = db.prepare('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
    set.run('active_version', id);
    const previous = current && current !== id ? current : kvGet(db, 'previous_version');
    if (previous && previous !== id) set.run('previous_version', previous);
    else db.prepare(`DELETE FROM kv WHERE key = 'previous_version'`).run();
    logEvent(db, 'version_activated', { id, previous: previous && previous !== id ? previous : null, reason: opts.reason ?? null });
    return { id, previous: previous && previous !== id ? previous : null };
  }).immediate();
}

/** Read an installed version's index (hash-checked against its row; no schema validation: it was validated on install). */
export function readVersionIndex(paths: HomePaths, db: DB, id: string): TaskIndex {
  const row = getVersion(db, id);
  if (!row) throw new Error(`version ${id}: not installed`);
  const p = join(versionDir(paths, id), 'index.json');
  let bytes: Buffer;
  try {
    bytes = readFileSync(p);
  } catch (e) {
    throw new Error(`${p}: cannot read the index of version ${id}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (sha256(bytes) !== row.index_sha) throw new VerificationError(`${p}: index.json of version ${id} was modified after install (sha256 mismatch)`);
  return JSON.parse(bytes.toString('utf8')) as TaskIndex;
}

/** The active version and its index, or null when nothing is active yet. */
export function activeVersion(paths: HomePaths, db: DB): { id: string; index: TaskIndex } | null {
  const id = kvGet(db, 'active_version');
  if (!id) return null;
  return { id, index: readVersionIndex(paths, db, id) };
}

