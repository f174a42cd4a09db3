// One learning round (`kb train`): read the KB, plan (round-plan.ts: task definition, held-out
// split, candidates, training, gate, task records; no writes), apply (round-apply.ts: one store
// transaction), publish only what changed (unchanged tasks keep their model sha256, so edges
// download nothing for them).
import type { Preprocessing, TaskIndex } from '../format/index-manifest.js';
import type { KbStore } from '../kb/store.js';
import { loadSamples } from './dataset.js';
import { knownImagePreprocessing } from './image-samples.js';
import { DEFAULT_GATE } from './gate.js';
import { loadTaskModel } from './models.js';
import { applyPlan, META_CLUSTER, META_PREPROC, META_ROUND, publishPlan } from './round-apply.js';
import { planRound } from './round-plan.js';
import { recalibrateTasks, resolveUnseen } from './unseen-settings.js';
import type { ClusterReport, RoundOptions, TaskOutcome } from './round-types.js';

export const DEFAULT_ROUND: RoundOptions = {
  minSamples: 10,
  arch: 'auto',
  hidden: [128],
  epochs: 30,
  seed: 1,
  gate: DEFAULT_GATE,
  heldoutFraction: 0.2,
  fpr: 0.05,
  kMax: 8,
  channel: 'stable',
};

export interface RoundReport {
  round: number;
  /** published version, or null when no model changed */
  version: number | null;
  message: string;
  tasks: TaskOutcome[];
  samples: { total: number; labelled: number; skipped: Record<string, number> };
  clusters: ClusterReport | null;
  /** things the operator should know (e.g. attribute keys that did not define tasks) */
  warnings: string[];
  preprocessing: Preprocessing;
  ms: number;
}

/**
 * One learning round. It holds the KB's training lock from its first read to its publish (a
 * second round meanwhile fails with exit 6), so every caller (kb train, benches) gets it.
 */
export async function runRound(store: KbStore, opts: Partial<RoundOptions> = {}): Promise<RoundReport> {
  // a round may end by publishing: a process that cannot sign (a machine without
  // --signing-key on a shared KB) fails before it trains, not after the round consumed its
  // counters and stored models nobody can publish
  await store.signingKey();
  // the store's lock: a file lock on the embedded backend, an advisory lock on PostgreSQL
  const release = await store.trainLock();
  try {
    return await lockedRound(store, opts);
  } finally {
    await release();
  }
}

async function lockedRound(store: KbStore, opts: Partial<RoundOptions>): Promise<RoundReport> {
  const t0 = performance.now();
  const o: RoundOptions = { ...DEFAULT_ROUND, ...opts, gate: { ...DEFAULT_GATE, ...(opts.gate ?? {}) } };
  const log = o.log ?? (() => {});
  const round = Number((await store.getMeta(META_ROUND)) ?? 0) + 1;
  const latest = await store.latestVersion();
  const prevFiles = latest ? await store.readVersionIndex(latest.n) : null;
  const prevIndex = prevFiles ? (JSON.parse(prevFiles.bytes.toString('utf8')) as TaskIndex) : null;
  const pinned = await store.getMeta(META_PREPROC);
  // unseen settings: asked now, else kept, else the last index's; asked ones are kept in the KB
  // by the round's transaction (applyPlan) with the thresholds calibrated for them: a round that
  // fails before it applies leaves the settings it was asked for unstored
  const unseen = await resolveUnseen(store, { ...o.unseen, ...(opts.fpr !== undefined ? { fpr: opts.fpr } : {}) }, prevIndex);
  o.unseenConfig = unseen.config;
  // the trigger counters before the samples are read: what the round consumes at most
  const consumed = await store.counters();
  log('loading samples');
  const pinnedP = pinned ? (JSON.parse(pinned) as Preprocessing) : null;
  const tasks = await store.listTasks();
  const { samples, skipped, image } = await loadSamples(store, { image: knownImagePreprocessing(pinnedP, tasks), maxPixels: o.maxPixels, resizeImages: o.resizeImages });
  const plan = await planRound(
    {
      round,
      tasks,
      prevIndex,
      samples,
      skipped,
      preprocessing: pinnedP,
      imagePreprocessing: image,
      nextCluster: Number((await store.getMeta(META_CLUSTER)) ?? 1),
      loadModel: (t) => loadTaskModel(store, t),
    },
    o,
  );
  const base = { round, samples: plan.samples, clusters: plan.clusters, warnings: plan.warnings };
  if (!plan.P) {
    // a round with nothing to train has nothing else to write: the asked settings alone
    for (const [k, v] of Object.entries(unseen.keep)) await store.setMeta(k, v);
    return { ...base, version: null, message: 'nothing to train: the KB holds no labelled samples with a usable payload (vector or image)', tasks: [], preprocessing: { kind: 'vector' }, ms: performance.now() - t0 };
  }
  await applyPlan(store, plan, consumed, unseen.keep);
  // new unseen settings: the tasks this round did not write are recalibrated for them too
  const recalibrated = unseen.changed ? (await recalibrateTasks(store, unseen.config, new Set(plan.tasks.map((t) => t.record.id)))).length : 0;
  const version = await publishPlan(store, plan, prevIndex, o.channel, unseen.config, recalibrated);
  const n = plan.changedModels;
  const message =
    version !== null
      ? `round ${round}: published version ${version} (${n} new model${n === 1 ? '' : 's'}${plan.changedEntries ? `, ${plan.changedEntries} task${plan.changedEntries === 1 ? '' : 's'} now served by a model the KB already had` : ''}${recalibrated ? `, ${recalibrated} task${recalibrated === 1 ? '' : 's'} recalibrated for new unseen settings` : ''})`
      : plan.trained.length
        ? `round ${round}: no candidate passed the gate; nothing published`
        : `round ${round}: no task has new labelled samples; nothing published`;
  await store.logEvent('learn.round', { round, version, accepted: plan.outcomes.filter((x) => x.accepted).map((x) => x.task), rejected: plan.outcomes.filter((x) => x.accepted === false).map((x) => x.task) });
  return { ...base, version, message, tasks: plan.outcomes, preprocessing: plan.P, ms: performance.now() - t0 };
}
