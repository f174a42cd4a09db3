// `sedna-ll kb train | eval | versions [diff A B] | rounds`: the KB's learning side.
// (`kb tasks` is registered by kb-task.ts.) Options are parsed here; src/learn does the work.
import type { Command } from 'commander';
import { EXIT_HELP, UsageError } from '../errors.js';
import { intOption, numOption, printList, printResult, record, run } from './action.js';
import { verdict } from './color.js';
import { DATA_HELP, kbOpen, UNSEEN_OPTIONS, unseenRequest, type UnseenFlags } from './kb-common.js';
import { printRows } from './table.js';

const f4 = (v: number | null | undefined) => (v === null || v === undefined ? '-' : v.toFixed(4));

function usage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

interface TrainOpts extends UnseenFlags {
  data?: string;
  when?: string;
  window?: string;
  minSamples: number;
  arch: string;
  hidden: string;
  inputShape?: string;
  filters?: string;
  epochs: number;
  seed: number;
  metric: string;
  gateAlpha: string;
  heldout: number;
  trainerCmd?: string;
  trainerTimeout: number;
  maxPixels?: number;
  resizeImages?: boolean;
  threads?: number;
  channel: string | false;
  attrKeys?: string;
  json?: boolean;
}

type RoundReport = import('../learn/round.js').RoundReport;
type RoundOptions = import('../learn/round-types.js').RoundOptions;

/** The round report in the machine-output naming (the learner's own fields are camelCase). */
function roundRecord(r: RoundReport) {
  const { ms, tasks, ...rest } = r;
  return {
    ...rest,
    duration_ms: Math.round(ms),
    tasks: tasks.map(({ bestEpoch, trainMs, warmStart, ...t }) => ({ ...t, best_epoch: bestEpoch, train_ms: trainMs === null ? null : Math.round(trainMs), warm_start: warmStart })),
  };
}

/** The round's options from the flags; a bad value is a usage error naming its flag. */
async function roundOptions(o: TrainOpts): Promise<Partial<RoundOptions>> {
  const [{ parseMetric }, { parseAlpha }, { parseShape }] = await Promise.all([import('../learn/metrics.js'), import('../learn/gate.js'), import('../learn/arch-choice.js')]);
  if (!['auto', 'mlp', 'softmax', 'cnn'].includes(o.arch)) throw new UsageError(`--arch "${o.arch}": expected auto, softmax, mlp or cnn`);
  const sizes = (flag: string, text: string) => {
    const v = text.split(',').map((s) => Number(s.trim()));
    if (!v.length || v.some((h) => !Number.isInteger(h) || h < 1)) throw new UsageError(`${flag} "${text}": expected positive integers, e.g. 128,64`);
    return v;
  };
  const hidden = sizes('--hidden', o.hidden);
  const filters = sizes('--filters', o.filters ?? '8,16');
  const inputShape = o.inputShape ? usage(() => parseShape(o.inputShape!)) : null;
  const gate = { metric: usage(() => parseMetric(o.metric)), alpha: usage(() => parseAlpha(o.gateAlpha)) };
  if (!(o.heldout > 0 && o.heldout < 1)) throw new UsageError(`--heldout "${o.heldout}": expected a fraction between 0 and 1`);
  const unseen = await unseenRequest(o);
  return {
    minSamples: o.minSamples,
    arch: o.arch as RoundOptions['arch'],
    hidden,
    filters,
    inputShape,
    epochs: o.epochs,
    seed: o.seed,
    gate,
    heldoutFraction: o.heldout,
    ...(unseen.fpr !== undefined ? { fpr: unseen.fpr } : {}),
    unseen,
    trainerCmd: o.trainerCmd ?? null,
    trainerTimeoutMs: o.trainerTimeout * 1000,
    maxPixels: o.maxPixels,
    resizeImages: o.resizeImages,
    threads: o.threads,
    channel: o.channel === false ? null : o.channel,
    attrKeys: o.attrKeys ? o.attrKeys.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean) : undefined,
    log: process.stderr.isTTY ? (m) => process.stderr.write(`kb train: ${m}\n`) : undefined,
  };
}

