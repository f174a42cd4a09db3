// The file side of rollouts on the edge: install an offline bundle, re-verify what is
// installed, prune old versions, export a version as a bundle, and sweep the temp leftovers of
// runs killed with -9. Whatever changes installed versions runs inside withRolloutLock.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_CANARY, type CanaryRecord } from './bundle-layout.js';
import { canaryBytes, openBundle, parseCanary, writeBundle } from './bundle.js';
import { UsageError, VerificationError } from '../errors.js';
import type { TaskIndex } from '../format/index-manifest.js';
import { keyForVersion, verifyIndexSignature } from '../format/key-chain.js';
import { adoptOffered, offeredTrust, trustedChain, trustedKeys } from '../store/trusted-keys.js';
import { type DB, kvGet } from '../store/db.js';
import { fsyncDir, writeFileAtomic } from '../durable/atomic-write.js';
import type { EdgeConfig, HomePaths } from '../store/home.js';
import { deleteVersionRow, protectedVersions, versionStates } from './state.js';
import { type VersionRow, getVersion, installVersion, listVersions, modelFile, readVersionIndex, versionDir } from '../store/versions.js';

export { ROLLOUT_LOCK, sweepLeftovers, withRolloutLock } from './lock.js';

export function canaryPath(paths: HomePaths, id: string): string {
  return join(versionDir(paths, id), BUNDLE_CANARY);
}

