// One learning round over the labelled samples of the KB (`kb train`):
//   1. task definition: by data attribute (Sedna TaskDefinitionByDataAttr, the edge's key
//      normalisation); samples without the attribute join the task whose centroid radius holds
//      them, the rest are clustered (k-means++, k from the data). Groups with fewer than
//      minSamples labelled samples are served by the shared `global` task (the edge fallback),
//      which trains on every sample.
//   2. held-out split per task, persisted per sample (a sample's split never changes, so each
//      task's held-out set only grows and is never trained on, by any task).
//   3. training: seen tasks with new samples are updated on their own data only (warm start
//      from their current model); unseen groups become new tasks, warm-started from the most
//      related existing model = the one that scores best on the new task's training samples
//      (ties: nearest centroid). Built-in trainer on worker threads, or --trainer-cmd.
//   4. eval gate (gate.ts) on each task's own held-out set; rejections recorded with numbers.
//   5. calibration (centroid, radius, confidence/entropy thresholds at a target FPR).
//   6. publish a new signed version when a model changed; unchanged tasks keep their model
//      sha256, so edges download nothing for them.
import { attrKey } from '../format/attrs.js';
import { DEFAULT_ALLOCATION, type AllocationConfig, type Preprocessing, type TaskIndex, type UnseenConfig } from '../format/index-manifest.js';
import type { KbStore, TaskRecord } from '../kb/store.js';
import { publishVersion } from '../kb/publish.js';
import { calibrate, distancesTo } from './calibrate.js';
import { trainCandidates } from './candidates.js';
import { clusterAuto } from './cluster.js';
import { chooseScale, loadSamples, preprocess, sortLabels, type LoadedSample } from './dataset.js';
import { DEFAULT_GATE, gateNew, gateUpdate, type GateDecision } from './gate.js';
import { roundScores, scoreLabels, type Scores } from './metrics.js';
import { loadTaskModel, predictLabels, stack, type ScoringModel } from './models.js';
import { idRank, type Candidate, type Group, type RoundOptions } from './round-types.js';

export { idRank, type RoundOptions } from './round-types.js';

export const GLOBAL_TASK = 'global';

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

export interface TaskOutcome {
  task: string;
  /** new: first model of an unseen group; update: seen task with new samples; unchanged: not trained */
  kind: 'new' | 'update' | 'unchanged';
  fallback: boolean;
  parent: string | null;
  /** how the parent was chosen, with the candidates' accuracy on the new task's training samples */
  relation?: { by: 'score' | 'centroid' | 'none'; scores: Record<string, number> };
  accepted: boolean | null;
  reason: string;
  /** held-out scores before (current model; for a new task: the fallback) and of the candidate */
  before: Scores | null;
  after: Scores | null;
  samples: { train: number; heldout: number; new: number };
  epochs: number | null;
  bestEpoch: number | null;
  trainMs: number | null;
  warmStart: boolean | null;
  model_sha: string | null;
}

export interface RoundReport {
  round: number;
  /** published version, or null when no model changed */
  version: number | null;
  message: string;
  tasks: TaskOutcome[];
  samples: { total: number; labelled: number; skipped: Record<string, number> };
  clusters: { pool: number; k: number; silhouettes: Record<number, number> } | null;
  preprocessing: Preprocessing;
  ms: number;
}

const META_ROUND = 'learn.round';
const META_PREPROC = 'learn.preprocessing';
const META_CLUSTER = 'learn.next_cluster';

