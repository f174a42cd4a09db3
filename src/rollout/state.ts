// Trial, commit and rollback of installed KB versions, on top of store/versions.ts.
//
// State machine of a kb_versions row (column state; details in column trial, JSON):
//   staged --(checks pass, pointer moves)--> trial --(N inferences, rate ok)--> active
//                                              \--(rate too high)--> failed   (previous is active again)
//   staged --(load / canary / latency check fails)--> failed                  (pointer never moved)
//   active|trial --(model rollback)--> failed "rolled back by operator"
// The pointer (kv active_version / previous_version) always moves in ONE SQLite transaction,
// so a kill -9 or power cut leaves either the old or the new version active.
//
// The trial's rate phase needs outcome counters from the inference pipeline:
// recordTrialOutcomes() is called once per batch by src/runtime (cheap: one small transaction).
// Counters are kept per version (kv outcomes_n:<id> / outcomes_bad:<id>) so the previous
// version's unseen+hard rate is known when a new version goes on trial.
import { type DB, kvGet, kvSet, logEvent } from '../store/db.js';
import { type VersionRow, activateVersion, getVersion } from '../store/versions.js';

/** What a version's trial records (kb_versions.trial). */
export interface TrialRecord {
  /** observing: pointer moved, counting inferences; passed / failed: decided */
  phase: 'observing' | 'passed' | 'failed';
  started_at: number;
  decided_at?: number;
  /** inferences to observe before commit, and the allowed rate factor (policy at activation) */
  inferences: number;
  rate_factor: number;
  /** the version that was active before (fallback) and its unseen+hard rate then */
  baseline: { id: string; n: number; bad: number; rate: number } | null;
  /** inferences / hard-or-unseen outcomes seen while on trial */
  n: number;
  bad: number;
  /** results of the activation checks (models load, canary, latency) */
  checks?: unknown;
  reason?: string;
}

/** kv 'last_trial': what SYNC's device report sends as DeviceReport.trial. */
export interface LastTrial {
  /** edge version id ("7" or "local-2") */
  id: string;
  /** index.version (the KB's integer version for KB / bundle versions) */
  version: number;
  origin: string;
  result: 'pass' | 'fail' | 'pending';
  reason?: string;
  at: number;
}

export function readLastTrial(db: DB): LastTrial | null {
  const v = kvGet(db, 'last_trial');
  if (!v) return null;
  try {
    return JSON.parse(v) as LastTrial;
  } catch {
    return null;
  }
}

function setLastTrial(db: DB, row: VersionRow, result: LastTrial['result'], reason?: string): void {
  // the KB only knows its own versions: a local-<n> trial must never be reported as KB version n
  if (row.origin === 'local') return;
  const t: LastTrial = { id: row.id, version: row.seq, origin: row.origin, result, ...(reason ? { reason } : {}), at: Date.now() };
  kvSet(db, 'last_trial', JSON.stringify(t));
}

export function parseTrial(row: Pick<VersionRow, 'trial'>): TrialRecord | null {
  if (!row.trial) return null;
  try {
    return JSON.parse(row.trial) as TrialRecord;
  } catch {
    return null;
  }
}

/** Lifetime outcome counters of a version (all inferences it served). */
export function versionOutcomes(db: DB, id: string): { n: number; bad: number } {
  return { n: Number(kvGet(db, `outcomes_n:${id}`) ?? 0), bad: Number(kvGet(db, `outcomes_bad:${id}`) ?? 0) };
}

/**
 * Pointer move for a version whose activation checks passed: one transaction makes it the
 * active version in state 'trial' (the old active becomes 'previous', kept as the fallback).
 * A version still on trial that gets superseded is put back to 'staged' (it was never judged)
 * and the committed previous stays the fallback. trial_inferences 0 commits at once.
 */