/** The canary records stored with an installed version (empty when it came without any). */
export function readCanary(paths: HomePaths, id: string, index: TaskIndex): CanaryRecord[] {
  const p = canaryPath(paths, id);
  if (!existsSync(p)) return [];
  return parseCanary(readFileSync(p), index, p);
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/** Installed versions, newest first, with their state, trial progress and task models (`model ls`). */
export function installedVersions(paths: HomePaths, db: DB) {
  return versionStates(db).map((r) => {
    let tasks: { id: string; model_sha256: string }[] = [];
    let problem: string | null = null;
    try {
      tasks = readVersionIndex(paths, db, r.id).tasks.map((t) => ({ id: t.id, model_sha256: t.model.sha256 }));
    } catch (e) {
      problem = (e as Error).message;
    }
    return {
      id: r.id,
      seq: r.seq,
      origin: r.origin,
      state: r.state,
      active: r.isActive,
      previous: r.isPrevious,
      reason: r.reason,
      installed_at: new Date(r.installed_at).toISOString(),
      activated_at: r.activated_at ? new Date(r.activated_at).toISOString() : null,
      trial: r.trialInfo ? { phase: r.trialInfo.phase, n: r.trialInfo.n, of: r.trialInfo.inferences, bad: r.trialInfo.bad, reason: r.trialInfo.reason ?? null } : null,
      tasks,
      ...(problem ? { problem } : {}),
    };
  });
}

export interface InstalledBundle {
  id: string;
  /** true when exactly this version was installed already (nothing changed) */
  already: boolean;
  index: TaskIndex;
  canary: number;
  /** the bundle's canary was not used, and why (unsigned: an older KB) */
  canary_note?: string;
  /** fingerprints of the KB keys this edge adopted from the bundle's key chain */
  keys_adopted: string[];
}

/**
 * Install an offline bundle as a 'staged' version. The bundle is opened and fully verified
 * (signature, schema, every sha256) in a private temp dir first; only then does installVersion
 * place the models and the version directory. A refused bundle leaves nothing behind (exit 5).
 * A bundle of a KB that rotated its signing key carries the key chain (keys.json): checked like
 * the chain sync fetches (store/trusted-keys.ts), and the keys it brings are adopted (one
 * SQLite write) once the whole bundle verified, before the version is placed.
 */
export async function installBundle(paths: HomePaths, db: DB, file: string, config: EdgeConfig): Promise<InstalledBundle> {
  const anchor = config.kb?.public_key;
  const keys = trustedKeys(db, anchor);
  const trust = anchor ? (offered: unknown[], what: string) => offeredTrust(db, anchor, offered, what).epochs : undefined;
  const b = await openBundle(file, { tmpRoot: paths.tmp, publicKeyPem: keys, trust });
  try {
    const id = String(b.index.version);
    const before = getVersion(db, id);
    let adopted: string[] = [];
    if (b.offered && anchor) {
      const offer = offeredTrust(db, anchor, b.offered, `${file}: KB key chain`);
      adoptOffered(db, offer, { bundle: file, for_version: b.index.version });
      adopted = offer.added.map((e) => e.fingerprint);
    }
    installVersion(paths, db, {
      indexBytes: b.indexBytes,
      sig: b.sig,
      origin: 'bundle',
      publicKey: keyForVersion(b.keys, b.index.version)?.key,
      modelPath: (sha) => {
        const p = b.models.get(sha);
        if (!p) throw new VerificationError(`${file}: model ${sha} missing from the bundle`);
        return p;
      },
    });
    // the canary travels with the version (written atomically after its directory exists;
    // re-installing the same bundle writes it again if a crash came in between)
    const cp = canaryPath(paths, id);
    if (b.canary.length && !existsSync(cp)) {
      // its signature first: `model export` passes both on
      if (b.canarySig) writeFileAtomic(`${cp}.sig`, b.canarySig + '\n');
      writeFileAtomic(cp, canaryBytes(b.canary));
    }
    return { id, already: !!before, index: b.index, canary: b.canary.length, ...(b.canaryNote ? { canary_note: b.canaryNote } : {}), keys_adopted: adopted };
  } finally {
    b.dispose();
  }
}

export interface VerifyReport {
  ok: boolean;
  versions: number;
  models: number;
  problems: string[];
  /** harmless leftovers (e.g. a version directory without a row after a crash) */
  notes: string[];
}

/** Re-hash everything installed and check the pointer; problems are one line each. */
export async function verifyInstalled(paths: HomePaths, db: DB, config: EdgeConfig): Promise<VerifyReport> {
  const problems: string[] = [];
  const notes: string[] = [];
  const rows = listVersions(db);
  const ids = new Set(rows.map((r) => r.id));
  const modelSeen = new Map<string, string | null>(); // sha -> problem or null
  // each version with the key of its epoch (after KB key rotations, older versions keep theirs)
  const keys = trustedKeys(db, config.kb?.public_key);
  for (const r of rows) {
    let index: TaskIndex;
    try {
      index = readVersionIndex(paths, db, r.id);
    } catch (e) {
      problems.push(`version ${r.id}: ${(e as Error).message}`);
      continue;
    }
    if (r.origin !== 'local') {
      const sigPath = join(versionDir(paths, r.id), 'index.json.sig');
      if (!existsSync(sigPath)) problems.push(`version ${r.id}: ${sigPath} is missing`);
      else if (!keys.length) notes.push(`version ${r.id}: no KB public key configured; signature not checked`);
      else if (!verifyIndexSignature(keys, readFileSync(join(versionDir(paths, r.id), 'index.json')), readFileSync(sigPath, 'utf8').trim())) {
        problems.push(`version ${r.id}: index.json signature does not verify with the KB key this edge trusts for it`);
      }
    }
    try {
      readCanary(paths, r.id, index);
    } catch (e) {
      problems.push(`version ${r.id}: ${(e as Error).message}`);
    }
    for (const t of index.tasks) {
      const sha = t.model.sha256;
      if (!modelSeen.has(sha)) {
        const f = modelFile(paths, sha);
        let problem: string | null = null;
        if (!existsSync(f)) problem = `${f} is missing`;
        else {
          const got = await sha256File(f);
          if (got !== sha) problem = `${f}: sha256 mismatch (content ${got.slice(0, 12)}…)`;
          else if (statSync(f).size !== t.model.size) problem = `${f}: size differs from the index`;
        }
        modelSeen.set(sha, problem);
      }
      const p = modelSeen.get(sha);
      if (p) problems.push(`version ${r.id} task "${t.id}": ${p}`);
    }
  }
  // the pointer: at most one version active, and it is installed and in an active state
  const active = kvGet(db, 'active_version');
  const activeRows = rows.filter((r) => r.state === 'active' || r.state === 'trial');
  if (active && !ids.has(active)) problems.push(`active version ${active} is not installed`);
  if (activeRows.length > 1) problems.push(`more than one version in state active/trial: ${activeRows.map((r) => r.id).join(', ')}`);
  if (active && activeRows.length === 1 && activeRows[0].id !== active) problems.push(`active pointer ${active} but version ${activeRows[0].id} is in state ${activeRows[0].state}`);
  if (!active && activeRows.length) problems.push(`no active pointer but version ${activeRows[0].id} is in state ${activeRows[0].state}`);
  const prev = kvGet(db, 'previous_version');
  if (prev && !ids.has(prev)) problems.push(`previous version ${prev} is not installed`);
  if (existsSync(paths.kb)) {
    for (const name of readdirSync(paths.kb)) {
      if (!name.startsWith('.') && !ids.has(name)) notes.push(`kb/${name}: directory without an installed version (leftover of an interrupted install)`);
    }
  }
  return { ok: problems.length === 0, versions: rows.length, models: modelSeen.size, problems, notes };
}

export interface PruneResult {
  removed: string[];
  models_removed: string[];
  kept: string[];
}

/**
 * Keep the `keep` newest versions (by KB sequence, then install time) plus the active, trial and
 * previous ones; remove the others' rows, then their kb/<id>/ directories, then the model files
 * no remaining version uses. Rows go first: a crash in between leaves only unreferenced files.
 */
export function pruneVersions(paths: HomePaths, db: DB, keep: number): PruneResult {
  const rows = (db.prepare('SELECT * FROM kb_versions ORDER BY seq DESC, installed_at DESC').all() as VersionRow[]);
  const guard = protectedVersions(db);
  const keepIds = new Set<string>([...guard, ...rows.slice(0, keep).map((r) => r.id)]);
  const doomed = rows.filter((r) => !keepIds.has(r.id));
  const doomedModels = new Set<string>();
  for (const r of doomed) {
    try {
      for (const t of readVersionIndex(paths, db, r.id).tasks) doomedModels.add(t.model.sha256);
    } catch {
      /* unreadable index: its models are found by nobody; nothing to collect */
    }
  }
  for (const r of doomed) deleteVersionRow(db, r.id);
  for (const r of doomed) rmSync(versionDir(paths, r.id), { recursive: true, force: true });
  if (doomed.length) fsyncDir(paths.kb);
  const used = new Set<string>();
  for (const r of listVersions(db)) {
    try {
      for (const t of readVersionIndex(paths, db, r.id).tasks) used.add(t.model.sha256);
    } catch {
      /* a broken version keeps nothing alive; verify reports it */
    }
  }
  const modelsRemoved: string[] = [];
  for (const sha of doomedModels) {
    if (used.has(sha)) continue;
    try {
      unlinkSync(modelFile(paths, sha));
      modelsRemoved.push(sha);
    } catch {
      /* already gone */
    }
  }
  if (modelsRemoved.length) fsyncDir(paths.models);
  return { removed: doomed.map((r) => r.id), models_removed: modelsRemoved, kept: rows.filter((r) => keepIds.has(r.id)).map((r) => r.id) };
}

/**
 * Write an installed version as an offline bundle (its signature, models and canary, and the key
 * chain this edge adopted: an edge behind on rotations can install it from this one).
 */
export async function exportVersion(paths: HomePaths, db: DB, config: EdgeConfig, id: string, out: string): Promise<{ file: string; bytes: number; sha256: string; signed: boolean; canary: number }> {
  if (!getVersion(db, id)) throw new UsageError(`version ${id}: not installed (see "sedna-ll model ls")`);
  const index = readVersionIndex(paths, db, id);
  const dir = versionDir(paths, id);
  const sigPath = join(dir, 'index.json.sig');
  const sig = existsSync(sigPath) ? readFileSync(sigPath, 'utf8').trim() : null;
  const canary = readCanary(paths, id, index);
  const canarySigPath = `${canaryPath(paths, id)}.sig`;
  const canarySig = existsSync(canarySigPath) ? readFileSync(canarySigPath, 'utf8').trim() : null;
  const keyTransitions = sig ? trustedChain(db, config.kb?.public_key).used : [];
  const r = await writeBundle(out, { indexBytes: readFileSync(join(dir, 'index.json')), sig, modelPath: (sha) => modelFile(paths, sha), canary, canarySig, keyTransitions }, { tmpRoot: paths.tmp });
  return { file: out, ...r, signed: !!sig, canary: canary.length };
}
