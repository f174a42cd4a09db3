// Task definition of a learning round (pure: reads the samples and the KB's tasks, writes
// nothing). By data attribute (Sedna TaskDefinitionByDataAttr, the edge's key normalisation);
// samples without the attribute keep the group an earlier round gave them, else join the task
// whose calibrated centroid radius holds them, else are clustered (k-means++, k by silhouette).
// Groups with fewer than minSamples labelled samples are no task: the shared fallback serves them.
import { attrKey } from '../format/attrs.js';
import type { Preprocessing } from '../format/index-manifest.js';
import type { TaskRecord } from '../kb/store.js';
import { distancesTo } from './calibrate.js';
import { clusterAuto } from './cluster.js';
import type { LoadedSample } from './dataset.js';
import { stack } from './models.js';
import { GLOBAL_TASK, type ClusterReport, type Group } from './round-types.js';

export interface DefineInput {
  samples: LoadedSample[];
  tasks: TaskRecord[];
  attrKeys: string[];
  P: Preprocessing;
  dim: number;
  input: (s: LoadedSample) => Float32Array;
  minSamples: number;
  kMax: number;
  seed: number;
  /** number of the next cluster-N id */
  nextCluster: number;
}

export interface TaskDefinition {
  /** every group, also those too small to be a task (their site is still known) */
  groups: Map<string, Group>;
  /** groups that are (or become) tasks */
  qualifying: Group[];
  /** sample -> task id, for samples of qualifying groups */
  taskOf: Map<LoadedSample, string>;
  /** sample -> its site (group id), for every grouped sample; pooled unclustered ones have none */
  siteOf: Map<LoadedSample, string>;
  clusters: ClusterReport | null;
  nextCluster: number;
}

/**
 * Attribute keys samples carry that do not define tasks: samples without the task keys but
 * with another key are clustered (or served by the fallback) although they name where they come
 * from; say so, with the option that would use it.
 */
export function unusedAttrKeys(samples: LoadedSample[], attrKeys: string[]): string[] {
  const counts = new Map<string, number>();
  for (const s of samples) {
    if (attrKey(s.rec.attrs, attrKeys) !== null) continue;
    for (const k of Object.keys(s.rec.attrs)) if (!attrKeys.includes(k)) counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k, n]) => `${n} sample(s) carry attribute "${k}" but not the task key(s) ${attrKeys.join(',')}: they were grouped without it (by centroid or clustering); to define tasks by it: kb train --attr-keys ${[...attrKeys, k].join(',')}`);
}

export function defineTasks(i: DefineInput): TaskDefinition {
  const { attrKeys, dim, input } = i;
  const taskById = new Map(i.tasks.map((t) => [t.id, t]));
  const currentGlobal = i.tasks.find((t) => t.fallback) ?? taskById.get(GLOBAL_TASK) ?? null;
  const byKey = new Map<string, TaskRecord>();
  for (const t of i.tasks) {
    const k = attrKey(t.attrs, attrKeys);
    if (k !== null && !t.fallback) byKey.set(k, t);
  }
  const centroidTasks = i.tasks.filter((t) => !t.fallback && t.centroid && t.radius !== null && t.centroid.length === dim);
  const groups = new Map<string, Group>();
  const siteOf = new Map<LoadedSample, string>();
  const addTo = (id: string, s: LoadedSample, attrs: Record<string, string>) => {
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { id, attrs, members: [], existing: taskById.get(id) ?? null }));
    g.members.push(s);
    siteOf.set(s, id);
  };
  const pool: LoadedSample[] = [];
  for (const s of i.samples) {
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
      if (JSON.stringify(t.preprocessing) !== JSON.stringify(i.P)) continue; // other input space
      const d = distancesTo(x, 1, dim, t.centroid!)[0];
      if (d <= t.radius! && d < bestD) (bestD = d), (best = t);
    }
    if (best) addTo(best.id, s, best.attrs);
    else pool.push(s);
  }
  let clusters: ClusterReport | null = null;
  let next = i.nextCluster;
  if (pool.length >= i.minSamples) {
    const kMax = Math.max(1, Math.min(i.kMax, Math.floor(pool.length / i.minSamples)));
    const X = stack(pool.map(input), dim);
    const c = clusterAuto(X, pool.length, dim, { kMax, seed: i.seed });
    clusters = { pool: pool.length, k: c.k, silhouettes: c.silhouettes, why: c.why };
    const members: LoadedSample[][] = Array.from({ length: c.k }, () => []);
    pool.forEach((s, j) => members[c.result.assign[j]].push(s));
    // cluster order by their first sample's seq, so ids do not depend on k-means' numbering
    members.sort((a, b) => a[0].rec.seq - b[0].rec.seq);
    for (const m of members) {
      if (m.filter((s) => s.rec.label !== null).length < i.minSamples) continue;
      const id = `cluster-${next++}`;
      for (const s of m) addTo(id, s, {});
    }
  }
  const qualifying = [...groups.values()].filter((g) => g.existing || g.members.filter((s) => s.rec.label !== null).length >= i.minSamples);
  const taskOf = new Map<LoadedSample, string>();
  for (const g of qualifying) for (const s of g.members) taskOf.set(s, g.id);
  return { groups, qualifying, taskOf, siteOf, clusters, nextCluster: next };
}

/** Task id of an attribute key: the key itself when it is a valid id, else a sanitised form. */
export function taskIdForKey(key: string): string {
  const id = key.replace(/[^A-Za-z0-9._:-]/g, '-').replace(/^[._:-]+/, '');
  return (id || 'task').slice(0, 128);
}