export function startTrial(db: DB, id: string, policy: { inferences: number; rate_factor: number }, checks: unknown, opts: { force?: boolean; reason?: string } = {}): { previous: string | null; committed: boolean } {
  flushOutcomes(db);
  return db.transaction(() => {
    const row = getVersion(db, id);
    if (!row) throw new Error(`version ${id}: not installed`);
    const current = kvGet(db, 'active_version');
    const curRow = current ? getVersion(db, current) : null;
    if (curRow && curRow.id !== id && curRow.state === 'trial') {
      // superseded while on trial: the committed version before it remains the fallback
      const prev = kvGet(db, 'previous_version');
      db.prepare(`UPDATE kb_versions SET state = 'staged', reason = ? WHERE id = ?`).run(`trial superseded by ${id}`, curRow.id);
      if (prev && getVersion(db, prev)) {
        db.prepare(`UPDATE kb_versions SET state = 'active' WHERE id = ?`).run(prev);
        kvSet(db, 'active_version', prev);
        kvSet(db, 'previous_version', null);
      } else {
        kvSet(db, 'active_version', null);
      }
    }
    const before = kvGet(db, 'active_version');
    const { previous } = activateVersion(db, id, { reason: opts.reason, force: opts.force });
    const baseline = before && before !== id ? { id: before, ...versionOutcomes(db, before) } : null;
    const trial: TrialRecord = {
      phase: policy.inferences > 0 ? 'observing' : 'passed',
      started_at: Date.now(),
      inferences: policy.inferences,
      rate_factor: policy.rate_factor,
      baseline: baseline ? { ...baseline, rate: baseline.n ? baseline.bad / baseline.n : 0 } : null,
      n: 0,
      bad: 0,
      checks,
    };
    const committed = trial.phase === 'passed';
    if (committed) trial.decided_at = trial.started_at;
    db.prepare(`UPDATE kb_versions SET state = ?, reason = NULL, trial = ? WHERE id = ?`).run(committed ? 'active' : 'trial', JSON.stringify(trial), id);
    const fresh = getVersion(db, id)!;
    setLastTrial(db, fresh, committed ? 'pass' : 'pending');
    logEvent(db, 'trial_started', { id, previous, inferences: policy.inferences, committed });
    return { previous, committed };
  }).immediate();
}

/** A version failed its activation checks: mark it failed, the active version is untouched. */
export function markFailed(db: DB, id: string, reason: string, checks?: unknown): void {
  db.transaction(() => {
    const row = getVersion(db, id);
    if (!row) return;
    const trial: TrialRecord = {
      ...(parseTrial(row) ?? { started_at: Date.now(), inferences: 0, rate_factor: 0, baseline: null, n: 0, bad: 0 }),
      phase: 'failed',
      decided_at: Date.now(),
      reason,
      ...(checks !== undefined ? { checks } : {}),
    };
    db.prepare(`UPDATE kb_versions SET state = 'failed', reason = ?, trial = ? WHERE id = ?`).run(reason, JSON.stringify(trial), id);
    setLastTrial(db, row, 'fail', reason);
    logEvent(db, 'trial_failed', { id, reason });
  }).immediate();
}

/**
 * Move the pointer back from the active version `id` to the previous one, in one transaction:
 * id -> 'failed' (reason recorded), previous -> 'active', and the newest retired version (if
 * any is still installed) becomes the new fallback. Without a previous version nothing is
 * active afterwards: a version that failed is never kept serving.
 */
export function rollbackTx(db: DB, id: string, reason: string, opts: { trialFailed: boolean }): { now: string | null } {
  return db.transaction(() => {
    const row = getVersion(db, id);
    if (!row) throw new Error(`version ${id}: not installed`);
    if (kvGet(db, 'active_version') !== id) throw new Error(`version ${id} is not the active version`);
    const prev = kvGet(db, 'previous_version');
    const prevRow = prev ? getVersion(db, prev) : null;
    const trial = parseTrial(row);
    const rec = trial ? { ...trial, phase: 'failed' as const, decided_at: Date.now(), reason } : null;
    db.prepare(`UPDATE kb_versions SET state = 'failed', reason = ?, trial = COALESCE(?, trial) WHERE id = ?`).run(reason, rec ? JSON.stringify(rec) : null, id);
    let now: string | null = null;
    if (prevRow) {
      db.prepare(`UPDATE kb_versions SET state = 'active' WHERE id = ?`).run(prevRow.id);
      kvSet(db, 'active_version', prevRow.id);
      now = prevRow.id;
      const older = db
        .prepare(`SELECT id FROM kb_versions WHERE state = 'retired' AND activated_at IS NOT NULL ORDER BY activated_at DESC, rowid DESC LIMIT 1`)
        .get() as { id: string } | undefined;
      if (older) {
        db.prepare(`UPDATE kb_versions SET state = 'previous' WHERE id = ?`).run(older.id);
        kvSet(db, 'previous_version', older.id);
      } else kvSet(db, 'previous_version', null);
    } else {
      kvSet(db, 'active_version', null);
      kvSet(db, 'previous_version', null);
    }
    if (opts.trialFailed || row.state === 'trial') setLastTrial(db, row, 'fail', reason);
    logEvent(db, 'version_rolled_back', { from: id, to: now, reason });
    return { now };
  }).immediate();
}

