// The inference pipeline over windows of samples (infer streams windows; serve makes one
// window per request). prepare(), per window:
//   allocate each sample to a task -> model input per the task's preprocessing -> one batched
//   onnxruntime run per task -> probabilities (softmax for logits, validated) -> hard-example
//   filters and unseen-task detection; lines of samples with nothing to log are final here.
// commit(), over one or more prepared windows (group commit: at a low hard rate infer commits
// every few windows, not every window, which is most of the cost on a slow SD card):
//   one transaction logging the hard/unseen samples, with the filters' rate caps counted in the
//   same transaction -> the remaining output lines, in input order.
// A line saying "logged": true is built only after that transaction committed.
import type { TaskEntry } from '../format/index-manifest.js';
import { BadRecordError, ReportedError } from '../errors.js';
import { mulberry32 } from '../random.js';
import { runInTurn } from '../onnx/ort.js';
import type { DB } from '../store/db.js';
import type { Allocation } from '../format/allocate.js';
import { filterFires, invalidBoxes, invalidProbabilities, normalisedEntropy, softmaxInPlace, type Box } from './filters.js';
import type { LogRecord, LogSink } from './log-sink.js';
import { inputFor } from './preprocess.js';
import { RateCapCounter } from './rate-caps.js';
import { recordTrialOutcomes } from '../rollout/state.js';
import type { Item, Sample } from './sample.js';
import type { SessionCache } from './sessions.js';
import type { RuntimeState } from './state.js';
import { detectUnseen, wantsFeatures, type UnseenScores, type UnseenVerdict } from './unseen.js';
import { NoTaskForAttrError } from '../format/allocate.js';

export interface PipelineOptions {
  /** the edge DB (rate caps); null with --no-log */
  db: DB | null;
  /** where hard/unseen samples go; null with --no-log */
  sink: LogSink | null;
  /** seed of the random filter's PRNG */
  seed: number;
  /** run the models without onnxruntime-node's event-loop turn (serve: onnx/ort.ts runInTurn) */
  runInTurn?: boolean;
}

/** One input's outcome: an output line (no newline) or the reason it was skipped. */
export type Outcome = { line: string; logged: boolean; error?: undefined } | { error: string; where: string; id: string | number | null; line?: undefined };

export interface WindowResult {
  /** per input (sparse for compact windows: errors and candidates only) */
  outcomes: Outcome[];
  logged: number;
  /** compact windows: every output line of the window, in input order */
  text: Buffer | null;
  /** samples that produced a line */
  ok: number;
}

/** A window after inference, waiting for commit(). Holds only what the lines and logging need. */
export interface PreparedWindow {
  state: RuntimeState;
  /** per input: final outcome, or undefined while the sample waits for logging (see scored) */
  outcomes: (Outcome | undefined)[];
  /** samples with something to log (a filter fired or unseen), by input index */
  scored: (Scored | undefined)[];
  /** inputs from `end` on are dropped: --strict stopped at input `end` (stopped = true) */
  end: number;
  stopped: boolean;
  /**
   * compact windows (prepare(.., compact = true)): the output text in input order, as encoded
   * segments around the candidates (segments[k] comes before the k-th candidate's line); the
   * outcomes then hold only errors and candidates. null: every line is in outcomes.
   */
  segments: Buffer[] | null;
  /** number of samples in scored: what a commit of this window would write */
  candidates: number;
  /** for the rollout trial: samples inferred, and of those hard or unseen */
  nOk: number;
  nBad: number;
}

interface Scored {
  i: number;
  s: Sample;
  /** null: no task serves the sample (an unknown site and no fallback); it is printed and logged unseen */
  task: TaskEntry | null;
  /** probabilities (empty for detection outputs) */
  probs: Float32Array;
  boxes: Box[] | null;
  label: string | null;
  /** indexes of the filters that call the sample hard */
  fired: number[];
  unseen: UnseenVerdict;
  x: Float32Array;
}

const EMPTY: Float32Array = new Float32Array(0);