export async function runRound(store: KbStore, opts: Partial<RoundOptions> = {}): Promise<RoundReport> {
  const t0 = performance.now();
  const o: RoundOptions = { ...DEFAULT_ROUND, ...opts, gate: { ...DEFAULT_GATE, ...(opts.gate ?? {}) } };
  const log = o.log ?? (() => {});
  const round = Number((await store.getMeta(META_ROUND)) ?? 0) + 1;
  const allTasks = await store.listTasks();
  const taskById = new Map(allTasks.map((t) => [t.id, t]));
  const currentGlobal = allTasks.find((t) => t.fallback) ?? taskById.get(GLOBAL_TASK) ?? null;
  const latest = await store.latestVersion();
  const prevFiles = latest ? await store.readVersionIndex(latest.n) : null;
  const prevIndex = prevFiles ? (JSON.parse(prevFiles.bytes.toString('utf8')) as TaskIndex) : null;
  const attrKeys = o.attrKeys ?? prevIndex?.allocation.attr_keys ?? DEFAULT_ALLOCATION.attr_keys;

  log('loading samples');
  const { samples: loaded, skipped } = await loadSamples(store);
  // one input dimension: the most common one (others cannot feed these models)
  const dimCount = new Map<number, number>();
  for (const s of loaded) dimCount.set(s.raw.length, (dimCount.get(s.raw.length) ?? 0) + 1);
  const dim = [...dimCount.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0] ?? 0;
  const samples = loaded.filter((s) => {
    if (s.raw.length === dim) return true;
    const why = `${s.raw.length} features instead of ${dim}`;
    skipped[why] = (skipped[why] ?? 0) + 1;
    return false;
  });
  const labelled = samples.filter((s) => s.rec.label !== null);
  const base = { round, samples: { total: loaded.length, labelled: labelled.length, skipped }, clusters: null };
  if (labelled.length === 0) {
    return { ...base, version: null, message: 'nothing to train: the KB holds no labelled samples with a vector payload', tasks: [], preprocessing: { kind: 'vector' }, ms: performance.now() - t0 };
  }

  // the KB-wide input space: pinned at the first round (see chooseScale)
  let P: Preprocessing;
  const pinned = await store.getMeta(META_PREPROC);
  if (pinned) P = JSON.parse(pinned) as Preprocessing;
  else {
    const existingVec = allTasks.find((t) => t.preprocessing.kind === 'vector');
    // from every sample the KB holds, labelled or not: the input space must fit them all
    P = existingVec ? existingVec.preprocessing : chooseScale(samples.map((s) => s.raw));
    await store.setMeta(META_PREPROC, JSON.stringify(P));
  }
  const inputs = new Map<LoadedSample, Float32Array>();
  const input = (s: LoadedSample) => {
    let v = inputs.get(s);
    if (!v) inputs.set(s, (v = preprocess(s.raw, P)));
    return v;
  };

  // ---- 1. task definition ----
  const byKey = new Map<string, TaskRecord>();
  for (const t of allTasks) {
    const k = attrKey(t.attrs, attrKeys);
    if (k !== null && !t.fallback) byKey.set(k, t);
  }
  const centroidTasks = allTasks.filter((t) => !t.fallback && t.centroid && t.radius !== null && t.centroid.length === dim);
  const groups = new Map<string, Group>();
  const addTo = (id: string, s: LoadedSample, attrs: Record<string, string>) => {
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { id, attrs, members: [], existing: taskById.get(id) ?? null }));
    g.members.push(s);
  };
  const pool: LoadedSample[] = [];
  for (const s of samples) {
    const key = attrKey(s.rec.attrs, attrKeys);
    if (key !== null) {
      const t = byKey.get(key);
      const attrs = Object.fromEntries(attrKeys.map((k) => [k, s.rec.attrs[k]]));
      let id = t ? t.id : taskIdForKey(key);
      if (!t && (id === GLOBAL_TASK || id === currentGlobal?.id || id.startsWith('cluster-'))) id = `site-${id}`; // never collide with the fallback or cluster ids
      addTo(id, s, t ? t.attrs : attrs);
      continue;
    }
    // a sample keeps the group it was given in an earlier round (a task, or a cluster whose
    // first model did not pass the gate yet)
    const prevId = s.rec.assigned_task;
    const prev = prevId ? taskById.get(prevId) : undefined;
    if (prevId && !prev?.fallback && (prev || prevId.startsWith('cluster-'))) {
      addTo(prevId, s, prev?.attrs ?? {});
      continue;
    }
    // nearest task centroid whose calibrated radius holds the sample
    const x = input(s);
    let best: TaskRecord | null = null;
    let bestD = Infinity;
    for (const t of centroidTasks) {
      if (JSON.stringify(t.preprocessing) !== JSON.stringify(P)) continue; // other input space
      const d = distancesTo(x, 1, dim, t.centroid!)[0];
      if (d <= t.radius! && d < bestD) (bestD = d), (best = t);
    }
    if (best) addTo(best.id, s, best.attrs);
    else pool.push(s);
  }
  let clusters: RoundReport['clusters'] = null;
  if (pool.length >= o.minSamples) {
    const kMax = Math.max(1, Math.min(o.kMax, Math.floor(pool.length / o.minSamples)));
    const X = stack(pool.map(input), dim);
    const c = clusterAuto(X, pool.length, dim, { kMax, seed: o.seed });
    clusters = { pool: pool.length, k: c.k, silhouettes: c.silhouettes };
    let next = Number((await store.getMeta(META_CLUSTER)) ?? 1);
    const members: LoadedSample[][] = Array.from({ length: c.k }, () => []);
    pool.forEach((s, i) => members[c.result.assign[i]].push(s));
    // cluster order by their first sample's seq, so ids do not depend on k-means' numbering
    members.sort((a, b) => a[0].rec.seq - b[0].rec.seq);
    for (const m of members) {
      if (m.filter((s) => s.rec.label !== null).length < o.minSamples) continue;
      const id = `cluster-${next++}`;
      for (const s of m) addTo(id, s, {});
    }
    await store.setMeta(META_CLUSTER, String(next));
  }
  // groups too small to be tasks: their samples are served by (and train) the global task only
  const qualifying = [...groups.values()].filter((g) => g.existing || g.members.filter((s) => s.rec.label !== null).length >= o.minSamples);
  const taskOf = new Map<LoadedSample, string>();
  for (const g of qualifying) for (const s of g.members) taskOf.set(s, g.id);

  // ---- 2. held-out split (sticky per sample) ----
  const split = new Map<LoadedSample, 'train' | 'heldout'>();
  const assignRows: { id: string; assigned_task: string | null; split: 'train' | 'heldout' | null }[] = [];
  const bucket = new Map<string, LoadedSample[]>();
  for (const s of labelled) {
    const k = taskOf.get(s) ?? '';
    if (!bucket.has(k)) bucket.set(k, []);
    bucket.get(k)!.push(s);
  }
  for (const members of bucket.values()) {
    let held = 0;
    const fresh: LoadedSample[] = [];
    for (const s of members) {
      if (s.rec.split) {
        split.set(s, s.rec.split);
        if (s.rec.split === 'heldout') held++;
      } else fresh.push(s);
    }
    const want = Math.max(members.length >= 2 ? 1 : 0, Math.round(members.length * o.heldoutFraction));
    fresh.sort((a, b) => idRank(o.seed, a.rec.id) - idRank(o.seed, b.rec.id) || (a.rec.id < b.rec.id ? -1 : 1));
    for (const s of fresh) split.set(s, held < want ? (held++, 'heldout') : 'train');
  }
  for (const s of samples) {
    const t = taskOf.get(s) ?? null;
    const sp = split.get(s) ?? null;
    if (t !== s.rec.assigned_task || sp !== s.rec.split) assignRows.push({ id: s.rec.id, assigned_task: t, split: sp });
  }

  const labels = sortLabels(labelled.map((s) => s.rec.label!));
  const trainOf = (m: LoadedSample[]) => m.filter((s) => s.rec.label !== null && split.get(s) === 'train');
  const heldOf = (m: LoadedSample[]) => m.filter((s) => s.rec.label !== null && split.get(s) === 'heldout');
  const freshOf = (m: LoadedSample[]) => m.filter((s) => s.rec.label !== null && s.rec.used_in_round === null).length;

  // ---- 3. what to train ----
  const scoring = new Map<string, Promise<ScoringModel>>();
  const modelOf = (t: TaskRecord) => {
    if (!scoring.has(t.id)) scoring.set(t.id, loadTaskModel(store, t));
    return scoring.get(t.id)!;
  };
  const candidates: Candidate[] = [];
  const outcomes: TaskOutcome[] = [];
  const repoint: { group: Group; train: LoadedSample[]; heldout: LoadedSample[] }[] = [];
  const globalGroup: Group = { id: currentGlobal?.id ?? GLOBAL_TASK, attrs: {}, members: labelled, existing: currentGlobal };
  const globalFresh = freshOf(labelled);
  if (!currentGlobal || globalFresh > 0) {
    candidates.push({ group: globalGroup, kind: currentGlobal ? 'update' : 'new', fallback: true, parent: currentGlobal ? currentGlobal.parent : null, train: trainOf(labelled), heldout: heldOf(labelled), fresh: globalFresh });
  }
  for (const g of qualifying) {
    const fresh = freshOf(g.members);
    const train = trainOf(g.members);
    const heldout = heldOf(g.members);
    const shares = !!g.existing && sharesFallback(g.existing);
    if (g.existing && fresh === 0 && g.existing.updated_round > 0) {
      // nothing new; a task served by the fallback's model follows the fallback when it changes
      if (shares) repoint.push({ group: g, train, heldout });
      else outcomes.push(unchanged(g.existing, train.length, heldout.length));
      continue;
    }
    if (train.length === 0 || heldout.length === 0) {
      if (g.existing) outcomes.push({ ...unchanged(g.existing, train.length, heldout.length), reason: 'too few labelled samples to split into train and held-out' });
      continue;
    }
    // a task still served by the fallback's model is gated like a new task (against the fallback)
    const c: Candidate = { group: g, kind: g.existing && !shares ? 'update' : 'new', fallback: false, parent: g.existing ? g.existing.parent : null, train, heldout, fresh };
    if (c.kind === 'new' && !g.existing) {
      // task relationship: the existing model that scores best on the new task's training data
      const scores: Record<string, number> = {};
      let best: TaskRecord | null = null;
      let bestScore = -1;
      const rows = train.map((s) => s.raw);
      const truth = train.map((s) => s.rec.label!);
      for (const t of allTasks) {
        if (sharesFallback(t)) continue; // its model is the fallback's, scored as the fallback
        try {
          const pred = await predictLabels(await modelOf(t), rows);
          const a = scoreLabels(truth, pred.labels).accuracy;
          scores[t.id] = Math.round(a * 1e4) / 1e4;
          const closer = best && a === bestScore && nearer(t, best, train.map(input), dim);
          if (a > bestScore || closer) (bestScore = a), (best = t);
        } catch {
          // a model that cannot score these samples (other input size) cannot be a parent
        }
      }
      // a parent no better than twice chance on the new data knows nothing useful about it, and
      // its weights (fitted to another region of the input space) can hold training back: then
      // the task starts fresh and has no parent
      const useful = best !== null && bestScore >= Math.min(0.9, 2 / Math.max(2, labels.length));
      c.parent = useful ? best!.id : null;
      c.relation = { by: useful ? 'score' : 'none', scores };
    }
    candidates.push(c);
  }

  // ---- training ----
  const trained = await trainCandidates(store, candidates, { o, labels, dim, P, input, modelOf, taskById, log, round });

  // ---- 4. gate: global first (new tasks are compared with the fallback that will serve) ----
  const evalOn = async (m: ScoringModel, set: LoadedSample[]) => roundScores(scoreLabels(set.map((s) => s.rec.label!), (await predictLabels(m, set.map((s) => s.raw))).labels));
  const metric = o.gate.metric;
  const decisions = new Map<Candidate, { d: GateDecision; before: Scores | null; after: Scores; current?: Scores }>();
  const order = [...candidates].sort((a, b) => Number(b.fallback) - Number(a.fallback));
  let servingGlobal: ScoringModel | null = currentGlobal ? await modelOf(currentGlobal) : null;
  for (const c of order) {
    const tr = trained.get(c)!;
    const after = await evalOn(tr.model, c.heldout);
    let before: Scores | null = null;
    let d: GateDecision;
    if (c.kind === 'update') {
      try {
        before = await evalOn(await modelOf(c.group.existing!), c.heldout);
      } catch (e) {
        // e.g. a registered model for another input size: it cannot serve these samples at all
        log(`task ${c.group.id}: current model cannot score its held-out set (${(e as Error).message}); counted as 0`);
        before = { accuracy: 0, micro_precision: 0, macro_f1: 0, n: c.heldout.length };
      }
      d = gateUpdate(o.gate, after[metric], before[metric]);
    } else if (c.fallback) {
      d = gateNew(o.gate, after[metric], null);
    } else {
      before = servingGlobal ? await evalOn(servingGlobal, c.heldout) : null;
      d = gateNew(o.gate, after[metric], before ? before[metric] : null);
      if (c.group.existing) {
        // served by an earlier fallback model so far: the candidate must also not lose against that
        const cur = await evalOn(await modelOf(c.group.existing), c.heldout);
        const u = gateUpdate(o.gate, after[metric], cur[metric]);
        if (d.accepted && !u.accepted) d = u;
        decisions.set(c, { d, before, after, current: cur });
        continue;
      }
    }
    if (c.fallback && d.accepted) servingGlobal = tr.model;
    decisions.set(c, { d, before, after });
  }

  // ---- 5. calibration and records ----
  // A new task whose model does not beat the fallback still becomes a task (its attribute is
  // known, so the edge stops flagging its samples unseen) but is served by the fallback's model
  // (same sha256: nothing to download) until one of its own models beats the fallback. It
  // follows later fallback models only when they are strictly better on its held-out set.
  const now = Date.now();
  let changedModels = 0;
  let changedEntries = 0; // task entries that point at another model without a new one
  const records: TaskRecord[] = [];
  let globalRecord: TaskRecord | null = currentGlobal;
  const recordFor = async (
    group: Group,
    fallback: boolean,
    train: LoadedSample[],
    heldout: LoadedSample[],
    served: ScoringModel,
    servedScores: Scores,
    model: Pick<TaskRecord, 'model_sha' | 'model_size' | 'inputs' | 'outputs' | 'labels' | 'preprocessing' | 'output_kind' | 'arch'>,
    parent: string | null,
    shares: boolean,
    updatedRound: number,
    historyEntry: Record<string, unknown> | null,
    trainer: Record<string, unknown> | null,
  ): Promise<TaskRecord> => {
    const probs = await served.predict(heldout.map((s) => s.raw));
    // centroid and radius live in the input space of the model that serves the task (the edge
    // measures distances after that task's preprocessing)
    const same = JSON.stringify(served.preprocessing) === JSON.stringify(P);
    const trainX = stack(train.map((s) => (same ? input(s) : preprocess(s.raw, served.preprocessing))), dim);
    const heldX = stack(heldout.map((s) => (same ? input(s) : preprocess(s.raw, served.preprocessing))), dim);
    const cal = calibrate(trainX, train.length, heldX, heldout.length, probs, served.labels.length, dim, o.fpr);
    const prev = group.existing;
    const history = ((prev?.extra?.history as unknown[]) ?? []).concat(historyEntry ? [historyEntry] : []);
    return {
      id: group.id,
      attrs: fallback ? {} : group.attrs,
      ...model,
      parent,
      metrics: { accuracy: servedScores.accuracy, micro_precision: servedScores.micro_precision, macro_f1: servedScores.macro_f1, heldout: servedScores.n },
      // the fallback has no centroid: it must never win nearest-centroid allocation
      centroid: fallback ? null : cal.centroid,
      radius: fallback ? null : cal.radius,
      thresholds: { confidence: cal.confidence, entropy: cal.entropy },
      samples: train.length + heldout.length,
      updated_round: updatedRound,
      fallback,
      created_at: prev?.created_at ?? now,
      updated_at: now,
      extra: { ...(prev?.extra ?? {}), history, ...(trainer ? { trainer } : {}), shares_fallback: shares },
    };
  };
  const modelFields = (t: TaskRecord) => ({ model_sha: t.model_sha, model_size: t.model_size, inputs: t.inputs, outputs: t.outputs, labels: t.labels, preprocessing: t.preprocessing, output_kind: t.output_kind, arch: t.arch });
  for (const c of order) {
    const tr = trained.get(c)!;
    const { d, before, after, current } = decisions.get(c)!;
    const outcome: TaskOutcome = {
      task: c.group.id,
      kind: c.kind,
      fallback: c.fallback,
      parent: c.parent,
      ...(c.relation ? { relation: c.relation } : {}),
      accepted: d.accepted,
      reason: d.reason,
      before,
      after,
      samples: { train: c.train.length, heldout: c.heldout.length, new: c.fresh },
      epochs: tr.epochs,
      bestEpoch: tr.bestEpoch,
      trainMs: Math.round(tr.ms),
      warmStart: tr.warmStart,
      model_sha: null,
    };
    outcomes.push(outcome);
    if (!d.accepted) {
      await store.logEvent('learn.reject', { round, task: c.group.id, kind: c.kind, metric, candidate: d.candidate, baseline: d.baseline, against: d.against, reason: d.reason });
    }
    const historyEntry = { round, kind: c.kind, accepted: d.accepted, reason: d.reason, before: before ? before[metric] : null, after: after[metric], metric, parent: c.parent, train: c.train.length, heldout: c.heldout.length, epochs: tr.epochs, train_ms: Math.round(tr.ms) };
    let rec: TaskRecord;
    if (d.accepted) {
      const put = await store.blobs.put(tr.bytes);
      outcome.model_sha = put.sha256;
      changedModels++;
      const model = { model_sha: put.sha256, model_size: put.size, ...tr.io, labels, preprocessing: P, output_kind: tr.outputKind, arch: tr.arch };
      rec = await recordFor(c.group, c.fallback, c.train, c.heldout, tr.model, after, model, c.parent, false, round, historyEntry, tr.trainer);
    } else if (c.kind === 'update' || c.fallback) {
      // the current model stays; its numbers and calibration are refreshed on the grown held-out set
      const prev = c.group.existing!;
      rec = await recordFor(c.group, c.fallback, c.train, c.heldout, await modelOf(prev), before!, modelFields(prev), prev.parent, false, prev.updated_round, historyEntry, null);
    } else if (c.group.existing && current && (!globalRecord || !servingGlobal || !before || before[metric] <= current[metric])) {
      // an earlier fallback model serves this task better than today's fallback: keep it (frozen)
      const prev = c.group.existing;
      outcome.reason += '; keeps its current model (better here than the fallback)';
      rec = await recordFor(c.group, false, c.train, c.heldout, await modelOf(prev), current, modelFields(prev), prev.parent, false, prev.updated_round, historyEntry, null);
    } else if (globalRecord && servingGlobal) {
      outcome.reason += '; the task is served by the fallback model';
      outcome.model_sha = globalRecord.model_sha;
      if (!c.group.existing || c.group.existing.model_sha !== globalRecord.model_sha) changedEntries++;
      rec = await recordFor(c.group, false, c.train, c.heldout, servingGlobal, before!, modelFields(globalRecord), globalRecord.id, true, round, historyEntry, null);
    } else continue;
    if (c.fallback) globalRecord = rec;
    records.push(rec);
  }
  // tasks served by the fallback's model follow it when it changed this round
  for (const r of repoint) {
    if (!globalRecord || !servingGlobal || globalRecord.model_sha === r.group.existing!.model_sha) {
      outcomes.push(unchanged(r.group.existing!, r.train.length, r.heldout.length));
      continue;
    }
    const held = await evalOn(servingGlobal, r.heldout);
    const cur = await evalOn(await modelOf(r.group.existing!), r.heldout);
    if (held[metric] <= cur[metric]) {
      // the new fallback is not better on this task: it keeps the earlier one. Strictly better
      // is required because a switch that only ties on the held-out set is a coin toss on
      // unseen data, and repeated coin tosses add up to forgetting.
      const prev = r.group.existing!;
      records.push(await recordFor(r.group, false, r.train, r.heldout, await modelOf(prev), cur, modelFields(prev), prev.parent, false, prev.updated_round, null, null));
      outcomes.push({ ...unchanged(prev, r.train.length, r.heldout.length), reason: `keeps its model: the new fallback scores ${metric} ${held[metric].toFixed(4)} <= ${cur[metric].toFixed(4)} here` });
      continue;
    }
    changedEntries++;
    const rec = await recordFor(r.group, false, r.train, r.heldout, servingGlobal, held, modelFields(globalRecord), globalRecord.id, true, round, null, null);
    records.push(rec);
    outcomes.push({ ...unchanged(r.group.existing!, r.train.length, r.heldout.length), reason: 'served by the fallback model, which changed', after: held, model_sha: globalRecord.model_sha });
  }
  for (const r of records) await store.putTask(r);
  if (assignRows.length) await store.assignSamples(assignRows);
  const used = candidates.flatMap((c) => [...c.train, ...c.heldout].map((s) => s.rec.id));
  if (used.length) await store.markSamplesUsed([...new Set(used)], round);
  await store.setMeta(META_ROUND, String(round));
  await store.setCounter('labelled_new', 0);
  await store.setCounter('samples_new', 0);
  await store.addCounter('rounds', 1);
  await store.setMeta('learn.last_round_at', String(now));

  // ---- 6. publish ----
  let version: number | null = null;
  let message: string;
  if (changedModels > 0 || changedEntries > 0) {
    const tasks = await store.listTasks();
    const allocation: AllocationConfig = { ...(prevIndex?.allocation ?? DEFAULT_ALLOCATION), attr_keys: attrKeys, fallback: tasks.find((t) => t.fallback)?.id ?? null };
    const unseen: UnseenConfig = prevIndex?.unseen ?? { methods: ['attr', 'confidence', 'distance'], combine: 'any', confidence: 0.5 };
    const pub = await publishVersion(store, {
      tasks,
      allocation,
      unseen,
      channel: o.channel,
      notes: { round, trained: candidates.map((c) => c.group.id), accepted: outcomes.filter((x) => x.accepted).map((x) => x.task), rejected: outcomes.filter((x) => x.accepted === false).map((x) => x.task) },
    });
    version = pub.version.n;
    message = `round ${round}: published version ${version} (${changedModels} new model${changedModels === 1 ? '' : 's'}${changedEntries ? `, ${changedEntries} task${changedEntries === 1 ? '' : 's'} served by the fallback model` : ''})`;
  } else {
    message = candidates.length ? `round ${round}: no candidate passed the gate; nothing published` : `round ${round}: no task has new labelled samples; nothing published`;
  }
  await store.logEvent('learn.round', { round, version, accepted: outcomes.filter((x) => x.accepted).map((x) => x.task), rejected: outcomes.filter((x) => x.accepted === false).map((x) => x.task) });
  outcomes.sort((a, b) => Number(b.fallback) - Number(a.fallback) || a.task.localeCompare(b.task, 'en', { numeric: true }));
  return { ...base, clusters, version, message, tasks: outcomes, preprocessing: P, ms: performance.now() - t0 };
}

