// The KB's unseen-detection settings (`kb train|publish --unseen M,.. --combine any|all --fpr F`)
// and the per-task calibration they drive. Settings given on a command line are kept in the KB
// (meta learn.unseen), so a later `kb train` without flags keeps them; every published index
// carries them, and every task's thresholds are calibrated for them: when they change, every
// task is recalibrated (not only the ones a round retrains) before the next version is published.
import { UNSEEN_METHODS, type TaskIndex, type UnseenConfig, type UnseenMethod, type UnseenThresholds } from '../format/index-manifest.js';
import type { ModelStore, SampleStore, SettingsStore, TaskRecord, VersionStore } from '../kb/store.js';
import { calibrate, type Calibration } from './calibrate.js';
import { loadSamples, preprocess, type LoadedSample } from './dataset.js';
import { loadTaskModel, stack, type ScoringModel } from './models.js';

export const META_UNSEEN = 'learn.unseen';
export const DEFAULT_FPR = 0.05;
/** what a KB uses before anyone set --unseen */
export const DEFAULT_KB_UNSEEN: UnseenConfig = { methods: ['attr', 'confidence', 'distance'], combine: 'any', confidence: 0.5, fpr: DEFAULT_FPR };

export interface UnseenRequest {
  methods?: UnseenMethod[];
  combine?: 'any' | 'all';
  fpr?: number;
}

/** "attr,confidence" -> methods; throws an Error naming the bad one. */
export function parseUnseenMethods(text: string): UnseenMethod[] {
  const out: UnseenMethod[] = [];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(UNSEEN_METHODS as readonly string[]).includes(part)) throw new Error(`--unseen "${text}": unknown method "${part}" (methods: ${UNSEEN_METHODS.join(', ')})`);
    if (!out.includes(part as UnseenMethod)) out.push(part as UnseenMethod);
  }
  if (out.length === 0) throw new Error(`--unseen "${text}": name at least one method (${UNSEEN_METHODS.join(', ')})`);
  return out;
}

export function parseCombine(text: string): 'any' | 'all' {
  if (text !== 'any' && text !== 'all') throw new Error(`--combine "${text}": expected any or all`);
  return text;
}

/**
 * The settings in force: what was asked now, else what the KB keeps, else the latest index's,
 * else the defaults. Stores nothing: `keep` is the meta to store when settings were asked (the
 * caller writes it together with what it calibrates for them, e.g. in the round's transaction).
 * changed: they differ from what the latest index says (so every task's thresholds must be
 * recalibrated and a version published).
 */
export async function resolveUnseen(store: SettingsStore, req: UnseenRequest, prev: TaskIndex | null): Promise<{ config: UnseenConfig; changed: boolean; keep: Record<string, string> }> {
  const kept = await store.getMeta(META_UNSEEN);
  const base: UnseenConfig = kept ? (JSON.parse(kept) as UnseenConfig) : (prev?.unseen ?? DEFAULT_KB_UNSEEN);
  const config: UnseenConfig = {
    ...base,
    methods: req.methods ?? base.methods,
    combine: req.combine ?? base.combine,
  };
  const fpr = req.fpr ?? base.fpr;
  if (fpr !== undefined) config.fpr = fpr;
  else delete config.fpr; // an index from before --fpr was recorded: calibrated at DEFAULT_FPR
  const keep: Record<string, string> = req.methods || req.combine || req.fpr !== undefined ? { [META_UNSEEN]: JSON.stringify(config) } : {};
  const was = prev?.unseen;
  const changed = !!prev && (!was || was.methods.join(',') !== config.methods.join(',') || was.combine !== config.combine || was.fpr !== config.fpr);
  return { config, changed, keep };
}