/** Scores rounded to 6 decimals: float32 carries ~7 digits, the rest is noise that bloats lines. */
function scoresJson(p: ArrayLike<number>): string {
  let s = '[';
  for (let i = 0; i < p.length; i++) {
    if (i) s += ',';
    s += Math.round(p[i] * 1e6) / 1e6;
  }
  return s + ']';
}

/** {"confidence":0.42,...}: the unseen methods' scores, already rounded by detectUnseen. */
function scoresObjectJson(s: UnseenScores): string {
  let out = '{';
  for (const k in s) out += `${out.length > 1 ? ',' : ''}"${k}":${s[k as keyof UnseenScores]}`;
  return out + '}';
}

const NO_TASK_UNSEEN: UnseenVerdict = { unseen: true, reason: 'attr', scores: { attr: true } };

/** Most prepared windows held before a commit: bounds memory and how late a line is printed. */
export const MAX_PENDING_WINDOWS = 8;

/**
 * Group-commit policy of a stream: commit when nothing waits to be logged (the lines are final,
 * print them), when a batch worth of samples waits, or when MAX_PENDING_WINDOWS are held.
 * At 100 % hard that is every window; at 10 %, every 8 windows instead of every window.
 */
export function shouldCommit(pendingWindows: number, pendingCandidates: number, batch: number): boolean {
  return pendingCandidates === 0 || pendingCandidates >= batch || pendingWindows >= MAX_PENDING_WINDOWS;
}

export class Pipeline {
  private readonly rng: () => number;
  private caps: { state: RuntimeState; counter: RateCapCounter } | null = null;

  constructor(
    private readonly sessions: SessionCache,
    private readonly opts: PipelineOptions,
  ) {
    this.rng = mulberry32(opts.seed);
  }

  private capsFor(state: RuntimeState): RateCapCounter | null {
    if (!this.opts.db || !RateCapCounter.needed(state.filters)) return null;
    if (this.caps?.state !== state) this.caps = { state, counter: new RateCapCounter(this.opts.db, state.filters, state.filterNames) };
    return this.caps.counter;
  }

  /** prepare + commit of one window (serve, tests). */
  async run(state: RuntimeState, items: Item[], stopAtFirstError = false): Promise<WindowResult> {
    return this.commit([await this.prepare(state, items, stopAtFirstError)])[0];
  }

