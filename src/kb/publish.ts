// Publishing a KB version: tasks -> index.json (format/index-manifest) -> validate -> sign ->
// store as version last+1 -> point a channel at it. `kb publish` and the learner (after a
// training round) both call publishVersion.
//
// The version number is allocated inside the store transaction that stores the version
// (VersionStore.nextVersion): two publishers at once (two trainers, a trainer and an operator)
// get consecutive numbers, never the same one, never a gap.
import { ReportedError, NotFoundError } from '../errors.js';
import {
  DEFAULT_ALLOCATION,
  DEFAULT_HARD,
  DEFAULT_UNSEEN,
  INDEX_FORMAT,
  type AllocationConfig,
  type HardFilterConfig,
  type TaskEntry,
  type TaskIndex,
  type UnseenConfig,
} from '../format/index-manifest.js';
import { imageShapeMismatch } from '../format/image-model-shape.js';
import { signBytes } from '../format/signature.js';
import { validateIndex } from '../format/validate-index.js';
import type { ChannelStore, CounterStore, KbStore, KeyStore, KbTx, ModelStore, TaskRecord, VersionRecord, VersionStore } from './store.js';

/** What publishing reads and writes (all of it inside one transaction). */
type PublishTx = ModelStore & VersionStore & ChannelStore & CounterStore & KeyStore;
/** A store publishing can run on: it opens the transaction itself. */
export type PublishStore = Pick<KbStore, 'tx' | 'signingKey'>;

export interface PublishOptions {
  /** tasks to publish (default: every non-retired task of the store) */
  tasks?: TaskRecord[];
  /** default: the previous version's, else attr+centroid over the tasks' attribute keys */
  allocation?: AllocationConfig;
  /** default: the previous version's, else DEFAULT_UNSEEN */
  unseen?: UnseenConfig;
  /** default: the previous version's, else DEFAULT_HARD */
  hard_examples?: HardFilterConfig[];
  notes?: Record<string, unknown>;
  /** channel to point at the new version (default "stable"); null: publish without moving any channel */
  channel?: string | null;
}

export interface PublishResult {
  version: VersionRecord;
  index: TaskIndex;
  bytes: Buffer;
  sig: string;
}

export function taskEntry(t: TaskRecord): TaskEntry {
  const e: TaskEntry = {
    id: t.id,
    attrs: t.attrs,
    parent: t.parent,
    model: {
      sha256: t.model_sha,
      file: `models/${t.model_sha}.onnx`,
      size: t.model_size,
      inputs: t.inputs,
      outputs: t.outputs,
      labels: t.labels,
      preprocessing: t.preprocessing,
      output_kind: t.output_kind,
      ...(t.arch ? { arch: t.arch } : {}),
    },
  };
  if (t.centroid) e.centroid = t.centroid;
  if (t.radius !== null && t.radius !== undefined) e.radius = t.radius;
  if (t.thresholds) e.thresholds = t.thresholds;
  if (t.features) e.features = t.features;
  if (t.metrics && Object.keys(t.metrics).length) e.metrics = t.metrics;
  e.samples = t.samples;
  return e;
}

function defaultAllocation(tasks: TaskRecord[], prev: TaskIndex | null): AllocationConfig {
  const fb = tasks.find((t) => t.fallback)?.id ?? (tasks.some((t) => t.id === 'global') ? 'global' : null);
  // keep the previous version's keys in their order (task keys join values in key order) and
  // append keys that new tasks bring
  const keys: string[] = prev ? [...prev.allocation.attr_keys] : [];
  for (const t of tasks) for (const k of Object.keys(t.attrs)) if (!keys.includes(k)) keys.push(k);
  const base = prev ? prev.allocation : DEFAULT_ALLOCATION;
  return { ...base, attr_keys: keys.length ? keys : DEFAULT_ALLOCATION.attr_keys, fallback: fb };
}

interface Prepared {
  tasks: TaskRecord[];
  index: TaskIndex;
  /** the latest version's index (null: none published yet) */
  prev: TaskIndex | null;
}

/** Build, validate, sign and store a new KB version; point opts.channel (default stable) at it. */
export async function publishVersion(store: PublishStore, opts: PublishOptions = {}): Promise<PublishResult> {
  await store.signingKey(); // fail before any work where this process cannot sign
  return store.tx(async (t: KbTx) => commitVersion(t, await prepareVersion(t, opts), opts));
}

