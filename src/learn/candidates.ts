// Training a round's candidate models: the built-in trainer on worker threads (pool.ts), or the
// --trainer-cmd plug-in (plugin.ts), each candidate warm-started from the model it grows from.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Preprocessing } from '../format/index-manifest.js';
import type { TaskRecord } from '../kb/store.js';
import { archDims, fromNetData, type DenseNet } from './dense.js';
import type { LoadedSample } from './dataset.js';
import { chooseArch, cnnRegime, imageShape } from './arch-choice.js';
import { CNN_DEFAULTS, cnnTransferInit, type CnnNet } from './cnn.js';
import { cnnIoSpecs, exportCnnOnnx, exportOnnx, ioSpecs } from './export.js';
import { modelFromBytes, stack, type ScoringModel } from './models.js';
import { runPlugin } from './plugin.js';
import { inspectModel } from '../onnx/ort.js';
import { trainAll } from './pool.js';
import { contentRank, idRank, type Candidate, type RoundOptions } from './round-types.js';
import type { TrainJob } from './train-job.js';
import { transferInit, type EpochStat } from './trainer.js';
import { UPDATE_EPOCHS, UPDATE_PATIENCE, updateSet, type UpdateSet } from './incremental.js';

export interface Trained {
  model: ScoringModel;
  bytes: Buffer;
  io: { inputs: TaskRecord['inputs']; outputs: TaskRecord['outputs'] };
  outputKind: 'probabilities' | 'logits';
  arch: string;
  epochs: number | null;
  bestEpoch: number | null;
  ms: number;
  warmStart: boolean;
  history: EpochStat[];
  trainer: Record<string, unknown>;
}

export interface TrainCtx {
  o: RoundOptions;
  labels: string[];
  dim: number;
  P: Preprocessing;
  input: (s: LoadedSample) => Float32Array;
  modelOf: (t: TaskRecord) => Promise<ScoringModel>;
  taskById: Map<string, TaskRecord>;
  log: (m: string) => void;
  round: number;
}