/** A task's calibration for its served model, from its train (statistics) and held-out (thresholds) samples. */
export async function calibrateTask(served: ScoringModel, train: LoadedSample[], heldout: LoadedSample[], config: UnseenConfig): Promise<Calibration> {
  const P = served.preprocessing;
  const trainRows = train.map((s) => preprocess(s.raw, P));
  const heldRows = heldout.map((s) => preprocess(s.raw, P));
  const d = (trainRows[0] ?? heldRows[0])?.length ?? 0;
  const probs = await served.predict(heldout.map((s) => s.raw));
  const ft = served.features(train.map((s) => s.raw));
  const fh = ft ? served.features(heldout.map((s) => s.raw)) : null;
  const labelIdx = new Map(served.labels.map((l, i) => [l, i]));
  const features = ft && fh ? { output: ft.output, dim: ft.dim, train: ft.F, held: fh.F, trainClasses: train.map((s) => labelIdx.get(s.rec.label!) ?? -1) } : undefined;
  return calibrate(stack(trainRows, d), train.length, stack(heldRows, d), heldout.length, probs, served.labels.length, d, config.fpr ?? DEFAULT_FPR, { unseen: config, features });
}

/** The task record fields a calibration sets. The fallback has no centroid: it must never win nearest-centroid allocation. */
export function calibratedFields(cal: Calibration, fallback: boolean): Pick<TaskRecord, 'centroid' | 'radius' | 'thresholds' | 'features'> {
  const thresholds: UnseenThresholds = { confidence: cal.confidence, entropy: cal.entropy };
  if (!fallback) thresholds.distance = cal.distance;
  if (cal.featuresThreshold !== null) thresholds.features = cal.featuresThreshold;
  return { centroid: fallback ? null : cal.centroid, radius: fallback ? null : cal.radius, thresholds, features: cal.features };
}

/**
 * Recalibrate every task except `skip` (tasks a round just calibrated) for `config`, from the
 * samples the last round assigned to them (their persisted train / held-out split); the
 * fallback uses every labelled sample. Returns the ids of the tasks it updated.
 */
export async function recalibrateTasks(store: SettingsStore & ModelStore & SampleStore & VersionStore, config: UnseenConfig, skip: ReadonlySet<string> = new Set()): Promise<string[]> {
  const tasks = (await store.listTasks()).filter((t) => !skip.has(t.id));
  if (tasks.length === 0) return [];
  const { samples } = await loadSamples(store);
  const labelled = samples.filter((s) => s.rec.label !== null && s.rec.split !== null);
  const done: string[] = [];
  for (const t of tasks) {
    const mine = t.fallback ? labelled : labelled.filter((s) => s.rec.assigned_task === t.id);
    const train = mine.filter((s) => s.rec.split === 'train');
    const heldout = mine.filter((s) => s.rec.split === 'heldout');
    if (train.length === 0 && heldout.length === 0) continue; // a registered model without data: nothing to calibrate from
    let served: ScoringModel;
    try {
      served = await loadTaskModel(store, t);
      const cal = await calibrateTask(served, train, heldout, config);
      await store.putTask({ ...t, ...calibratedFields(cal, t.fallback), updated_at: Date.now() });
      done.push(t.id);
    } catch {
      // a model that cannot score its samples (another input size) keeps its thresholds
    }
  }
  return done;
}

/**
 * `kb publish`: the settings in force (asked ones stored), with every task recalibrated when
 * they differ from the latest version's. Returns the config the new index carries. The asked
 * settings are stored BEFORE the tasks are recalibrated for them: a publish that fails later
 * leaves thresholds and settings that agree (the next publish finds them changed and publishes).
 */
export async function applyUnseenSettings(store: SettingsStore & ModelStore & SampleStore & VersionStore, req: UnseenRequest): Promise<UnseenConfig> {
  const latest = await store.latestVersion();
  const files = latest ? await store.readVersionIndex(latest.n) : null;
  const prev = files ? (JSON.parse(files.bytes.toString('utf8')) as TaskIndex) : null;
  const { config, changed, keep } = await resolveUnseen(store, req, prev);
  for (const [k, v] of Object.entries(keep)) await store.setMeta(k, v);
  if (changed) await recalibrateTasks(store, config);
  return config;
}
