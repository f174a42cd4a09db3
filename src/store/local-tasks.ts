// `task add`: register a local ONNX model as a task. The change becomes a new local KB version
// ("local-<n>": the active index plus or replacing this task), installed and activated through
// store/versions.ts, so local and KB versions roll forward and back the same way.
//
// The model is checked by onnx/ort.ts `inspectModel` (onnxruntime-node, loaded lazily: only this
// command pays for it), the same admission check `kb task add` uses: it reads the input/output
// names and shapes, refuses a corrupt or unfeedable file before anything is stored, and one
// probe run tells whether the first output already holds probabilities.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { ReportedError, UsageError } from '../errors.js';
import { normaliseAttrs } from '../format/attrs.js';
import {
  DEFAULT_ALLOCATION,
  DEFAULT_HARD,
  DEFAULT_UNSEEN,
  INDEX_FORMAT,
  type Preprocessing,
  type TaskEntry,
  type TaskIndex,
  type TensorSpec,
} from '../format/index-manifest.js';
import type { DB } from './db.js';
import type { HomePaths } from './home.js';
import { activateVersion, activeVersion, getVersion, installVersion, nextLocalSeq } from './versions.js';

export interface AddTaskOptions {
  modelFile: string;
  task: string;
  /** raw key=value pairs (normalised here the Sedna way) */
  attrs: Record<string, string>;
  labels?: string[];
  /**
   * Without `labels`: use these when the model has exactly as many classes (a new model for a
   * task keeps the task's class names), else the default labels "0".."K-1" and the result's
   * labels_note says why. Ignored when `labels` is given.
   */
  labelsIfClassCount?: string[];
  /** multiply inputs by this before inference (e.g. 1/255 for 0..255 pixels) */
  scale?: number;
  /** make this task the allocation fallback (implied for task id "global") */
  fallback?: boolean;
}

export interface AddTaskResult {
  version: string;
  previous: string | null;
  task: string;
  replaced: boolean;
  /** true when the active index already held exactly this task: no new version was made */
  unchanged: boolean;
  model: { sha256: string; file: string; size: number; inputs: TensorSpec[]; outputs: TensorSpec[]; labels: string[]; output_kind: string };
  /** set when labelsIfClassCount was not used (the model's class count differs): one line, why */
  labels_note?: string;
}

const TASK_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function preprocessingFor(input: TensorSpec, scale: number | undefined): Preprocessing {
  const p: Preprocessing = { kind: 'vector' };
  const s = input.shape as number[];
  // [N, C, H, W] or [N, H, W, C] with 1 or 3 channels: an image model
  if (s.length === 4 && (s[1] === 1 || s[1] === 3)) Object.assign(p, { kind: 'image', channels: s[1], height: s[2], width: s[3], layout: 'NCHW' });
  else if (s.length === 4 && (s[3] === 1 || s[3] === 3)) Object.assign(p, { kind: 'image', channels: s[3], height: s[1], width: s[2], layout: 'NHWC' });
  if (scale !== undefined) p.scale = scale;
  return p;
}

function emptyIndex(): TaskIndex {
  return {
    format: INDEX_FORMAT,
    version: 1,
    created_at: '',
    parent: null,
    origin: 'local',
    tasks: [],
    allocation: { ...DEFAULT_ALLOCATION, attr_keys: [] },
    unseen: structuredClone(DEFAULT_UNSEEN),
    hard_examples: structuredClone(DEFAULT_HARD),
  };
}

/** The next index: base plus (or with a replaced) task entry. Pure; throws on conflicts. */
export function indexWithTask(base: TaskIndex | null, entry: TaskEntry, fallback: boolean): TaskIndex {
  const idx: TaskIndex = base ? structuredClone(base) : emptyIndex();
  const keys = Object.keys(entry.attrs);
  if (keys.length) {
    const others = idx.tasks.filter((t) => t.id !== entry.id && Object.keys(t.attrs).length > 0);
    const cur = idx.allocation.attr_keys;
    const same = cur.length === keys.length && keys.every((k) => cur.includes(k));
    if (!same && others.length > 0) {
      throw new UsageError(`task "${entry.id}": attribute keys ${keys.join(',')} differ from the active index's (${cur.join(',')}); give --attr for ${cur.join(', ')}`);
    }
    if (!same) idx.allocation.attr_keys = keys;
  }
  const at = idx.tasks.findIndex((t) => t.id === entry.id);
  if (at >= 0) idx.tasks[at] = entry;
  else idx.tasks.push(entry);
  if (fallback) idx.allocation.fallback = entry.id;
  return idx;
}