export async function trainCandidates(candidates: Candidate[], ctx: TrainCtx): Promise<Map<Candidate, Trained>> {
  const { o, labels, dim, P, input } = ctx;
  const out = new Map<Candidate, Trained>();
  const labelIndex = new Map(labels.map((l, i) => [l, i]));
  // the model a candidate starts from: its own current model (update) or its parent's (new)
  const startFrom = (c: Candidate) => c.group.existing ?? (c.parent ? ctx.taskById.get(c.parent) ?? null : null);
  if (o.trainerCmd) {
    const work = mkdtempSync(join(tmpdir(), 'sedna-ll-trainer-'));
    const shape = imageShape(dim, P, [...ctx.taskById.values()], o.inputShape ?? null);
    try {
      for (const c of candidates) {
        ctx.log(`training ${c.group.id} with --trainer-cmd`);
        const from = startFrom(c);
        const r = await runPlugin(o.trainerCmd, work, {
          task: c.group.id,
          kind: c.fallback ? 'global' : c.kind,
          labels,
          dim,
          inputShape: shape ? shape.shape : null,
          preprocessing: P,
          seed: taskSeed(o.seed, c.group.id),
          parent: from?.id ?? null,
          train: c.train.map((s) => ({ x: input(s), label: s.rec.label! })),
          heldout: c.heldout.map((s) => ({ x: input(s), label: s.rec.label! })),
          parentModel: from ? (await ctx.modelOf(from)).bytes : null,
        }, o.trainerTimeoutMs);
        const outputKind = r.metrics.output_kind === 'logits' ? 'logits' : 'probabilities';
        const model = modelFromBytes(r.model, { labels, preprocessing: P, output_kind: outputKind });
        // a plug-in model passes the same admission check as `task add` / `kb task add`: one the
        // edge would refuse (two inputs, dynamic feature dims, not float32) fails the round here
        const io = model.dense ? ioSpecs(model.dense.net) : await inspectModel(r.model, `--trainer-cmd model of task ${c.group.id}`).then(({ inputs, outputs }) => ({ inputs, outputs }));
        if (model.dense) {
          io.inputs[0].name = model.dense.inputName;
          io.outputs[0].name = model.dense.outputName;
          // a features output only when the plug-in's graph declares one
          if (model.dense.featuresOutput) io.outputs[1].name = model.dense.featuresOutput;
          else io.outputs.length = 1;
        }
        const epochs = typeof r.metrics.epochs === 'number' ? r.metrics.epochs : null;
        out.set(c, { model, bytes: r.model, io, outputKind, arch: typeof r.metrics.arch === 'string' ? r.metrics.arch : 'external', epochs, bestEpoch: epochs, ms: r.ms, warmStart: !!from, history: [], trainer: { cmd: o.trainerCmd, reported: r.metrics } });
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    return out;
  }
  const choice = chooseArch(o.arch, dim, P, [...ctx.taskById.values()], o.inputShape ?? null);
  const cnnShape = choice.arch === 'cnn' ? choice.shape! : null;
  const arch = choice.arch;
  const filters = o.filters ?? CNN_DEFAULTS.filters;
  const trainer = { optimizer: o.optimizer ?? 'adam', lr: o.lr ?? null, batch_size: o.batchSize ?? 32, epochs: o.epochs, patience: o.patience ?? 5, l2: o.l2 ?? 1e-4, hidden: arch === 'softmax' ? [] : o.hidden, ...(cnnShape ? { input_shape: cnnShape, filters } : {}), arch_choice: choice.why };
  const dims = arch === 'cnn' ? [] : archDims(arch, dim, labels.length, o.hidden);
  const jobs: TrainJob[] = [];
  // per job: the model it starts from when the start is an exact copy of it (same labels)
  const exact: ({ rec: TaskRecord; model: ScoringModel } | undefined)[] = [];
  const updates: (UpdateSet | null)[] = [];
  for (const c of candidates) {
    const seed = taskSeed(o.seed, c.group.id);
    let init: DenseNet | null = null;
    let cnnInit: CnnNet | null = null;
    const from = startFrom(c);
    if (from && JSON.stringify(from.preprocessing) === JSON.stringify(P)) {
      const m = await ctx.modelOf(from);
      if (m.labels.join('\n') === labels.join('\n')) exact[jobs.length] = { rec: from, model: m };
      if (m.dense && arch !== 'cnn') init = transferInit(m.dense.net, m.labels, dims, labels, seed);
      if (m.cnn && cnnShape) cnnInit = cnnTransferInit(m.cnn.net, m.labels, cnnShape, filters, o.hidden, labels, seed);
    }
    // a CNN update of a task's own model trains on the new samples plus a bounded replay of the
    // old ones, with a short epoch budget (incremental.ts): a round's cost no longer grows with
    // everything the KB has learned
    const upd = cnnInit && c.kind === 'update' ? updateSet(c.train, (s) => s.rec.used_in_round === null, seed, ctx.round) : null;
    updates.push(upd);
    const trainSet = upd ? upd.train : c.train;
    // early stopping watches a validation slice of the training data, never the gate's held-out set
    const useVal = trainSet.length >= 40;
    const isVal = (s: LoadedSample) => useVal && contentRank(`val:${seed}`, s, c.group.id) % 100 < 15;
    const fit = trainSet.filter((s) => !isVal(s));
    const val = trainSet.filter(isVal);
    const ds = (set: LoadedSample[]) => ({ X: stack(set.map(input), dim), y: Int32Array.from(set.map((s) => labelIndex.get(s.rec.label!)!)), n: set.length, d: dim });
    // light adaptation: a warm start on a tiny training set learns its last layer only (the
    // parent's features stay; fewer free weights than samples to fit them)
    const trainFrom = init && fit.length < LIGHT_ADAPTATION_MAX ? dims.length - 2 : 0;
    const options = { arch: arch === 'cnn' ? ('mlp' as const) : arch, hidden: o.hidden, epochs: upd ? Math.min(o.epochs, UPDATE_EPOCHS) : o.epochs, seed, optimizer: o.optimizer, lr: o.lr, batchSize: o.batchSize, patience: upd ? Math.min(o.patience ?? UPDATE_PATIENCE, UPDATE_PATIENCE) : o.patience, l2: o.l2, trainFrom };
    jobs.push({
      key: c.group.id,
      train: ds(fit),
      val: val.length ? ds(val) : null,
      numClasses: labels.length,
      options,
      init: init ? { dims, W: init.layers.map((l) => l.W), b: init.layers.map((l) => l.b) } : null,
      ...(cnnShape ? { cnn: { shape: cnnShape, filters, hidden: o.hidden, init: cnnInit, ...cnnRegime(fit.length, !!cnnInit, filters.length), ...(upd ? { minSteps: 0 } : {}) } } : {}),
    });
  }
  ctx.log(`training ${jobs.length} ${arch} model${jobs.length === 1 ? '' : 's'} (${choice.why})`);
  const results = await trainAll(jobs, { threads: o.threads });
  candidates.forEach((c, i) => {
    const r = results[i];
    const start = exact[i];
    if (start && r.warmStart && r.bestEpoch === 0) {
      // the best epoch is the starting weights: the candidate IS that model, byte for byte (a
      // re-export would differ by float noise of the round trip and be downloaded again)
      const f = start.rec;
      out.set(c, { model: start.model, bytes: start.model.bytes, io: { inputs: f.inputs, outputs: f.outputs }, outputKind: f.output_kind, arch: f.arch ?? arch, epochs: r.epochsRun, bestEpoch: 0, ms: r.ms, warmStart: true, history: r.history, trainer: { ...trainer, seed: jobs[i].options.seed, kept_start: f.id } });
      return;
    }
    const info = { labels, preprocessing: P, arch };
    const bytes = r.cnn ? exportCnnOnnx(r.cnn, info) : exportOnnx(fromNetData(r.net!), info);
    out.set(c, {
      model: modelFromBytes(bytes, { labels, preprocessing: P, output_kind: 'probabilities' }),
      bytes,
      io: r.cnn ? cnnIoSpecs(r.cnn) : ioSpecs(fromNetData(r.net!)),
      outputKind: 'probabilities',
      arch,
      epochs: r.epochsRun,
      bestEpoch: r.bestEpoch,
      ms: r.ms,
      warmStart: r.warmStart,
      history: r.history,
      trainer: { ...trainer, seed: jobs[i].options.seed, ...(jobs[i].options.trainFrom ? { train_from_layer: jobs[i].options.trainFrom } : {}), ...(jobs[i].cnn ? { freeze_convs: jobs[i].cnn!.freezeConvs, shift: jobs[i].cnn!.shift } : {}), ...(updates[i] ? { update: { fresh: updates[i]!.fresh, replay: updates[i]!.replay, not_replayed: updates[i]!.left, epochs: jobs[i].options.epochs, patience: jobs[i].options.patience } } : {}) },
    });
  });
  return out;
}

/** training sets under this size adapt only the last layer of a warm start */
export const LIGHT_ADAPTATION_MAX = 100;

function taskSeed(seed: number, task: string): number {
  return (seed * 1000003 + idRank(seed, task)) >>> 0;
}
