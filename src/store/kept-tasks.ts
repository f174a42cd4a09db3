// Local tasks (added with `task add`) across KB pulls. A pulled KB version replaces the active
// index as a whole, so a task the KB does not know stops being served. That must never happen
// silently: sync warns for every such task, and a task added with `task add --keep` (or every
// local task, config rollout.keep_local_tasks) is carried over: the pulled version is installed
// as signed, then a local version "KB version + kept tasks" is built on top of it and activated
// in its place (the same way `task add` makes local versions).
import type { TaskEntry, TaskIndex } from '../format/index-manifest.js';
import { type DB, kvGet, kvSet } from './db.js';
import type { EdgeConfig, HomePaths } from './home.js';
import { indexWithTask } from './local-tasks.js';
import { activeVersion, getVersion, installVersion, modelFile, nextLocalSeq, readVersionIndex } from './versions.js';

const KEPT_KEY = 'kept_local_tasks';

/** Task ids `task add --keep` asked to keep across pulls. */
export function keptTaskIds(db: DB): string[] {
  try {
    const v = JSON.parse(kvGet(db, KEPT_KEY) ?? '[]');
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

export function setKept(db: DB, task: string, keep: boolean): void {
  const ids = new Set(keptTaskIds(db));
  if (keep) ids.add(task);
  else ids.delete(task);
  kvSet(db, KEPT_KEY, JSON.stringify([...ids].sort()));
}

/**
 * Tasks served now that the edge added itself: in the active index but not in the KB version it
 * is based on (`baseKbSeq`, the newest KB version installed before this pull; 0: none).
 */
export function localTasks(paths: HomePaths, db: DB, baseKbSeq: number): TaskEntry[] {
  try {
    const active = activeVersion(paths, db);
    if (!active) return [];
    const baseId = String(baseKbSeq);
    const base = baseKbSeq > 0 && getVersion(db, baseId) ? readVersionIndex(paths, db, baseId) : null;
    const kbIds = new Set(base?.tasks.map((t) => t.id) ?? []);
    return active.index.tasks.filter((t) => !kbIds.has(t.id));
  } catch {
    return []; // unreadable active version: `model verify` reports it; the pull goes on
  }
}

export interface KeptResult {
  /** the version to activate: the pulled one, or local-<n> = pulled + kept tasks */
  activate: string;
  kept: string[];
  /** one line per local task the pulled version stops serving */
  warnings: string[];
}

/**
 * Decide what to activate after installing pulled KB version `pulled` (id `pulledId`): carry
 * over the local tasks to keep, warn about the others. `local` is localTasks() from before the
 * install.
 */
export function carryLocalTasks(paths: HomePaths, db: DB, config: EdgeConfig, pulled: TaskIndex, pulledId: string, local: TaskEntry[]): KeptResult {
  const served = new Set(pulled.tasks.map((t) => t.id));
  const lost = local.filter((t) => !served.has(t.id));
  if (!lost.length) return { activate: pulledId, kept: [], warnings: [] };
  const keepIds = new Set(keptTaskIds(db));
  const keep = lost.filter((t) => config.rollout.keep_local_tasks || keepIds.has(t.id));
  const warnings = lost
    .filter((t) => !keep.includes(t))
    .map((t) => `KB version ${pulled.version} does not serve local task "${t.id}": its samples now go to the KB's tasks (keep it: "sedna-ll task add MODEL --task ${t.id} --keep", or config rollout.keep_local_tasks true)`);
  if (!keep.length) return { activate: pulledId, kept: [], warnings };
  let next: TaskIndex = pulled;
  const fallback = activeVersion(paths, db)?.index.allocation.fallback;
  const kept: string[] = [];
  for (const t of keep) {
    try {
      next = indexWithTask(next, t, fallback === t.id);
      kept.push(t.id);
    } catch (e) {
      // e.g. its attribute keys differ from the KB version's: it cannot route samples there
      warnings.push(`KB version ${pulled.version} does not serve local task "${t.id}" and it cannot be kept: ${(e as Error).message}`);
    }
  }
  if (!kept.length) return { activate: pulledId, kept, warnings };
  const n = nextLocalSeq(db);
  next = { ...next, version: n, parent: pulled.version, origin: 'local', created_at: new Date().toISOString(), notes: { ...(pulled.notes ?? {}), base_version: pulledId, change: `kept local tasks ${kept.join(',')}` } };
  const id = installVersion(paths, db, { indexBytes: Buffer.from(JSON.stringify(next, null, 2) + '\n'), sig: null, origin: 'local', modelPath: (sha) => modelFile(paths, sha) });
  return { activate: id, kept, warnings };
}
