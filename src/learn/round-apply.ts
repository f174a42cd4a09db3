// The apply step of a learning round: the plan's new model blobs are stored first (content
// addressed: a blob without a record referencing it is harmless), then every record, split,
// counter and event of the round commits in ONE store transaction (KbStore.applyRound), then a
// new version is published when a task's model changed.
import { DEFAULT_ALLOCATION, type AllocationConfig, type TaskIndex, type UnseenConfig } from '../format/index-manifest.js';
import { publishVersion } from '../kb/publish.js';
import type { KbStore } from '../kb/store.js';
import type { RoundPlan } from './round-plan.js';

export const META_ROUND = 'learn.round';
export const META_PREPROC = 'learn.preprocessing';
export const META_CLUSTER = 'learn.next_cluster';
export const META_LAST_ROUND_AT = 'learn.last_round_at';

/**
 * consumed: the trigger counters (labelled_new, samples_new) as they were when the round read
 * the KB; they are subtracted, so what arrived while the round ran still counts for the next one.
 * settings: meta the round was asked to keep (unseen settings), written in the same transaction.
 */
export async function applyPlan(store: KbStore, plan: RoundPlan, consumed: Record<string, number>, settings: Record<string, string> = {}): Promise<void> {
  for (const t of plan.tasks) {
    if (t.bytes) await store.blobs.put(t.bytes, t.record.model_sha);
  }
  const meta: Record<string, string> = { ...settings, [META_ROUND]: String(plan.round), [META_CLUSTER]: String(plan.nextCluster), [META_LAST_ROUND_AT]: String(plan.now) };
  if (plan.fixPreprocessing && plan.P) meta[META_PREPROC] = JSON.stringify(plan.P);
  await store.applyRound({
    tasks: plan.tasks.map((t) => t.record),
    assign: plan.assign,
    used: { ids: plan.used, round: plan.round },
    meta,
    counters: { labelled_new: -(consumed.labelled_new ?? 0), samples_new: -(consumed.samples_new ?? 0), rounds: 1 },
    events: plan.rejects.map((detail) => ({ kind: 'learn.reject', detail })),
  });
}

/**
 * Publish the round's tasks as a new signed version with the unseen settings in force; null when
 * no task's model changed and no task was recalibrated for new settings.
 */
export async function publishPlan(store: KbStore, plan: RoundPlan, prevIndex: TaskIndex | null, channel: string | null, unseen: UnseenConfig, recalibrated = 0): Promise<number | null> {
  if (plan.changedModels === 0 && plan.changedEntries === 0 && recalibrated === 0) return null;
  const tasks = await store.listTasks();
  const allocation: AllocationConfig = { ...(prevIndex?.allocation ?? DEFAULT_ALLOCATION), attr_keys: plan.attrKeys, fallback: tasks.find((t) => t.fallback)?.id ?? null };
  const pub = await publishVersion(store, {
    tasks,
    allocation,
    unseen,
    channel,
    notes: { round: plan.round, trained: plan.trained, accepted: plan.outcomes.filter((x) => x.accepted).map((x) => x.task), rejected: plan.outcomes.filter((x) => x.accepted === false).map((x) => x.task) },
  });
  return pub.version.n;
}
