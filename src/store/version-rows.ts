// The kb_versions rows of an edge and where their files live: what a sync reads before it knows
// whether there is anything to install (the KB answers 304 on most runs). Kept apart from
// versions.ts, which installs and therefore loads the index validator (a 319 KB generated
// module) and the signature code: a sync with nothing to pull no longer loads them.
import { join } from 'node:path';
import type { TaskIndex } from '../format/index-manifest.js';
import type { DB } from './db.js';
import type { HomePaths } from './home.js';

export type VersionOrigin = 'local' | 'kb' | 'bundle';
export type VersionState = 'staged' | 'trial' | 'active' | 'previous' | 'failed' | 'retired';

export interface VersionRow {
  id: string;
  seq: number;
  origin: VersionOrigin;
  state: VersionState;
  reason: string | null;
  index_sha: string;
  installed_at: number;
  activated_at: number | null;
  trial: string | null;
}

/** The version id an index gets on this edge. */
export function versionId(index: Pick<TaskIndex, 'version'>, origin: VersionOrigin): string {
  return origin === 'local' ? `local-${index.version}` : String(index.version);
}

export function modelFile(paths: HomePaths, sha: string): string {
  return join(paths.models, `${sha}.onnx`);
}

export function versionDir(paths: HomePaths, id: string): string {
  return join(paths.kb, id);
}

export function getVersion(db: DB, id: string): VersionRow | null {
  return (db.prepare('SELECT * FROM kb_versions WHERE id = ?').get(id) as VersionRow | undefined) ?? null;
}

/** All installed versions, newest install first. */
export function listVersions(db: DB): VersionRow[] {
  return db.prepare('SELECT * FROM kb_versions ORDER BY installed_at DESC, rowid DESC').all() as VersionRow[];
}

/** Highest KB version number installed in any state (0 if none): sync's `since`. */
export function latestKbSeq(db: DB): number {
  const r = db.prepare(`SELECT MAX(seq) AS s FROM kb_versions WHERE origin <> 'local'`).get() as { s: number | null };
  return r.s ?? 0;
}

/** Next free local version number (local-<n>). */
export function nextLocalSeq(db: DB): number {
  const r = db.prepare(`SELECT MAX(seq) AS s FROM kb_versions WHERE origin = 'local'`).get() as { s: number | null };
  return (r.s ?? 0) + 1;
}
