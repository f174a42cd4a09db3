// sedna-ll's lifelong-learning loop, driven in-process through the same modules the CLI
// commands call (no child processes, so a 20-site run fits in minutes):
//   kb init / kb device add      src/kb/init.ts, src/kb/devices.ts
//   kb serve                     src/kb/server.ts (real HTTP on 127.0.0.1, port 0)
//   init (edge)                  src/store/init-home.ts
//   kb samples import            src/kb/samples-io.ts importSamples (round 0's initial data)
//   infer                        src/runtime/pipeline.ts (allocation, ONNX sessions, hard-example
//                                filters, unseen detection, outbox logging)
//   sync                         src/sync/run.ts runSync (push outbox, push labels, pull, activate)
//   kb label import              src/kb/samples-io.ts importLabels (the annotator stand-in)
//   kb train                     LEARN's training round (passed in as `kbTrain`)
// Per round t >= 1 the edge infers that round's stream (site t's samples, all new, mixed with
// traffic from every site already known), uploads what its filters keep, an annotator labels
// the uploads with the dataset's labels, the KB trains and publishes, the edge pulls and
// activates. After each round every site's test set goes through the edge's active version
// (with its site attribute, like production traffic), which fills row t of the matrix R.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normaliseAttrs } from '../../src/format/attrs.js';
import type { TaskEntry, TaskIndex } from '../../src/format/index-manifest.js';
import type { KbStore } from '../../src/kb/store.js';
import { inputFor } from '../../src/runtime/preprocess.js';
import { f32Bytes, type Sample } from '../../src/runtime/sample.js';
import { mulberry32 } from '../../src/random.js';
import { top2, normalisedEntropy } from '../../src/runtime/filters.js';
import { sqDistance } from '../../src/format/allocate.js';
import { initKb } from '../../src/kb/init.js';
import { openKbStore } from '../../src/kb/open.js';
import { addDevice } from '../../src/kb/devices.js';
import { startKbServer } from '../../src/kb/server.js';
import { importLabels, importSamples } from '../../src/kb/samples-io.js';
import { initHome } from '../../src/store/init-home.js';
import { runSync } from '../../src/sync/run.js';
import { activateWithTrial } from '../../src/rollout/trial.js';
import { openEdgeDb, kvGet, type DB } from '../../src/store/db.js';
import { homePaths, loadConfig, type HomePaths } from '../../src/store/home.js';
import { Outbox } from '../../src/store/outbox.js';
import { activeVersion } from '../../src/store/versions.js';
import { Pipeline } from '../../src/runtime/pipeline.js';
import { SessionCache } from '../../src/runtime/sessions.js';
import { loadRuntimeState, type RuntimeState } from '../../src/runtime/state.js';
import { DIM, LABELS, selectSamples, taskTraffic, type Samples, type Scenario } from './mnist.js';
import { evaluateNewDomain, type Domain, type EdgeLine, type NewDomainResult } from './new-domain.js';

/** LEARN's `kb train` as a function: one training round over the KB's labelled samples. */
export type KbTrain = (ctx: { store: KbStore; kbDir: string; round: number; seed: number }) => Promise<KbTrainOutcome>;

export interface KbTrainOutcome {
  /** version published by this round, null when nothing changed */
  version: number | null;
  /** per-task outcome lines for the report (accepted/rejected, metrics) */
  summary?: unknown;
}

export interface SednaLoopOptions {
  scenario: Scenario;
  /** samples per already-known site in each round's stream */
  trafficPerSite: number;
  /** working directory (KB data + edge home) */
  work: string;
  seed: number;
  kbTrain: KbTrain;
  /** evaluate unseen-site detection at each round (AUROC etc.) */
  detection: boolean;
  /** test samples per site used for detection (positives: new site; negatives: known sites) */
  detectionPerSite: number;
  /** after the last round: new-domain images vs the known sites' test digits (new-domain.ts) */
  newDomains?: Domain[];
  log: (msg: string) => void;
}

export interface RoundRecord {
  round: number;
  site: string;
  inferred: number;
  uploaded: number;
  uploaded_new_site: number;
  uploaded_known_sites: number;
  uploaded_unseen: number;
  uploaded_hard: number;
  labelled: number;
  /** KB version published by this round's training (null: none) */
  published: number | null;
  /** edge's active version after the round's pull */
  active: string | null;
  tasks: string[];
  train_ms: number;
  /** wall time of the round's parts: edge inference of the stream, sync runs, evaluation of R's row, detection */
  infer_ms: number;
  sync_ms: number;
  eval_ms: number;
  detect_ms: number;
  round_ms: number;
  kb_summary?: unknown;
  /** model files the edge downloaded in the round's pull */
  models_downloaded?: number;
}

