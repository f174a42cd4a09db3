// `sedna-ll feedback`: attach ground-truth labels to logged samples.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT_HELP, ReportedError, UsageError } from '../errors.js';
import type { LabelItem } from '../store/feedback.js';
import { printResult, run } from './action.js';

interface FeedbackOpts {
  sample?: string;
  label?: string;
  file?: string;
  strict?: boolean;
  newClass?: boolean;
  json?: boolean;
  home?: string;
}

export function register(program: Command): void {
  program
    .command('feedback')
    .description('attach labels to logged samples (labelled samples are kept longest and go to the KB on the next sync)')
    .option('--sample <id>', 'sample id (as printed by infer / samples ls)')
    .option('--label <label>', 'the correct label for --sample')
    .option('--file <labels.jsonl>', 'JSON lines {"id": ..., "label": ...} ("-" = stdin); bad lines are reported and skipped; exit 1 when no line could be stored')
    .option('--strict', 'with --file: all or nothing; any bad line, refused label or unknown id fails the run and no label is stored')
    .option('--new-class', "accept labels that are not a class of the sample's task in the active version (a genuinely new class); without it such a label is refused (exit 2; with --file: that line is skipped)")
    .option('--json', 'one JSON record: labelled, unchanged, unknown, skipped, errors')
    .addHelpText(
      'after',
      `
Exit 1 when a sample id is not found (--sample, or --file --strict), or when --file stored no
label at all; exit 2 for a bad line under --strict, a bad --label, or a label outside the
task's classes (without --new-class).

Examples:
  sedna-ll feedback --sample 0193c1e8-00ac-7095-9d1e-3c1b2a4f5e6d --label cat
  sedna-ll feedback --file labels.jsonl --json
  sedna-ll samples ls --json | jq -c '.samples[] | {id, label: "cat"}' | sedna-ll feedback --file -
${EXIT_HELP}
`,
    )
    .action(
      run(async (opts: FeedbackOpts, cmd: Command) => {
        const [{ badLabel, parseLabelLines, storeFeedback }, { withHome }] = await Promise.all([import('../store/feedback.js'), import('../store/open-home.js')]);
        const single = opts.sample !== undefined || opts.label !== undefined;
        if (single === (opts.file !== undefined)) throw new UsageError('give either --sample ID --label L, or --file labels.jsonl');
        let items: LabelItem[];
        let errors: string[] = [];
        if (single) {
          if (opts.sample === undefined || opts.label === undefined) throw new UsageError('--sample and --label go together');
          const bad = badLabel(opts.label);
          if (bad) throw new UsageError(`--label "${opts.label}": ${bad}`);
          items = [{ id: opts.sample, label: opts.label, line: 0 }];
        } else {
          const file = opts.file!;
          let text: string;
          try {
            text = readFileSync(file === '-' ? 0 : file, 'utf8');
          } catch (e) {
            throw new UsageError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
          }
          ({ items, errors } = parseLabelLines(text, file === '-' ? 'stdin' : file));
          if (errors.length && opts.strict) throw new UsageError(`${errors[0]} (--strict: no label stored)`);
        }
        const r = await withHome((cmd.optsWithGlobals() as FeedbackOpts).home, (h) => storeFeedback(h, { items, errors, file: opts.file, strict: opts.strict, newClass: opts.newClass }));
        errors = r.errors;
        for (const e of errors) process.stderr.write(`sedna-ll: ${e}\n`);
        printResult(opts.json, { labelled: r.updated, unchanged: r.unchanged, unknown: r.unknown, skipped: errors.length, errors }, `labelled ${r.updated} sample${r.updated === 1 ? '' : 's'}${r.unchanged ? `, ${r.unchanged} unchanged` : ''}${errors.length ? `, ${errors.length} skipped` : ''}`);
        // every line bad or unknown (a wrong-format file): a failure, so scripts do not take it for success
        if (r.updated + r.unchanged === 0 && errors.length > 0) throw new ReportedError(`${opts.file}: no label stored, all ${errors.length} line(s) skipped`);
      }),
    );
}
