// `sedna-ll kb samples ls|export|import` and `sedna-ll kb label import`: what the edges uploaded,
// initial training data, and ground-truth labels for training.
import type { Command } from 'commander';
import { EXIT, EXIT_HELP, UsageError } from '../errors.js';
import { intOption, printList, printResult, record, recordToStderr, run } from './action.js';
import { DATA_HELP, kbOpen } from './kb-common.js';
import { printable } from './table.js';

interface FilterOpts {
  device?: string;
  task?: string;
  labelled?: boolean;
  unlabelled?: boolean;
}

function filterOf(o: FilterOpts): import('../kb/store.js').SampleFilter {
  if (o.labelled && o.unlabelled) throw new UsageError('--labelled and --unlabelled exclude each other');
  return { device: o.device, task: o.task, labelled: o.labelled ? true : o.unlabelled ? false : undefined };
}

function addFilters(c: Command): Command {
  return c
    .option('--device <id>', 'only samples of this device')
    .option('--task <id>', 'only samples the edge allocated to this task')
    .option('--labelled', 'only samples with a label')
    .option('--unlabelled', 'only samples without a label');
}

const badLine = (file: string) => (line: number, reason: string) => process.stderr.write(`sedna-ll: ${file}:${line}: ${reason} (skipped)\n`);