export interface DetectionScores {
  /** positives: samples of the site about to be learned; negatives: samples of known sites */
  pos: number[];
  neg: number[];
}

export interface DetectionRound {
  round: number;
  site: string;
  /** continuous versions of the edge's detector and of plain max-softmax */
  scores: Record<string, DetectionScores>;
  /** the edge's binary unseen verdict as an operating point */
  edge_flag: { tpr: number; fpr: number };
  /** the index's unseen config when measured */
  unseen_config: TaskIndex['unseen'];
  allocation_method: string;
}

export interface SednaLoopResult {
  R: number[][];
  rounds: RoundRecord[];
  /** the labelled samples the KB received per round (round 0: the import) */
  roundData: Samples[];
  detection: DetectionRound[];
  new_domain: NewDomainResult | null;
  totals: { inferred: number; uploaded: number };
  kb_url: string;
}

interface Parsed {
  task: string;
  unseen_scores?: Record<string, number | boolean>;
  label: string | null;
  scores: number[];
  unseen: boolean;
  hard: boolean;
  logged: boolean;
  sample_id?: string;
}

function sampleOf(x: Float32Array, id: string, attrs: Record<string, string>): Sample {
  const vec = x;
  return { where: id, id, attrs, task: null, vec, image: null, payloadKind: 'f32', payload: () => f32Bytes(vec) };
}

/** Rows of a sample set as pipeline items (views, no copies). */
function itemsOf(s: Samples, prefix: string, site: string | null): Sample[] {
  const attrs = site === null ? {} : normaliseAttrs({ site });
  const out: Sample[] = new Array(s.n);
  for (let i = 0; i < s.n; i++) out[i] = sampleOf(s.x.subarray(i * DIM, (i + 1) * DIM), `${prefix}-${i}`, attrs);
  return out;
}