  /**
   * Infer one window. With stopAtFirstError (--strict) samples after the first bad one are
   * neither logged nor printed; the caller then stops with that error.
   */
  async prepare(state: RuntimeState, items: Item[], stopAtFirstError = false, compact = false): Promise<PreparedWindow> {
    const n = items.length;
    const outcomes: (Outcome | undefined)[] = new Array(n);
    const fail = (i: number, reason: string) => {
      const it = items[i];
      outcomes[i] = { error: reason, where: it.where, id: it.id };
    };

    // 1. allocate + model input, grouped per task (Map keeps first-seen task order)
    const scored: (Scored | undefined)[] = new Array(n);
    const groups = new Map<TaskEntry, { idx: number[]; allocs: Allocation[]; xs: Float32Array[] }>();
    for (let i = 0; i < n; i++) {
      const it = items[i];
      if (it.bad) {
        outcomes[i] = { error: it.reason, where: it.where, id: it.id };
        continue;
      }
      try {
        const alloc = state.table.allocate(it.attrs, it.task, (t) => inputFor(it, t, state.featuresOf(t)));
        const x = inputFor(it, alloc.task, state.featuresOf(alloc.task));
        let g = groups.get(alloc.task);
        if (!g) groups.set(alloc.task, (g = { idx: [], allocs: [], xs: [] }));
        g.idx.push(i);
        g.allocs.push(alloc);
        g.xs.push(x);
      } catch (e) {
        // a sample that cannot be fed (BadRecordError, or an error nobody raised on purpose, e.g.
        // from an image decoder) is reported and skipped; any other error of ours is fatal
        if (e instanceof ReportedError && !(e instanceof BadRecordError)) throw e;
        if (e instanceof NoTaskForAttrError) {
          // a new site and no fallback: no model runs, but the sample is what the KB needs most
          scored[i] = { i, s: it, task: null, probs: EMPTY, boxes: null, label: null, fired: [], unseen: NO_TASK_UNSEEN, x: EMPTY };
          continue;
        }
        fail(i, (e as Error).message);
      }
    }

    // 2. one batched run per task, then filters and unseen detection per sample
    const hasRandom = state.filters.some((f) => f.type === 'random');
    for (const [task, g] of groups) {
      const ms = await this.sessions.get(task);
      const k = g.idx.length;
      const F = ms.features;
      const batch = new Float32Array(k * F);
      for (let j = 0; j < k; j++) batch.set(g.xs[j], j * F);
      let out;
      // the "features" unseen method also needs the model's penultimate features (second output)
      const featName = wantsFeatures(state.index.unseen, task) ? task.features!.output : null;
      if (featName && !ms.session.outputNames.includes(featName)) {
        throw new ReportedError(`task "${task.id}": the index has feature statistics of output "${featName}" but the model has no such output (has ${ms.session.outputNames.join(', ')})`);
      }
      let feats: Float32Array | null = null;
      let featDim = 0;
      try {
        const feeds = { [ms.inputName]: new ms.ort.Tensor('float32', batch, [k, ...ms.sampleDims]) };
        const fetches = featName ? [ms.outputName, featName] : undefined;
        const res = this.opts.runInTurn ? await runInTurn(ms.session, feeds, fetches) : fetches ? await ms.session.run(feeds, fetches) : await ms.session.run(feeds);
        out = res[ms.outputName];
        if (featName) {
          const fo = res[featName];
          featDim = fo.dims.length === 2 ? (fo.dims[1] as number) : 0;
          if (featDim !== task.features!.dim) throw new Error(`features output "${featName}" has shape [${fo.dims.join(',')}], the index's statistics ${task.features!.dim} values per sample`);
          feats = fo.data as Float32Array;
        }
      } catch (e) {
        throw new ReportedError(`task "${task.id}": inference failed: ${((e as Error).message ?? String(e)).split('\n')[0]}`);
      }
      const data = out.data as Float32Array;
      const dims = out.dims;
      const detection = dims.length === 3 && dims[2] >= 5;
      if (!detection && dims.length !== 2) {
        throw new ReportedError(`task "${task.id}": output "${ms.outputName}" has shape [${dims.join(',')}]; expected [N, classes] or [N, boxes, >=5]`);
      }
      const logits = task.model.output_kind === 'logits';
      const labels = task.model.labels;
      for (let j = 0; j < k; j++) {
        const i = g.idx[j];
        const s = items[i] as Sample;
        let probs: Float32Array = EMPTY;
        let boxes: Box[] | null = null;
        let label: string | null = null;
        if (detection) {
          const B = dims[1] as number;
          const D = dims[2] as number;
          boxes = [];
          for (let b = 0; b < B; b++) boxes.push(data.subarray((j * B + b) * D, (j * B + b + 1) * D));
          const bad = invalidBoxes(boxes);
          if (bad) {
            fail(i, `task "${task.id}": invalid detection output: ${bad}`);
            continue;
          }
        } else {
          const K = dims[1] as number;
          probs = data.subarray(j * K, (j + 1) * K);
          if (logits) softmaxInPlace(probs);
          const bad = invalidProbabilities(probs);
          if (bad) {
            fail(i, `task "${task.id}": invalid ${logits ? 'softmax of logits' : 'probabilities'}: ${bad}`);
            continue;
          }
          let best = 0;
          for (let c = 1; c < K; c++) if (probs[c] > probs[best]) best = c;
          label = labels[best] ?? String(best);
        }
        const u = hasRandom ? this.rng() : 0;
        const fired: number[] = [];
        for (let f = 0; f < state.filters.length; f++) if (filterFires(state.filters[f], { probs, boxes, u })) fired.push(f);
        const x = g.xs[j];
        let unseen: UnseenVerdict;
        try {
          const a = g.allocs[j];
          unseen = detectUnseen(state.index.unseen, task, {
            unknownAttr: a.unknownAttr,
            probs,
            x: () => x,
            farDistance: a.farDistance ?? null,
            features: feats ? feats.subarray(j * featDim, (j + 1) * featDim) : null,
          });
        } catch (e) {
          fail(i, `task "${task.id}": ${(e as Error).message}`);
          continue;
        }
        scored[i] = { i, s, task, probs, boxes, label, fired, unseen, x };
      }
    }

    // 3. --strict: nothing after the first bad sample is logged or printed
    let end = n;
    if (stopAtFirstError) {
      for (let i = 0; i < n; i++) {
        if (outcomes[i]?.error !== undefined) {
          end = i;
          break;
        }
      }
    }

    // 4. lines of samples with nothing to log are final now; the rest wait for commit().
    // compact (infer): final lines are kept as encoded text between the candidates' slots, a few
    // Buffers per window instead of hundreds of strings: windows waiting for a group commit then
    // cost little memory and garbage-collector work.
    let candidates = 0;
    let nOk = 0;
    const segments: Buffer[] | null = compact ? [] : null;
    let cur = '';
    for (let i = 0; i < end; i++) {
      const sc = scored[i];
      if (!sc) {
        if (!outcomes[i]) outcomes[i] = { error: 'not processed', where: items[i].where, id: null };
        continue;
      }
      nOk++;
      if (sc.fired.length > 0 || sc.unseen.unseen) {
        candidates++;
        // it may wait for a group commit: keep its own copy, not a view pinning the whole output
        if (!sc.boxes) sc.probs = sc.probs.slice();
        if (segments) {
          segments.push(Buffer.from(cur));
          cur = '';
        }
        continue;
      }
      if (segments) cur += lineOf(state, sc, [], null) + '\n';
      else outcomes[i] = { logged: false, line: lineOf(state, sc, [], null) };
      scored[i] = undefined;
    }
    if (segments) segments.push(Buffer.from(cur));
    if (end < n) outcomes.length = end + 1; // keep the stopping error, drop the rest
    return { state, outcomes, scored, segments, end, stopped: end < n, candidates, nOk, nBad: candidates };
  }