export function register(kb: Command): void {
  const samples = kb.command('samples').description('samples stored in the KB');

  addFilters(samples.command('ls').description('list stored samples (newest last)'))
    .option('--data <dir>', DATA_HELP)
    .option('--limit <n>', 'at most n samples (0: all)', intOption('--limit', 0), 1000)
    .option('--json', 'JSON array of sample records (no payloads)')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (o: FilterOpts & { data?: string; limit: number; json?: boolean }) => {
        const filter = filterOf(o);
        await kbOpen(o, async (store) => {
          const total = await store.countSamples(filter);
          // the newest `limit` samples, listed oldest first
          const list = o.limit && total > o.limit ? (await store.listSamples({ ...filter, order: 'desc', limit: o.limit })).reverse() : await store.listSamples(filter);
          await printList('samples', list, {
            json: o.json,
            empty: 'no samples',
            columns: {
              ID: (s) => s.id,
              DEVICE: (s) => s.device_id ?? '(import)',
              TASK: (s) => s.task,
              KIND: (s) => s.payload_kind,
              BYTES: (s) => s.payload_bytes,
              PRED: (s) => s.pred_label,
              LABEL: (s) => s.label,
              FLAGS: (s) => [s.hard ? 'hard' : '', s.unseen ? 'unseen' : ''].filter(Boolean).join(',') || '-',
              RECEIVED: (s) => new Date(s.received_at).toISOString().replace(/\.\d+Z$/, 'Z'),
            },
          });
          if (total > list.length) process.stderr.write(`(${list.length} of ${total} shown; --limit 0 for all)\n`);
        });
      }),
    );

  addFilters(samples.command('export').description('export samples as JSONL (f32 payloads as "x", others as payload_b64)'))
    .option('--data <dir>', DATA_HELP)
    .option('-o, --output <file>', 'write to this file (default: stdout)')
    .option('--json', 'also one JSON run record {exported, file}: on stdout with -o, else as the last line on stderr (stdout is the data)')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (o: FilterOpts & { data?: string; output?: string; json?: boolean }) => {
        const filter = filterOf(o);
        const { exportSamples } = await import('../kb/samples-io.js');
        await kbOpen(o, async (store) => {
          if (!o.output) {
            recordToStderr();
            return record({ exported: await exportSamples(store, process.stdout, filter), file: null });
          }
          const [{ createWriteStream, rmSync }, { commitTemp, tempNameFor }] = await Promise.all([import('node:fs'), import('../durable/atomic-write.js')]);
          const tmp = tempNameFor(o.output);
          let n: number;
          try {
            const out = createWriteStream(tmp);
            n = await exportSamples(store, out, filter);
            await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
            commitTemp(tmp, o.output); // the file is whole or absent, even after a power cut
          } catch (e) {
            rmSync(tmp, { force: true });
            throw e;
          }
          if (o.json) return record({ exported: n, file: o.output });
          process.stderr.write(`${n} sample(s) written to ${o.output}\n`);
        });
      }),
    );

  samples
    .command('import <path>')
    .description('import labelled (or unlabelled) training data: JSONL {"x": [...] | "file": "img.png", "label"?, "attrs"?, "id"?, "task"?}, or a directory of PNG/JPEG images (labels from --labels); ids derived from the content when absent, so a re-import is harmless')
    .option('--data <dir>', DATA_HELP)
    .option('--labels <csv>', 'with a directory: CSV with a header naming a file column (file, name or path, relative to the directory) and label; other columns become attributes (e.g. site)')
    .option('--max-pixels <n>', 'refuse images over n pixels before decoding', intOption('--max-pixels', 1))
    .option('--strict', 'stop at the first bad line (exit 1) instead of skipping it')
    .option('--json', 'print {lines, imported, existing, skipped} as JSON')
    .addHelpText('after', `\nBad lines and images (not PNG/JPEG, corrupt, over the pixel cap) are reported on stderr and skipped;\nan input with lines but none imported exits 1.\n\nExamples:\n  sedna-ll kb samples import initial.jsonl\n  sedna-ll kb samples import site-a.jsonl --strict --json\n  sedna-ll kb samples import photos/ --labels labels.csv\n\n${EXIT_HELP}\n`)
    .action(
      run(async (file: string, o: { data?: string; labels?: string; maxPixels?: number; strict?: boolean; json?: boolean }) => {
        const { importSamples } = await import('../kb/samples-io.js');
        const { importImageDir, isDirectory } = await import('../kb/image-import.js');
        const dir = isDirectory(file);
        if (o.labels && !dir) throw new UsageError(`--labels is for a directory of images; ${file} is not a directory`);
        // the callback's exit code is the command's (a bare `await` dropped it: junk exited 0)
        return kbOpen(o, async (store) => {
          const r = dir
            ? await importImageDir(store, file, { labels: o.labels, strict: o.strict, maxPixels: o.maxPixels, onBad: (where, reason) => process.stderr.write(`sedna-ll: ${where}: ${reason} (skipped)\n`) })
            : await importSamples(store, file, { strict: o.strict, maxPixels: o.maxPixels, onBad: badLine(file) });
          printResult(o.json, r, `${r.imported} sample(s) imported, ${r.existing} already present, ${r.skipped} skipped`);
          if (r.lines > 0 && r.imported + r.existing === 0) return EXIT.FAILURE;
        });
      }),
    );

  const label = kb.command('label').description('ground-truth labels for stored samples');
  label
    .command('import <file>')
    .description('set labels from CSV (header with columns id,label) or JSONL {"id","label"}; unknown ids are reported')
    .option('--data <dir>', DATA_HELP)
    .option('--strict', 'stop at the first bad line (exit 1) instead of skipping it')
    .option('--json', 'print {lines, stored, newly_labelled, unknown, skipped} as JSON')
    .addHelpText('after', `\nBad lines are reported on stderr and skipped; unknown ids are listed on stderr.\nA file with lines but no label stored exits 1.\n${EXIT_HELP}\n`)
    .action(
      run(async (file: string, o: { data?: string; strict?: boolean; json?: boolean }) => {
        const { importLabels } = await import('../kb/samples-io.js');
        return kbOpen(o, async (store) => {
          const r = await importLabels(store, file, { strict: o.strict, onBad: badLine(file) });
          if (o.json) record(r);
          else {
            for (const id of r.unknown.slice(0, 20)) process.stderr.write(`sedna-ll: ${file}: unknown sample id "${printable(id)}"\n`);
            if (r.unknown.length > 20) process.stderr.write(`sedna-ll: ${file}: ... ${r.unknown.length - 20} more unknown ids\n`);
            process.stdout.write(`${r.stored} label(s) stored (${r.newly_labelled} newly labelled), ${r.unknown.length} unknown id(s), ${r.skipped} line(s) skipped\n`);
          }
          if (r.lines > 0 && r.stored === 0) return EXIT.FAILURE;
        });
      }),
    );
}