export function sharesFallback(t: TaskRecord): boolean {
  return t.extra?.shares_fallback === true;
}

function unchanged(t: TaskRecord, train: number, heldout: number): TaskOutcome {
  const m = t.metrics ?? {};
  const s = m.accuracy !== undefined ? { accuracy: m.accuracy, micro_precision: m.micro_precision ?? m.accuracy, macro_f1: m.macro_f1 ?? 0, n: m.heldout ?? heldout } : null;
  return { task: t.id, kind: 'unchanged', fallback: t.fallback, parent: t.parent, accepted: null, reason: 'no new labelled samples', before: s, after: s, samples: { train, heldout, new: 0 }, epochs: null, bestEpoch: null, trainMs: null, warmStart: null, model_sha: t.model_sha };
}

/** Task id of an attribute key: the key itself when it is a valid id, else a sanitised form. */
export function taskIdForKey(key: string): string {
  const id = key.replace(/[^A-Za-z0-9._:-]/g, '-').replace(/^[._:-]+/, '');
  return (id || 'task').slice(0, 128);
}

function nearer(a: TaskRecord, b: TaskRecord, xs: Float32Array[], dim: number): boolean {
  if (!a.centroid || a.centroid.length !== dim) return false;
  if (!b.centroid || b.centroid.length !== dim) return true;
  const X = stack(xs, dim);
  const c = new Float64Array(dim);
  for (let i = 0; i < xs.length; i++) for (let j = 0; j < dim; j++) c[j] += X[i * dim + j] / xs.length;
  return distancesTo(Float32Array.from(c), 1, dim, a.centroid)[0] < distancesTo(Float32Array.from(c), 1, dim, b.centroid)[0];
}
