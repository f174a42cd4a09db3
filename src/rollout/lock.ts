// The edge's rollout lock and the sweep of what killed runs left behind, apart from the rest of
// files.ts (bundles, prune, export): every sync takes this lock, and loading files.ts with it
// (the bundle reader, the index validator: ~40 ms to import alone) cost each cron run before it
// knew whether the KB had anything new.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { withLock } from '../durable/lock.js';
import { pidAlive } from '../durable/process.js';
import type { HomePaths } from '../store/home.js';

/**
 * Remove temp files and directories left by runs that died (kill -9, power cut): bundle
 * extraction dirs (tmp/bundle-<pid>-*), half-built version dirs (kb/.tmp-<id>-<pid>-<ts>) and
 * half-written files (models/<sha>.onnx.tmp-<pid>-<ts>). Only leftovers whose pid is gone.
 */
export function sweepLeftovers(paths: HomePaths): string[] {
  const removed: string[] = [];
  const sweep = (dir: string, re: RegExp) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const m = re.exec(name);
      if (!m || pidAlive(Number(m[1]))) continue;
      rmSync(join(dir, name), { recursive: true, force: true });
      removed.push(join(dir, name));
    }
  };
  sweep(paths.tmp, /^bundle(?:-out)?-(\d+)-[0-9a-f]+$/);
  sweep(paths.kb, /^\.tmp-.+-(\d+)-\d+$/);
  sweep(paths.models, /^[0-9a-f]{64}\.onnx\.tmp-(\d+)-\d+$/);
  return removed;
}

/** The edge's rollout lock: the one `sync` holds, so a pull never races an install, activation or prune. */
export const ROLLOUT_LOCK = 'sync';

/**
 * Run fn holding the rollout lock of an edge home (exit 6 when another sync or rollout holds it),
 * after sweeping what runs killed with -9 left behind: every install, activation, rollback,
 * prune and sync goes through here.
 */
export async function withRolloutLock<T>(paths: HomePaths, fn: () => Promise<T> | T): Promise<T> {
  return withLock(paths, ROLLOUT_LOCK, () => {
    sweepLeftovers(paths);
    return fn();
  });
}