export async function runSednaLoop(o: SednaLoopOptions): Promise<SednaLoopResult> {
  const { scenario: sc, log } = o;
  const T = sc.tasks.length;
  const kbDir = join(o.work, 'kb');
  const home = join(o.work, 'edge');
  mkdirSync(o.work, { recursive: true });

  // ---- cloud: kb init, kb device add, kb serve ----
  const kb = await initKb(kbDir);
  const store = await openKbStore(kbDir);
  const { token } = await addDevice(store, 'bench-edge');
  const server = await startKbServer(store, { host: '127.0.0.1', port: 0 });

  // ---- edge: init with the KB's url, token and public key ----
  writeFileSync(join(o.work, 'token'), token + '\n', { mode: 0o600 });
  writeFileSync(join(o.work, 'kb.pub'), kb.public_key);
  initHome({ home, deviceId: 'bench-edge', kbUrl: server.url, tokenFile: join(o.work, 'token'), kbKeyFile: join(o.work, 'kb.pub') });
  const paths = homePaths(home);
  const config = loadConfig(home);
  const db = openEdgeDb(paths.db);
  const sessions = new SessionCache(paths.models);

  let syncMs = 0;
  const sync = async (what: string) => {
    const ts = performance.now();
    const r = await runSync({ home, activate: activateWithTrial, progress: false });
    syncMs += performance.now() - ts;
    if (r.exit !== 0) throw new Error(`sync (${what}) exited ${r.exit}: ${r.message ?? ''}`);
    return r.summary;
  };

  /** run samples through the edge's active version; log=true writes hard/unseen to the outbox */
  const infer = async (items: Sample[], logToOutbox: boolean, seed: number): Promise<{ parsed: Parsed[]; state: RuntimeState }> => {
    const state = loadRuntimeState(paths, db);
    const pipeline = new Pipeline(sessions, { db: logToOutbox ? db : null, sink: logToOutbox ? new Outbox(db, paths, config) : null, seed });
    const parsed: Parsed[] = new Array(items.length);
    const W = 256; // the infer command's default --batch
    for (let s = 0; s < items.length; s += W) {
      const r = await pipeline.run(state, items.slice(s, s + W));
      r.outcomes.forEach((oc, k) => {
        if (oc.error !== undefined) throw new Error(`infer ${oc.where}: ${oc.error}`);
        parsed[s + k] = JSON.parse(oc.line) as Parsed;
      });
    }
    return { parsed, state };
  };

  const labelIndex = (l: string | null) => (l === null ? -1 : LABELS.indexOf(l));

  const evaluateRow = async (round: number): Promise<number[]> => {
    const row: number[] = [];
    for (let j = 0; j < T; j++) {
      const t = sc.tasks[j];
      const { parsed } = await infer(itemsOf(t.test, `eval-${round}-${j}`, t.site), false, 1);
      let ok = 0;
      for (let i = 0; i < t.test.n; i++) if (labelIndex(parsed[i].label) === t.test.y[i]) ok++;
      row.push(ok / t.test.n);
    }
    return row;
  };

  const R: number[][] = [];
  const rounds: RoundRecord[] = [];
  const roundData: Samples[] = [];
  const detection: DetectionRound[] = [];
  let newDomain: NewDomainResult | null = null;
  let inferredTotal = 0;
  let uploadedTotal = 0;

  try {
    // ---- round 0: the initial KB from site 0's labelled data (kb samples import + kb train) ----
    {
      const t0 = performance.now();
      const first = sc.tasks[0];
      const file = join(o.work, 'initial.jsonl');
      const lines: string[] = [];
      for (let i = 0; i < first.train.n; i++) {
        lines.push(JSON.stringify({ x: Array.from(first.train.x.subarray(i * DIM, (i + 1) * DIM), (v) => Math.round(v * 1e6) / 1e6), label: LABELS[first.train.y[i]], attrs: { site: first.site } }));
      }
      writeFileSync(file, lines.join('\n') + '\n');
      const imp = await importSamples(store, file, { strict: true, onBad: (l, r) => log(`import line ${l}: ${r}`) });
      const tt = performance.now();
      const tr = await o.kbTrain({ store, kbDir, round: 0, seed: o.seed });
      const trainMs = performance.now() - tt;
      await sync('pull initial');
      const te = performance.now();
      R.push(await evaluateRow(0));
      const evalMs = performance.now() - te;
      roundData.push(first.train);
      const active = activeId(db);
      rounds.push({
        round: 0,
        site: first.site,
        inferred: 0,
        uploaded: 0,
        uploaded_new_site: 0,
        uploaded_known_sites: 0,
        uploaded_unseen: 0,
        uploaded_hard: 0,
        labelled: imp.imported,
        published: tr.version,
        active,
        tasks: activeTasks(paths, db),
        train_ms: trainMs,
        infer_ms: 0,
        sync_ms: syncMs,
        eval_ms: evalMs,
        detect_ms: 0,
        round_ms: performance.now() - t0,
        kb_summary: tr.summary,
      });
      log(`round 0: imported ${imp.imported} samples of ${first.site}, KB v${tr.version}, acc ${fmtRow(R[0], 0)}`);
    }

    for (let t = 1; t < T; t++) {
      const t0 = performance.now();
      syncMs = 0;
      const site = sc.tasks[t];
      // ---- the round's stream: every sample of the new site + traffic from known sites ----
      const parts: { s: Samples; site: string; task: number }[] = [{ s: site.train, site: site.site, task: t }];
      for (let j = 0; j < t; j++) parts.push({ s: taskTraffic(sc, j, t, o.trafficPerSite), site: sc.tasks[j].site, task: j });
      const items: Sample[] = [];
      const truth: number[] = [];
      const from: number[] = [];
      for (const p of parts) {
        const its = itemsOf(p.s, `r${t}-${p.site}`, p.site);
        for (let i = 0; i < p.s.n; i++) {
          items.push(its[i]);
          truth.push(p.s.y[i]);
          from.push(p.task);
        }
      }
      // shuffle: sites arrive interleaved, as on a real gateway
      const rand = mulberry32(o.seed * 7777 + t);
      for (let i = items.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [items[i], items[j]] = [items[j], items[i]];
        [truth[i], truth[j]] = [truth[j], truth[i]];
        [from[i], from[j]] = [from[j], from[i]];
      }

      // ---- unseen-site detection, measured before the site is learned ----
      const td = performance.now();
      if (o.detection) detection.push(await measureDetection(t));
      const detectMs = performance.now() - td;

      // ---- edge: infer (hard + unseen samples land in the outbox) ----
      const ti = performance.now();
      const { parsed } = await infer(items, true, o.seed + t);
      const inferMs = performance.now() - ti;
      const uploadedIdx: number[] = [];
      let unseenN = 0;
      let hardN = 0;
      let newSite = 0;
      for (let i = 0; i < parsed.length; i++) {
        if (!parsed[i].logged) continue;
        uploadedIdx.push(i);
        if (parsed[i].unseen) unseenN++;
        if (parsed[i].hard) hardN++;
        if (from[i] === t) newSite++;
      }
      // ---- sync: push the outbox ----
      await sync('push');
      // ---- annotator stand-in: kb label import with the dataset's labels, by sample id ----
      const csv = ['id,label', ...uploadedIdx.map((i) => `${parsed[i].sample_id},${LABELS[truth[i]]}`)].join('\n') + '\n';
      const labelFile = join(o.work, `labels-${t}.csv`);
      writeFileSync(labelFile, csv);
      const lab = await importLabels(store, labelFile, { strict: true, onBad: (l, r) => log(`labels line ${l}: ${r}`) });
      // what the KB now holds from this round, for the baselines (same data)
      const ux = new Float32Array(uploadedIdx.length * DIM);
      const uy = new Uint8Array(uploadedIdx.length);
      uploadedIdx.forEach((i, k) => {
        ux.set(items[i].vec!, k * DIM);
        uy[k] = truth[i];
      });
      roundData.push({ n: uploadedIdx.length, x: ux, y: uy });
      // ---- kb train, then sync pulls and activates the new version ----
      const tt = performance.now();
      const tr = await o.kbTrain({ store, kbDir, round: t, seed: o.seed + t });
      const trainMs = performance.now() - tt;
      const pulled = await sync('pull');
      const te = performance.now();
      R.push(await evaluateRow(t));
      const evalMs = performance.now() - te;
      inferredTotal += items.length;
      uploadedTotal += uploadedIdx.length;
      rounds.push({
        round: t,
        site: site.site,
        inferred: items.length,
        uploaded: uploadedIdx.length,
        uploaded_new_site: newSite,
        uploaded_known_sites: uploadedIdx.length - newSite,
        uploaded_unseen: unseenN,
        uploaded_hard: hardN,
        labelled: lab.newly_labelled,
        published: tr.version,
        active: activeId(db),
        tasks: activeTasks(paths, db),
        train_ms: trainMs,
        infer_ms: inferMs,
        sync_ms: syncMs,
        eval_ms: evalMs,
        detect_ms: detectMs,
        round_ms: performance.now() - t0,
        kb_summary: tr.summary,
        models_downloaded: pulled.models_downloaded,
      });
      log(
        `round ${t}: ${site.site}: inferred ${items.length}, uploaded ${uploadedIdx.length} (${newSite} new-site), KB v${tr.version ?? '-'}, ` +
          `active ${activeId(db)}, s: train ${sec(trainMs)} infer ${sec(inferMs)} sync ${sec(syncMs)} eval ${sec(evalMs)} detect ${sec(detectMs)}; acc seen ${mean(R[t].slice(0, t + 1)).toFixed(4)}`,
      );
    }
    if (o.newDomains) newDomain = await measureNewDomain(o.newDomains);
  } finally {
    await sessions.dispose();
    db.close();
    await server.close();
    await store.close();
  }
  return { R, rounds, roundData, detection, new_domain: newDomain, totals: { inferred: inferredTotal, uploaded: uploadedTotal }, kb_url: server.url };

  /** The final KB version on new-domain images vs every site's test digits, no attributes. */
  async function measureNewDomain(domains: Domain[]): Promise<NewDomainResult> {
    const n = o.detectionPerSite;
    const neg = sc.tasks.flatMap((t, j) => itemsOf(selectSamples(t.test, range(Math.min(n, t.test.n))), `nd-neg-${j}`, null));
    const pos = domains.flatMap((d) => itemsOf({ n: d.n, x: d.x, y: new Uint8Array(d.n) }, `nd-${d.name}`, null));
    const { parsed, state } = await infer([...neg, ...pos], false, 1);
    const rows = (items: Sample[], off: number) => items.map((s, i) => ({ line: parsed[off + i] as unknown as EdgeLine, x: s.vec! }));
    let off = neg.length;
    const byDomain = domains.map((d) => {
      const r = { name: d.name, rows: rows(pos.slice(off - neg.length, off - neg.length + d.n), off) };
      off += d.n;
      return r;
    });
    return evaluateNewDomain(state.index, rows(neg, 0), byDomain);
  }

  /**
   * Site t is about to appear; the edge knows sites 0..t-1. Positives: site t's test samples,
   * negatives: known sites' test samples, all WITHOUT the site attribute (with it, the "attr"
   * method flags a new site perfectly). Scores, higher = more likely unseen:
   *   edge:         the edge's configured detector as one number: per method a ratio that is
   *                 > 1 exactly when that method fires (confidence t/p1, entropy H/t,
   *                 distance d/radius), combined by max ("any") or min ("all")
   *   max_softmax:  1 - max p of the model the sample was allocated to (Hendrycks & Gimpel 2017)
   *   entropy:      normalised entropy of that model's output
   *   distance:     distance to the allocated task's centroid over its radius (when calibrated)
   */
  async function measureDetection(t: number): Promise<DetectionRound> {
    const n = o.detectionPerSite;
    const neg: Sample[] = [];
    for (let j = 0; j < t; j++) neg.push(...itemsOf(selectSamples(sc.tasks[j].test, range(Math.min(n, sc.tasks[j].test.n))), `det-neg-${t}-${j}`, null));
    const pos = itemsOf(selectSamples(sc.tasks[t].test, range(Math.min(n, sc.tasks[t].test.n))), `det-pos-${t}`, null);
    const all = [...pos, ...neg];
    const { parsed, state } = await infer(all, false, 1);
    const index = state.index;
    const cfg = index.unseen;
    const byId = new Map<string, TaskEntry>(index.tasks.map((e) => [e.id, e]));
    const S: Record<string, DetectionScores> = { edge: { pos: [], neg: [] }, max_softmax: { pos: [], neg: [] }, entropy: { pos: [], neg: [] } };
    const hasDist = index.tasks.some((e) => e.centroid && e.radius !== undefined);
    if (hasDist) S.distance = { pos: [], neg: [] };
    let tp = 0;
    let fp = 0;
    all.forEach((s, i) => {
      const p = parsed[i];
      const isPos = i < pos.length;
      const task = byId.get(p.task)!;
      const probs = p.scores;
      const p1 = top2(probs).p1;
      const H = normalisedEntropy(probs);
      let d: number | null = null;
      if (task.centroid && task.radius !== undefined) {
        const x = inputFor(s, task, s.vec!.length);
        d = Math.sqrt(sqDistance(x, task.centroid)) / Math.max(task.radius, 1e-12);
      }
      const ratios: number[] = [];
      for (const m of cfg.methods) {
        if (m === 'confidence') {
          const th = task.thresholds?.confidence ?? cfg.confidence;
          if (th !== undefined) ratios.push(th / Math.max(p1, 1e-12));
        } else if (m === 'entropy') {
          const th = task.thresholds?.entropy ?? cfg.entropy;
          if (th !== undefined) ratios.push(H / Math.max(th, 1e-12));
        } else if (m === 'distance' && d !== null) ratios.push(d);
        else if (m === 'features' && typeof p.unseen_scores?.features === 'number' && task.thresholds?.features) ratios.push(p.unseen_scores.features / task.thresholds.features);
      }
      const edge = ratios.length === 0 ? 0 : cfg.combine === 'all' ? Math.min(...ratios) : Math.max(...ratios);
      const put = (k: string, v: number) => (isPos ? S[k].pos : S[k].neg).push(v);
      put('edge', edge);
      put('max_softmax', 1 - p1);
      put('entropy', H);
      if (hasDist) put('distance', d ?? 0);
      if (p.unseen) isPos ? tp++ : fp++;
    });
    return {
      round: t,
      site: sc.tasks[t].site,
      scores: S,
      edge_flag: { tpr: tp / pos.length, fpr: fp / neg.length },
      unseen_config: cfg,
      allocation_method: index.allocation.method,
    };
  }
}

const sec = (ms: number) => (ms / 1000).toFixed(1);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const fmtRow = (r: number[], upto: number) => r.slice(0, upto + 1).map((v) => v.toFixed(3)).join(' ');

function activeId(db: DB): string | null {
  return kvGet(db, 'active_version') ?? null;
}

function activeTasks(paths: HomePaths, db: DB): string[] {
  return activeVersion(paths, db)?.index.tasks.map((t) => t.id) ?? [];
}