export async function addLocalTask(paths: HomePaths, db: DB, o: AddTaskOptions): Promise<AddTaskResult> {
  if (!TASK_ID_RE.test(o.task)) throw new UsageError(`--task "${o.task}": expected 1-128 characters [A-Za-z0-9._:-], starting with a letter or digit`);
  if (o.scale !== undefined && !(Number.isFinite(o.scale) && o.scale !== 0)) throw new UsageError(`--preprocess-scale ${o.scale}: expected a non-zero number`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(o.modelFile);
  } catch (e) {
    throw new UsageError(`${o.modelFile}: cannot read the model (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (bytes.length === 0) throw new ReportedError(`${o.modelFile}: empty file, not an ONNX model`);
  // loaded here: a sync that carries local tasks over a pulled version needs indexWithTask only
  const { inspectModel } = await import('../onnx/ort.js');
  const info = await inspectModel(bytes, o.modelFile);
  let labels = o.labels;
  if (labels) {
    if (labels.some((l) => l === '')) throw new UsageError(`--labels: empty label`);
    if (new Set(labels).size !== labels.length) throw new UsageError(`--labels: duplicate label`);
    if (labels.length !== info.classes) throw new UsageError(`--labels: ${labels.length} labels but the model has ${info.classes} outputs`);
  } else if (o.labelsIfClassCount?.length === info.classes) labels = o.labelsIfClassCount;
  else labels = Array.from({ length: info.classes }, (_, i) => String(i));
  // the asked-for labels could not apply: say so (the caller decides how loud)
  const labelsNote =
    !o.labels && o.labelsIfClassCount && labels !== o.labelsIfClassCount
      ? `task ${o.task}: the new model has ${info.classes} classes, not ${o.labelsIfClassCount.length}: labels ${o.labelsIfClassCount.join(',')} not kept (give --labels)`
      : undefined;
  const note = labelsNote ? { labels_note: labelsNote } : {};

  const sha = createHash('sha256').update(bytes).digest('hex');
  const entry: TaskEntry = {
    id: o.task,
    attrs: normaliseAttrs(o.attrs),
    model: {
      sha256: sha,
      file: `models/${sha}.onnx`,
      size: bytes.length,
      inputs: info.inputs,
      outputs: info.outputs,
      labels,
      preprocessing: preprocessingFor(info.inputs[0], o.scale),
      output_kind: info.outputKind,
      arch: 'external',
    },
  };
  const fallback = !!o.fallback || o.task === 'global';

  // a concurrent `task add` may take the same local-<n>: rebuild on the new active index and retry
  for (let attempt = 0; ; attempt++) {
    const active = activeVersion(paths, db);
    const base = active?.index ?? null;
    const old = base?.tasks.find((t) => t.id === o.task);
    const next = indexWithTask(base, entry, fallback);
    if (active && old && JSON.stringify(old) === JSON.stringify(entry) && next.allocation.fallback === base!.allocation.fallback) {
      return { version: active.id, previous: null, task: o.task, replaced: true, unchanged: true, model: entry.model, ...note };
    }
    const n = nextLocalSeq(db);
    next.version = n;
    next.parent = base ? base.version : null;
    next.origin = 'local';
    next.created_at = new Date().toISOString();
    next.notes = { ...(next.notes ?? {}), base_version: active?.id ?? null, change: `task add ${o.task}` };
    const indexBytes = Buffer.from(JSON.stringify(next, null, 2) + '\n');
    let id: string;
    try {
      id = installVersion(paths, db, { indexBytes, sig: null, origin: 'local', modelPath: () => o.modelFile });
    } catch (e) {
      if (attempt < 3 && e instanceof ReportedError && getVersion(db, `local-${n}`)) continue;
      throw e;
    }
    const act = activateVersion(db, id, { reason: `task add ${o.task}` });
    return { version: id, previous: act.previous, task: o.task, replaced: !!old, unchanged: false, model: entry.model, ...note };
  }
}
