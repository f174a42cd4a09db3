// `sedna-ll samples ls|stats|export`: what is in the outbox.
import type { Command } from 'commander';
import type { Writable } from 'node:stream';
// node:fs and node:events are loaded by Node's own start-up: importing them here is free
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { EXIT_HELP, ReportedError, UsageError } from '../errors.js';
import type { SampleState } from '../store/samples-query.js';
import { intOption, printList, record, recordToStderr, run } from './action.js';
import { humanBytes } from '../units.js';

interface Opts {
  task?: string;
  state?: string;
  limit?: number;
  output?: string;
  json?: boolean;
  home?: string;
}

function stateOpt(v: string | undefined): SampleState | undefined {
  if (v === undefined) return undefined;
  if (v !== 'pending' && v !== 'uploaded') throw new UsageError(`--state "${v}": expected pending or uploaded`);
  return v;
}

const home = (cmd: Command) => (cmd.optsWithGlobals() as Opts).home;

/** Domain modules, loaded when a subcommand runs (not at start-up). */
const load = () => Promise.all([import('../store/open-home.js'), import('../store/samples-query.js'), import('./table.js')]);

export function register(program: Command): void {
  const samples = program.command('samples').description('inspect the outbox of hard and unseen samples');

  samples
    .command('ls')
    .description('list logged samples, newest first')
    .option('--task <id>', 'only this task')
    .option('--state <state>', 'pending | uploaded')
    .option('--limit <n>', 'at most n samples', intOption('--limit', 1), 50)
    .option('--json', 'one JSON record: {samples: [...]} (created_at ISO-8601)')
    .addHelpText('after', `
Examples:
  sedna-ll samples ls --state pending --limit 20
  sedna-ll samples ls --task berlin --json | jq -r '.samples[].id'

${EXIT_HELP}
`)
    .action(
      run(async (opts: Opts, cmd: Command) => {
        const [{ withHome }, { listSamples }] = await load();
        const state = stateOpt(opts.state);
        const rows = await withHome(home(cmd), (h) => listSamples(h.db, { task: opts.task, state, limit: opts.limit! }), { readonly: true });
        const list = rows.map((r) => ({ ...r, created_at: new Date(r.created_at).toISOString() }));
        await printList('samples', list, {
          json: opts.json,
          empty: 'no samples',
          columns: {
            ID: (r) => r.id,
            TASK: (r) => r.task,
            CREATED: (r) => r.created_at.replace(/\.\d{3}Z$/, 'Z'),
            STATE: (r) => r.state,
            PRED: (r) => r.pred_label,
            LABEL: (r) => r.label,
            HARDNESS: (r) => r.hardness.toFixed(3),
            WHY: (r) => [...r.hard_reasons, ...(r.unseen ? [`unseen:${r.unseen_reason ?? '?'}`] : [])].join(',') || '-',
          },
        });
      }),
    );

  samples
    .command('stats')
    .description('outbox counts by task and by reason (hard-example filter / unseen reason)')
    .option('--json', 'one JSON record: {tasks: [...], reasons: [...]}')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (opts: Opts, cmd: Command) => {
        const [{ withHome }, { sampleStats }, { printRows }] = await load();
        const s = await withHome(home(cmd), (h) => sampleStats(h.db), { readonly: true });
        if (opts.json) return record(s);
        await printRows(s.tasks, {
          TASK: (t) => t.task,
          SAMPLES: (t) => t.samples,
          PENDING: (t) => t.pending,
          UPLOADED: (t) => t.uploaded,
          HARD: (t) => t.hard,
          UNSEEN: (t) => t.unseen,
          LABELLED: (t) => t.labelled,
          DUPS: (t) => t.duplicates,
          BYTES: (t) => humanBytes(t.bytes),
          EVICTED: (t) => t.evicted,
        });
        if (s.reasons.length) {
          process.stdout.write('\n');
          await printRows(s.reasons, { TASK: (r) => r.task, KIND: (r) => r.kind, REASON: (r) => r.reason, SAMPLES: (r) => r.samples });
        }
      }),
    );

  samples
    .command('export')
    .description('write samples as JSON lines (f32 payloads as an "x" array, others as "payload_b64"), oldest first')
    .option('-o, --output <file>', 'output file (default stdout)')
    .option('--task <id>', 'only this task')
    .option('--state <state>', 'pending | uploaded')
    .option('--json', 'also one JSON run record {exported, file}: on stdout with -o, else as the last line on stderr (stdout is the data)')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (opts: Opts, cmd: Command) => {
        const [{ withHome }, { exportSamples }] = await load();
        if (!opts.output) recordToStderr();
        const state = stateOpt(opts.state);
        const out: Writable = opts.output ? createWriteStream(opts.output) : process.stdout;
        const opened = opts.output ? once(out, 'open') : Promise.resolve();
        let failed: Error | null = null;
        out.on('error', (e) => (failed = e));
        await opened.catch((e: NodeJS.ErrnoException) => {
          throw new ReportedError(`${opts.output}: cannot write (${e.code ?? e.message})`);
        });
        const n = await withHome(
          home(cmd),
          async (h) => {
            let count = 0;
            for (const rec of exportSamples(h.db, h.paths, { task: opts.task, state })) {
              if (failed) break;
              if (rec.payload_error) process.stderr.write(`sedna-ll: sample ${rec.id}: ${rec.payload_error}\n`);
              // once() rejects when the stream errors while we wait (EPIPE: the reader went away)
              if (!out.write(JSON.stringify(rec) + '\n')) await once(out, 'drain').catch((e: Error) => (failed = e));
              count++;
            }
            return count;
          },
          { readonly: true },
        );
        if (opts.output) {
          // finished() settles also when the stream failed before this point (ENOSPC): waiting
          // for 'finish' alone then waited on nothing, and the process ended with exit 0
          out.end();
          await finished(out).catch((e: Error) => (failed ??= e));
        }
        // a closed pipe (`| head`) is the reader's choice, not a failure
        if (failed && (failed as NodeJS.ErrnoException).code === 'EPIPE' && !opts.output) return;
        if (failed) throw new ReportedError(`${opts.output ?? 'stdout'}: write failed (${(failed as NodeJS.ErrnoException).code ?? (failed as Error).message})`);
        record({ exported: n, file: opts.output ?? null });
        if (opts.output && !opts.json) process.stderr.write(`exported ${n} sample${n === 1 ? '' : 's'} to ${opts.output}\n`);
      }),
    );
}