export type TrialVerdict = 'none' | 'pending' | 'pass' | 'fail';

// Outcome counts of versions NOT on trial only feed a future trial's baseline, so they are
// buffered in memory and written at most every FLUSH_MS (plus at exit): no extra fsync'd
// transaction per inference window on the hot path. A version on trial is written through.
const FLUSH_MS = 2000;
interface Pending {
  counts: Map<string, { n: number; bad: number }>;
  last: number;
  stateOf: ReturnType<DB['prepare']>;
}
const pendingByDb = new WeakMap<DB, Pending>();
const openFlushers = new Set<() => void>();
let exitHookInstalled = false;

function pendingFor(db: DB): Pending {
  let p = pendingByDb.get(db);
  if (!p) {
    const made: Pending = { counts: new Map(), last: Date.now(), stateOf: db.prepare('SELECT state FROM kb_versions WHERE id = ?').pluck() };
    p = made;
    pendingByDb.set(db, made);
    // flush before the connection closes (commands close it in withHome) and at exit; a count
    // lost to kill -9 only makes a baseline slightly shorter
    const flushQuietly = () => {
      try {
        if (db.open) flushOutcomes(db);
      } catch {
        /* best effort */
      }
    };
    const close = db.close.bind(db);
    db.close = () => {
      flushQuietly();
      openFlushers.delete(flushQuietly);
      return close();
    };
    openFlushers.add(flushQuietly);
    // one shared exit handler for all connections (one per connection trips Node's
    // MaxListenersExceededWarning in processes that open many, like the benchmarks)
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => {
        for (const f of openFlushers) f();
      });
    }
  }
  return p;
}

function addCounts(db: DB, counts: Map<string, { n: number; bad: number }>): void {
  const add = db.prepare('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER)');
  for (const [id, c] of counts) {
    add.run(`outcomes_n:${id}`, String(c.n));
    add.run(`outcomes_bad:${id}`, String(c.bad));
  }
  counts.clear();
}

/** Write buffered outcome counters now (called on exit and before any trial decision). */
export function flushOutcomes(db: DB): void {
  const p = pendingByDb.get(db);
  if (!p || p.counts.size === 0) return;
  db.transaction(() => addCounts(db, p.counts)).immediate();
  p.last = Date.now();
}

/**
 * Count inference outcomes for a version (call once per batch from the inference pipeline:
 * n = samples inferred with this version, nHardOrUnseen = of those, hard or unseen). While the
 * version is on trial this also decides the trial once enough inferences were seen: pass ->
 * committed ('active'); fail -> automatic rollback to the previous version (the caller should
 * then reload the active version). Never throws for a version that is not installed.
 */