/** A round's report for a person: its message, clusters, one row per task, pins, skips. */
async function printRound(report: RoundReport): Promise<void> {
  process.stdout.write(report.message + '\n');
  if (report.clusters) {
    const sil = Object.entries(report.clusters.silhouettes).map(([k, v]) => `k=${k}: ${v}`).join(', ');
    process.stdout.write(`clustered ${report.clusters.pool} samples without attributes into ${report.clusters.k} group(s) (silhouette ${sil || '-'}; ${report.clusters.why})\n`);
  }
  if (report.tasks.length) {
    await printRows(report.tasks, {
      TASK: (t) => t.task + (t.fallback ? ' (fallback)' : ''),
      KIND: (t) => t.kind,
      PARENT: (t) => t.parent,
      TRAIN: (t) => t.samples.train,
      HELD: (t) => t.samples.heldout,
      BEFORE: (t) => f4(t.before?.accuracy),
      AFTER: (t) => f4(t.after?.accuracy),
      RESULT: (t, p) => (t.pinned ? verdict(p, 'pinned') : t.accepted === null ? '-' : verdict(p, t.accepted ? 'accepted' : t.verdict === 'keep' ? 'kept' : 'REJECTED')),
      P: (t) => t.test?.p,
      EPOCHS: (t) => (t.epochs === null ? '-' : `${t.bestEpoch}/${t.epochs}`),
      MS: (t) => t.trainMs,
      WHY: (t) => t.reason,
    });
  }
  const pinned = report.tasks.filter((t) => t.pinned);
  if (pinned.length) process.stdout.write(`pinned (the new fallback is worse there; see WHY): ${pinned.map((t) => `${t.task} -> ${t.pinned!.from} ${t.pinned!.model_sha.slice(0, 12)}`).join(', ')}\n`);
  const sk = Object.entries(report.samples.skipped);
  if (sk.length) process.stderr.write(`kb train: skipped samples: ${sk.map(([k, v]) => `${v} (${k})`).join(', ')}\n`);
}