  /**
   * Log the candidates of the given windows in ONE transaction (rate caps counted in it) and
   * build their lines. Windows of different runtime states (a version switch in between) are
   * committed one state at a time.
   */
  commit(windows: PreparedWindow[]): WindowResult[] {
    const out: WindowResult[] = [];
    for (let a = 0; a < windows.length; ) {
      let b = a + 1;
      while (b < windows.length && windows[b].state === windows[a].state) b++;
      out.push(...this.commitSameState(windows.slice(a, b)));
      a = b;
    }
    return out;
  }

  private commitSameState(windows: PreparedWindow[]): WindowResult[] {
    const state = windows[0].state;
    const { sink, db } = this.opts;
    const names = state.filterNames;
    const caps = sink ? this.capsFor(state) : null;
    const reasons = windows.map((w) => new Array<string[]>(w.end));
    const sampleIds = windows.map((w) => new Array<string | null>(w.end).fill(null));
    const logged = windows.map(() => 0);
    const pick = () => {
      const recs: LogRecord[] = [];
      const who: [number, number][] = [];
      if (caps) caps.begin(Date.now());
      windows.forEach((w, wi) => {
        for (let i = 0; i < w.end; i++) {
          const sc = w.scored[i];
          if (!sc) continue;
          let admitted = sc.fired.length > 0;
          let rs: string[];
          if (caps && sc.fired.length) {
            admitted = false;
            rs = sc.fired.map((f) => {
              if (caps.admit(f)) {
                admitted = true;
                return names[f];
              }
              return `${names[f]}:capped`;
            });
          } else rs = sc.fired.map((f) => names[f]);
          reasons[wi][i] = rs;
          if (!sink || !(admitted || sc.unseen.unseen)) continue;
          who.push([wi, i]);
          recs.push({
            task: sc.task?.id ?? null,
            attrs: sc.s.attrs,
            payloadKind: sc.s.payloadKind,
            payload: sc.s.payload(),
            predLabel: sc.label,
            scores: sc.boxes ? sc.boxes.map((bx) => bx[4]) : Array.from(sc.probs),
            hard: admitted,
            hardReasons: rs.filter((r) => !r.endsWith(':capped')),
            unseen: sc.unseen.unseen,
            unseenReason: sc.unseen.reason,
            hardness: hardnessOf(sc),
            kbVersion: state.versionId,
            // an image is logged as its original bytes with the preprocessing its model used
            ...(sc.s.image && sc.task ? { preprocessing: preprocessingJson(sc.task) } : {}),
          });
        }
      });
      if (recs.length > 0) {
        const res = sink!.logBatch(recs);
        for (let r = 0; r < res.length; r++) {
          if (res[r].evicted) continue;
          const [wi, i] = who[r];
          sampleIds[wi][i] = res[r].sampleId;
          logged[wi]++;
        }
      }
      if (caps) caps.flush();
    };
    try {
      if (windows.some((w) => w.candidates > 0)) {
        if (caps && db) db.transaction(pick).immediate();
        else pick();
      }
    } catch (e) {
      const code = (e as { code?: string }).code;
      const why = ((e as Error).message ?? String(e)).split('\n')[0];
      throw new ReportedError(`cannot log samples to the outbox${code?.startsWith('SQLITE_') ? ` (${code})` : ''}: ${why}; nothing of these samples was reported logged`);
    }

    return windows.map((w, wi) => {
      // trial of a newly activated version (rollout/state.ts): count this window's outcomes;
      // hard means "a filter fired" before rate caps (the model's quality, not the outbox budget)
      if (db) recordTrialOutcomes(db, state.versionId, w.nOk, w.nBad);
      const outcomes = w.outcomes as Outcome[];
      const parts: Buffer[] | null = w.segments ? [w.segments[0]] : null;
      let k = 0;
      for (let i = 0; i < w.end; i++) {
        const sc = w.scored[i];
        if (!sc) continue;
        const sid = sampleIds[wi][i];
        const line = lineOf(state, sc, reasons[wi][i], sid);
        outcomes[i] = { logged: sid !== null, line };
        if (parts) parts.push(Buffer.from(line + '\n'), w.segments![++k]);
      }
      return { outcomes, logged: logged[wi], text: parts ? Buffer.concat(parts) : null, ok: w.nOk };
    });
  }
}