export function recordTrialOutcomes(db: DB, versionId: string, n: number, nHardOrUnseen: number): { verdict: TrialVerdict; reason?: string } {
  if (!(n > 0)) return { verdict: 'none' };
  const p = pendingFor(db);
  const c = p.counts.get(versionId) ?? { n: 0, bad: 0 };
  c.n += n;
  c.bad += nHardOrUnseen;
  p.counts.set(versionId, c);
  if (p.stateOf.get(versionId) !== 'trial') {
    if (Date.now() - p.last >= FLUSH_MS) flushOutcomes(db);
    return { verdict: 'none' };
  }
  let decided: { verdict: TrialVerdict; reason?: string; rollback?: boolean } = { verdict: 'none' };
  db.transaction(() => {
    addCounts(db, p.counts);
    const row = getVersion(db, versionId);
    if (!row || row.state !== 'trial') return;
    const t = parseTrial(row);
    if (!t || t.phase !== 'observing') return;
    t.n += n;
    t.bad += nHardOrUnseen;
    decided = { verdict: 'pending' };
    if (t.n >= t.inferences) {
      const rate = t.bad / t.n;
      // the comparison needs a baseline worth the name: the previous version must have served
      // at least min(N, 30) inferences; its rate is floored at one outcome per trial window so
      // that a previous rate of 0 does not make a single hard sample fatal
      const enough = t.baseline !== null && t.baseline.n >= Math.min(t.inferences, 30);
      const base = enough ? Math.max(t.baseline!.rate, 1 / Math.max(t.inferences, 1)) : null;
      const limit = base === null ? null : base * t.rate_factor;
      if (limit !== null && rate > limit) {
        const reason = `unseen+hard rate ${rate.toFixed(3)} over ${t.n} inferences exceeds ${t.rate_factor} x the previous version's ${t.baseline!.rate.toFixed(3)}`;
        t.phase = 'failed';
        t.reason = reason;
        decided = { verdict: 'fail', reason, rollback: true };
      } else {
        t.phase = 'passed';
        decided = { verdict: 'pass' };
      }
      t.decided_at = Date.now();
    }
    db.prepare(`UPDATE kb_versions SET trial = ? WHERE id = ?`).run(JSON.stringify(t), versionId);
    if (decided.verdict === 'pass') {
      db.prepare(`UPDATE kb_versions SET state = 'active' WHERE id = ?`).run(versionId);
      setLastTrial(db, row, 'pass');
      logEvent(db, 'trial_passed', { id: versionId, n: t.n, bad: t.bad });
    } else if (decided.rollback && kvGet(db, 'active_version') === versionId) {
      rollbackTx(db, versionId, decided.reason!, { trialFailed: true });
    } else if (decided.rollback) {
      db.prepare(`UPDATE kb_versions SET state = 'failed', reason = ? WHERE id = ?`).run(decided.reason!, versionId);
      setLastTrial(db, row, 'fail', decided.reason);
    }
  }).immediate();
  p.last = Date.now();
  const d = decided as { verdict: TrialVerdict; reason?: string };
  return d.reason ? { verdict: d.verdict, reason: d.reason } : { verdict: d.verdict };
}

/** The version rows a rollout view needs, with their trial parsed. */
export function versionStates(db: DB): (VersionRow & { trialInfo: TrialRecord | null; isActive: boolean; isPrevious: boolean })[] {
  const active = kvGet(db, 'active_version');
  const previous = kvGet(db, 'previous_version');
  const rows = db.prepare('SELECT * FROM kb_versions ORDER BY seq DESC, installed_at DESC').all() as VersionRow[];
  return rows.map((r) => ({ ...r, trialInfo: parseTrial(r), isActive: r.id === active, isPrevious: r.id === previous }));
}

/** Rows and kv ids that prune must never remove. */
export function protectedVersions(db: DB): Set<string> {
  const keep = new Set<string>();
  for (const k of ['active_version', 'previous_version']) {
    const v = kvGet(db, k);
    if (v) keep.add(v);
  }
  for (const r of db.prepare(`SELECT id FROM kb_versions WHERE state IN ('active', 'trial', 'previous')`).all() as { id: string }[]) keep.add(r.id);
  return keep;
}

/** Forget a version's row (prune). Its files are removed by the caller afterwards. */
export function deleteVersionRow(db: DB, id: string): void {
  db.transaction(() => {
    if (protectedVersions(db).has(id)) throw new Error(`version ${id} is active or previous; not pruned`);
    db.prepare('DELETE FROM kb_versions WHERE id = ?').run(id);
    db.prepare('DELETE FROM kv WHERE key IN (?, ?)').run(`outcomes_n:${id}`, `outcomes_bad:${id}`);
    logEvent(db, 'version_pruned', { id });
  }).immediate();
}