export function register(kb: Command): void {
  kb.command('train')
    .description('one learning round: define tasks, train seen/new tasks (transfer), gate on held-out data, calibrate, publish only what changed')
    .option('--data <dir>', DATA_HELP)
    .option('--when <expr>', 'run only if KB counters satisfy EXPR, e.g. "labelled_new >= 500 and samples_new gt 0" (ops >= > == != <= < ge gt eq ne le lt)')
    .option('--window <HH:MM-HH:MM>', 'run only inside this local-time window (may wrap midnight, e.g. 22:00-04:00)')
    .option('--min-samples <n>', 'labelled samples a group needs to become its own task (smaller groups: global task)', intOption('--min-samples', 1), 10)
    .option('--arch <arch>', 'auto | softmax | mlp | cnn (auto: cnn when the inputs are images or a model declares [N,C,H,W], else mlp)', 'auto')
    .option('--hidden <sizes>', 'hidden layer sizes of the mlp (or the dense head of the cnn), comma separated', '128')
    .option('--input-shape <C,H,W>', 'shape of one sample for the cnn, e.g. 1,28,28 (default: from the image preprocessing or a task model\'s input)')
    .option('--filters <sizes>', 'output channels of the cnn\'s conv3x3+relu+maxpool blocks, comma separated', '8,16')
    .option('--epochs <n>', 'maximum epochs (early stopping on a validation slice of the training data); small tasks still run at least 300 optimiser steps', intOption('--epochs', 1), 30)
    .option('--seed <n>', 'seed of initialisation, shuffling, splits and clustering', intOption('--seed', 0), 1)
    .option('--metric <m>', 'gate metric: accuracy | micro_precision | macro_f1', 'accuracy')
    .option('--gate-alpha <p>', 'significance level of the paired test (McNemar mid-p) on the held-out samples: a candidate replaces the model serving a site only on a significant gain; within noise the incumbent stays', '0.05')
    .option('--heldout <fraction>', "share of each task's labelled samples held out (sticky per sample)", numOption('--heldout'), 0.2)
    .option(...UNSEEN_OPTIONS[0])
    .option(...UNSEEN_OPTIONS[1])
    .option(...UNSEEN_OPTIONS[2])
    .option('--trainer-cmd <cmd>', 'external trainer: gets $SEDNA_LL_TASK_DIR (train.jsonl, heldout.jsonl, meta.json), $SEDNA_LL_PARENT_MODEL, must write model.onnx + metrics.json into $SEDNA_LL_OUT_DIR')
    .option('--trainer-timeout <seconds>', 'time limit of one --trainer-cmd run; over it the trainer is killed and the round fails (nothing published)', intOption('--trainer-timeout', 1), 3600)
    .option('--max-pixels <n>', 'image samples over n pixels are skipped before decoding (default 16777216)', intOption('--max-pixels', 1))
    .option('--resize-images', "resize image samples whose size is not the KB's image input (bilinear, as the edge's images.resize); default: they are skipped, counted by size")
    .option('--threads <n>', 'training worker threads (default: CPU cores)', intOption('--threads', 1))
    .option('--channel <name>', 'channel that gets the new version', 'stable')
    .option('--no-channel', 'publish without moving any channel')
    .option('--attr-keys <keys>', 'attribute keys that define tasks, comma separated (default: the last version\'s, else "site")')
    .option('--json', 'print the round report as JSON')
    .addHelpText(
      'after',
      `\nCounters for --when: labelled_new, samples_new (since the last round), labelled_total, samples_total,\nrounds, hours_since_round. Not due -> exit 0 with a message. Exit 0 also when nothing changed.
A second kb train on the same KB while one runs exits 6 (locked).

Examples:
  sedna-ll kb train
  sedna-ll kb train --when "labelled_new >= 500" --window 22:00-04:00 --json   # from cron
  sedna-ll kb train --arch softmax --channel canary

${EXIT_HELP}\n`,
    )
    .action(
      run(async (o: TrainOpts) => {
        const { parseWhen, evaluateWhen, parseWindow, inWindow } = await import('../learn/when.js');
        const conds = o.when ? usage(() => parseWhen(o.when!)) : null;
        const win = o.window ? usage(() => parseWindow(o.window!)) : null;
        const opts = await roundOptions(o);
        const say = (msg: string, extra: Record<string, unknown> = {}): void => printResult(o.json, { ran: false, message: msg, ...extra }, msg);
        if (win && !inWindow(win, new Date())) return say(`kb train: outside the window ${win.text}; nothing to do`, { reason: 'window' });
        await kbOpen(o, async (store) => {
          if (conds) {
            const { counters, KNOWN_COUNTERS } = await import('../learn/counters.js');
            const c = await counters(store);
            const r = usage(() => evaluateWhen(conds, c, KNOWN_COUNTERS));
            if (!r.due) return say(`kb train: not due (${r.detail.join('; ')}); nothing to do`, { reason: 'when', detail: r.detail });
          }
          const { runRound } = await import('../learn/round.js');
          const report = await runRound(store, opts);
          for (const w of report.warnings) process.stderr.write(`kb train: warning: ${w}\n`);
          if (o.json) return record({ ran: true, ...roundRecord(report) });
          await printRound(report);
        });
      }),
    );

  kb.command('eval <file>')
    .description('per-task and overall metrics of a KB version on a labelled JSONL ({"x":[...],"label":..,"attrs":{..}}) or CSV (label column, attribute columns, features) file')
    .option('--data <dir>', DATA_HELP)
    .option('--kb-version <n>', 'KB version to evaluate (default: the newest); named so because --version is the program\'s own flag', intOption('--kb-version', 1))
    .option('--json', 'print the metrics as JSON')
    .addHelpText('after', `\nSamples are allocated to tasks like the edge does (attribute, else nearest centroid, else fallback).\n${EXIT_HELP}\n`)
    .action(
      run(async (file: string, o: { data?: string; kbVersion?: number; json?: boolean }) => {
        const { evaluateVersion } = await import('../learn/eval.js');
        await kbOpen(o, async (store) => {
          const r = await evaluateVersion(store, file, { version: o.kbVersion, onBad: (line, why) => process.stderr.write(`sedna-ll: ${file}:${line}: ${why} (skipped)\n`) });
          if (o.json) return record({ ...r });
          process.stdout.write(`KB version ${r.version} on ${r.samples} samples\n`);
          await printRows([...r.tasks, { task: '(overall)', ...r.overall }], {
            TASK: (t) => t.task,
            SAMPLES: (t) => t.n,
            ACCURACY: (t) => f4(t.accuracy),
            MICRO_P: (t) => f4(t.micro_precision),
            MACRO_F1: (t) => f4(t.macro_f1),
          });
        });
      }),
    );

  const versions = kb
    .command('versions')
    .description('published KB versions: parent, tasks, models changed, channel, round')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'print as JSON')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (o: { data?: string; json?: boolean }) => {
        const { listVersions } = await import('../learn/versions.js');
        await kbOpen(o, async (store) => {
          const list = await listVersions(store);
          await printList('versions', list, {
            json: o.json,
            empty: 'no versions',
            columns: {
              VERSION: (v) => v.version,
              PARENT: (v) => v.parent,
              CREATED: (v) => v.created_at.replace(/\.\d{3}Z$/, 'Z'),
              CHANNEL: (v) => v.channel,
              TASKS: (v) => v.tasks,
              CHANGED: (v) => v.changed.join(',') || '-',
              ROUND: (v) => v.round,
            },
          });
        });
      }),
    );
  versions
    .command('diff <a> <b>')
    .description('what changed between two versions: tasks added/removed, models replaced, metrics and thresholds')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'print as JSON')
    .action(
      run(async (a: string, b: string, o: { data?: string; json?: boolean }, cmd: Command) => {
        // `versions` has the same options and commander gives them to the parent: read both
        const parent = (cmd.parent?.opts() ?? {}) as { data?: string; json?: boolean };
        const data = o.data ?? parent.data;
        const json = o.json || parent.json;
        const va = intOption('version A', 1)(a);
        const vb = intOption('version B', 1)(b);
        const { diffVersions } = await import('../learn/versions.js');
        await kbOpen({ ...parent, ...o, data }, async (store) => {
          const d = await diffVersions(store, va, vb);
          if (json) return record({ ...d });
          process.stdout.write(`version ${va} -> ${vb}: ${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} model(s) replaced, ${d.same.length} unchanged\n`);
          await printRows(d.tasks, {
            TASK: (t) => t.task,
            CHANGE: (t) => t.change,
            'MODEL A': (t) => t.sha_a?.slice(0, 12),
            'MODEL B': (t) => t.sha_b?.slice(0, 12),
            'ACC A': (t) => f4(t.accuracy_a),
            'ACC B': (t) => f4(t.accuracy_b),
          });
        });
      }),
    );

  kb.command('rounds')
    .description('learning history per task and round: kind, parent, before/after held-out metric, gate result with its paired test (n, p), pinned sites and why, epochs, train time')
    .option('--data <dir>', DATA_HELP)
    .option('--task <id>', 'only this task')
    .option('--json', 'print as JSON')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (o: { data?: string; task?: string; json?: boolean }) => {
        const { taskHistory } = await import('../learn/versions.js');
        await kbOpen(o, async (store) => {
          const rows = (await taskHistory(store)).filter((r) => !o.task || r.task === o.task);
          await printList('rounds', rows, {
            json: o.json,
            empty: 'no training rounds yet',
            columns: {
              ROUND: (r) => r.round,
              TASK: (r) => r.task,
              KIND: (r) => r.kind,
              PARENT: (r) => r.parent,
              METRIC: (r) => r.metric,
              BEFORE: (r) => f4(r.before),
              AFTER: (r) => f4(r.after),
              RESULT: (r, p) => verdict(p, r.verdict === 'pinned' ? 'pinned' : r.verdict === 'keep' ? 'kept' : r.accepted ? 'accepted' : 'rejected'),
              N: (r) => r.test?.n,
              P: (r) => r.test?.p,
              TRAIN: (r) => r.train,
              HELD: (r) => r.heldout,
              EPOCHS: (r) => r.epochs,
              MS: (r) => r.train_ms,
              WHY: (r) => r.reason ?? '',
            },
          });
        });
      }),
    );
}