/** What an index says to the edge, without what every version has of its own (version, created_at, parent, notes). */
function content(index: TaskIndex): string {
  const { version: _v, created_at: _c, parent: _p, notes: _n, ...rest } = index;
  return canonicalJson(rest);
}

/** JSON with object keys sorted, so two equal indexes compare equal whatever wrote them. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export type PublishIfChangedResult = { published: PublishResult; unchanged: null } | { published: null; unchanged: number };

/**
 * `kb publish`: like publishVersion, but a no-op when the new index would say the same as the
 * latest version (tasks, models, allocation, unseen and hard-example config): every edge would
 * pull the copy and start a trial of it for nothing. opts.force publishes anyway.
 */
export async function publishIfChanged(store: PublishStore, opts: PublishOptions & { force?: boolean } = {}): Promise<PublishIfChangedResult> {
  await store.signingKey();
  return store.tx(async (t: KbTx): Promise<PublishIfChangedResult> => {
    const p = await prepareVersion(t, opts);
    if (!opts.force && p.prev && content(p.prev) === content(p.index)) return { published: null, unchanged: p.prev.version };
    return { published: await commitVersion(t, p, opts), unchanged: null };
  });
}

/** The next index from the store's tasks and the latest version: checked and validated, not stored. */
async function prepareVersion(store: PublishTx, opts: PublishOptions): Promise<Prepared> {
  const tasks = opts.tasks ?? (await store.listTasks());
  if (!tasks.length) throw new NotFoundError('nothing to publish: the KB has no tasks (register one with "sedna-ll kb task add MODEL.onnx --task ID")');
  for (const t of tasks) {
    const size = await store.blobs.size(t.model_sha);
    if (size === null) throw new NotFoundError(`task "${t.id}": model blob ${t.model_sha} is missing from the KB store`);
    if (size !== t.model_size) throw new ReportedError(`task "${t.id}": model blob ${t.model_sha} has ${size} bytes, the task says ${t.model_size}`);
    const misfit = imageShapeMismatch(t.preprocessing, t.inputs[0]?.shape ?? []);
    if (misfit) throw new ReportedError(`task "${t.id}": ${misfit}`);
  }
  // reserves n until the transaction ends (a concurrent publisher waits, then takes n + 1)
  const n = await store.nextVersion();
  const last = n > 1 ? n - 1 : null;
  const prevFiles = last !== null ? await store.readVersionIndex(last) : null;
  const prev = prevFiles ? (JSON.parse(prevFiles.bytes.toString('utf8')) as TaskIndex) : null;
  const index: TaskIndex = {
    format: INDEX_FORMAT,
    version: n,
    created_at: new Date().toISOString(),
    parent: last,
    origin: 'kb',
    tasks: tasks.map(taskEntry),
    allocation: opts.allocation ?? defaultAllocation(tasks, prev),
    unseen: opts.unseen ?? prev?.unseen ?? DEFAULT_UNSEEN,
    hard_examples: opts.hard_examples ?? prev?.hard_examples ?? DEFAULT_HARD,
    ...(opts.notes ? { notes: opts.notes } : {}),
  };
  try {
    validateIndex(index, `KB version ${n}`);
  } catch (e) {
    throw new ReportedError((e as Error).message);
  }
  return { tasks, index, prev };
}

/** Sign and store a prepared index as the next version; point the channel at it. */
async function commitVersion(store: PublishTx, { tasks, index }: Prepared, opts: PublishOptions): Promise<PublishResult> {
  // the key read here, after nextVersion took the version lock: a `kb keys rotate` (which
  // takes the same lock) either committed before (the new key signs) or waits for this one
  const privateKey = await store.signingKey();
  const n = index.version;
  const bytes = Buffer.from(JSON.stringify(index, null, 2) + '\n', 'utf8');
  const sig = signBytes(bytes, privateKey);
  const channel = opts.channel === undefined ? 'stable' : opts.channel;
  const version = await store.addVersion(
    { n, created_at: Date.now(), parent: index.parent, channel, tasks: tasks.length, notes: opts.notes ?? null },
    bytes,
    sig,
    tasks.map((t) => t.model_sha),
  );
  await store.logEvent('publish', { version: n, channel, tasks: tasks.map((t) => ({ id: t.id, sha: t.model_sha })) });
  return { version, index, bytes, sig };
}
