// Activation with trial: the one way a version becomes active on the edge (`model activate`,
// `model install --activate`, and sync's pull when config.rollout.activate is auto).
//
//   1. re-hash the version's model files (they may have rotted since install);
//   2. health check on the staged files: every model loads, canary records reproduce their
//      outputs within config.rollout.canary_tolerance, one-sample latency <= max_latency_ms;
//   3. only then the pointer moves (one SQLite transaction, rollout/state.ts startTrial): the
//      version is active, in state 'trial', the old active kept as 'previous';
//   4. the inference pipeline counts outcomes (recordTrialOutcomes); after
//      config.rollout.trial_inferences inferences the version is committed, or rolled back
//      automatically when its unseen+hard rate is worse than the previous version's by more than
//      config.rollout.trial_rate_factor.
// Running the load/canary/latency check before the pointer moves (rather than after, as RAUC
// does with a reboot) means `serve` never switches to a model that cannot load and a kill -9 at
// any moment leaves a version active that passed its check. A failed check marks the version
// 'failed' with its reason and the active version never changes: the same end state as an
// activate-then-roll-back, without the window.
import { ReportedError, UsageError, VerificationError, NotFoundError } from '../errors.js';
import type { DB } from '../store/db.js';
import { kvGet } from '../store/db.js';
import type { EdgeConfig, HomePaths } from '../store/home.js';
import { markFailed, rollbackTx, startTrial } from './state.js';
import { readCanary, sha256File } from './files.js';
import { getVersion, modelFile, readVersionIndex } from '../store/versions.js';
import { type CheckReport, checkVersion } from './canary.js';

export interface ActivationResult {
  id: string;
  /** pass: committed at once (trial_inferences 0); trial: active, observing inferences;
   *  fail: check failed, version marked failed, the active version unchanged;
   *  ok: dry run passed; noop: already active */
  result: 'pass' | 'trial' | 'fail' | 'ok' | 'noop';
  reason?: string;
  /** the active version after the call */
  active: string | null;
  previous: string | null;
  checks?: CheckReport;
}

/** Re-hash the version's models; a problem is a one-line reason. */
async function modelsIntact(paths: HomePaths, index: { tasks: { id: string; model: { sha256: string } }[] }): Promise<string | null> {
  const seen = new Set<string>();
  for (const t of index.tasks) {
    const sha = t.model.sha256;
    if (seen.has(sha)) continue;
    seen.add(sha);
    let got: string;
    try {
      got = await sha256File(modelFile(paths, sha));
    } catch {
      return `task "${t.id}": model file ${sha.slice(0, 12)}… is missing`;
    }
    if (got !== sha) return `task "${t.id}": model file ${sha.slice(0, 12)}… is corrupt (sha256 mismatch)`;
  }
  return null;
}

/**
 * Check a version and, unless dryRun, activate it on trial. A failed version is refused unless
 * force (exit 5). Returns result 'fail' (never throws) when the version's own check fails, so
 * callers (sync) can report it; the command maps 'fail' to exit 5.
 */
export async function activateWithTrial(
  paths: HomePaths,
  db: DB,
  id: string,
  opts: { config: EdgeConfig; dryRun?: boolean; force?: boolean; reason?: string; allowDowngrade?: boolean },
): Promise<ActivationResult> {
  const row = getVersion(db, id);
  if (!row) throw new UsageError(`version ${id}: not installed (see "sedna-ll model ls")`);
  const active = kvGet(db, 'active_version');
  // an older signed version may carry the very model a newer one fixed: going back is a
  // deliberate act (--allow-downgrade, "model rollback", or the KB's own channel fallback)
  const activeRow = active ? getVersion(db, active) : null;
  if (!opts.allowDowngrade && !opts.dryRun && row.origin !== 'local' && activeRow && activeRow.origin !== 'local' && row.seq < activeRow.seq) {
    throw new UsageError(`version ${id} is older than the active version ${active}: refusing a downgrade; pass --allow-downgrade to go back to it`);
  }
  if (active === id && (row.state === 'active' || row.state === 'trial') && !opts.dryRun) {
    return { id, result: 'noop', active, previous: kvGet(db, 'previous_version') };
  }
  if (row.state === 'failed' && !opts.force && !opts.dryRun) {
    throw new VerificationError(`version ${id} failed before${row.reason ? ` (${row.reason})` : ''}; use --force to try it again`);
  }
  const index = readVersionIndex(paths, db, id);
  const policy = opts.config.rollout;
  let checks: CheckReport | undefined;
  let reason = await modelsIntact(paths, index);
  if (!reason) {
    let canary;
    try {
      canary = readCanary(paths, id, index);
    } catch (e) {
      reason = (e as Error).message;
    }
    if (canary) {
      checks = await checkVersion(paths.models, index, canary, policy);
      if (!checks.ok) reason = checks.reason ?? 'health check failed';
    }
  }
  if (opts.dryRun) {
    return { id, result: reason ? 'fail' : 'ok', ...(reason ? { reason } : {}), active, previous: kvGet(db, 'previous_version'), checks };
  }
  if (reason) {
    markFailed(db, id, reason, checks);
    return { id, result: 'fail', reason, active: kvGet(db, 'active_version'), previous: kvGet(db, 'previous_version'), checks };
  }
  const r = startTrial(db, id, { inferences: policy.trial_inferences, rate_factor: policy.trial_rate_factor }, checks, { force: opts.force, reason: opts.reason });
  return { id, result: r.committed ? 'pass' : 'trial', active: id, previous: r.previous, checks };
}

/** `model rollback`: back to the previous version; the rolled-back one is marked failed. */
export function rollbackActive(db: DB, reason = 'rolled back by operator'): { from: string; to: string } {
  const active = kvGet(db, 'active_version');
  if (!active) throw new NotFoundError('no active version to roll back');
  const prev = kvGet(db, 'previous_version');
  if (!prev || !getVersion(db, prev)) throw new ReportedError(`version ${active} is active and there is no previous version to roll back to`);
  const { now } = rollbackTx(db, active, reason, { trialFailed: false });
  return { from: active, to: now! };
}