/** One output line (JSON without a trailing newline), built by hand: no stringify of the sample. */
function lineOf(state: RuntimeState, sc: Scored, rs: string[], sid: string | null): string {
  const u = sc.unseen;
  return (
    `{"id":${JSON.stringify(sc.s.id)},"task":${sc.task ? state.taskJson.get(sc.task) : 'null'},"label":${sc.label === null ? 'null' : JSON.stringify(sc.label)},` +
    `"scores":${scoresJson(sc.boxes ? sc.boxes.map((b) => b[4]) : sc.probs)},"hard":${sc.fired.length > 0},"hard_reasons":${rs.length ? JSON.stringify(rs) : '[]'},` +
    `"unseen":${u.unseen}${u.unseen ? `,"unseen_reason":${JSON.stringify(u.reason)}` : ''}${u.scores ? `,"unseen_scores":${scoresObjectJson(u.scores)}` : ''},"logged":${sid !== null}${sid !== null ? `,"sample_id":"${sid}"` : ''}}`
  );
}

/**
 * Eviction value of a logged sample, 0..1: the normalised entropy of its probabilities (how
 * unsure the model was); detection outputs: 1 - mean box score. Unseen samples are at least 0.5:
 * they are what the KB needs to learn a new task.
 */
function hardnessOf(sc: Scored): number {
  let h: number;
  if (sc.boxes) {
    let m = 0;
    for (const b of sc.boxes) m += b[4];
    h = sc.boxes.length ? 1 - m / sc.boxes.length : 0;
  } else h = normalisedEntropy(sc.probs);
  if (sc.unseen.unseen) h = Math.max(h, 0.5);
  return Math.min(1, Math.max(0, h));
}

const ppJson = new WeakMap<TaskEntry, string>();
/** The index's preprocessing of a task's model as logged with image samples (JSON, once per entry). */
function preprocessingJson(t: TaskEntry): string {
  let j = ppJson.get(t);
  if (j === undefined) ppJson.set(t, (j = JSON.stringify(t.model.preprocessing)));
  return j;
}
