// `sedna-ll task add MODEL.onnx --task ID`: register a local model as a task (a new local KB version).
import type { Command } from 'commander';
import { EXIT_HELP, UsageError } from '../errors.js';
import { collect, numOption, record, run } from './action.js';

interface AddOpts {
  task: string;
  attr?: string[];
  labels?: string;
  preprocessScale?: number;
  fallback?: boolean;
  keep?: boolean;
  json?: boolean;
  home?: string;
}

export function register(program: Command): void {
  const task = program.command('task').description('manage local task models');
  task
    .command('add')
    .description('register MODEL.onnx as task ID: stored content-addressed, recorded as a new local KB version and activated')
    .argument('<model>', 'ONNX model file (one float32 input [batch, ...], first output = class scores)')
    .requiredOption('--task <id>', 'task id ("global" makes it the allocation fallback)')
    .option('--attr <key=value>', 'attribute that routes samples to this task (repeatable)', collect, [])
    .option('--labels <a,b,c>', 'class labels in output order (default: the replaced task\'s labels when the model has as many classes, else "0".."K-1")')
    .option('--preprocess-scale <s>', 'multiply inputs by s before inference (e.g. 0.00392 for 0..255 pixels)', numOption('--preprocess-scale'))
    .option('--fallback', 'make this task the fallback for samples no task matches')
    .option('--keep', 'keep serving this task when sync pulls a KB version without it (config rollout.keep_local_tasks: every local task)')
    .option('--json', 'one JSON record: task, version, previous_version, replaced, unchanged, model, labels_kept, previous_labels')
    .addHelpText(
      'after',
      `
Examples:
  sedna-ll task add berlin.onnx --task berlin --attr site=berlin --labels cat,dog
  sedna-ll task add global.onnx --task global --preprocess-scale 0.00392
  sedna-ll task add berlin.onnx --task berlin --attr site=berlin --keep   # survives KB pulls

${EXIT_HELP}
`,
    )
    .action(
      run(async (model: string, opts: AddOpts, cmd: Command) => {
        const [{ parseAttrPairs }, { withHome }] = await Promise.all([import('../format/attrs.js'), import('../store/open-home.js')]);
        let attrs: Record<string, string>;
        try {
          attrs = parseAttrPairs(opts.attr);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        const labels = opts.labels !== undefined ? opts.labels.split(',').map((l) => l.trim()) : undefined;
        const { addTaskKeepingLabels } = await import('../store/task-keep-labels.js');
        const { setKept } = await import('../store/kept-tasks.js');
        const r = await withHome((cmd.optsWithGlobals() as AddOpts).home, async (h) => {
          const added = await addTaskKeepingLabels(h.paths, h.db, { modelFile: model, task: opts.task, attrs, labels, scale: opts.preprocessScale, fallback: opts.fallback });
          if (opts.keep) setKept(h.db, opts.task, true);
          return added;
        });
        const { version, previous, ...fields } = r;
        if (opts.json) return record({ ...fields, version, previous_version: previous, kept: !!opts.keep });
        if (r.labels_note) process.stderr.write(`sedna-ll: ${r.labels_note}\n`);
        if (r.unchanged) process.stdout.write(`task ${r.task} unchanged (version ${r.version} already holds this model)\n`);
        else
          process.stdout.write(
            `${r.replaced ? 'replaced' : 'added'} task ${r.task} (model ${r.model.sha256.slice(0, 12)}, ${r.model.labels.length} classes, ${r.model.output_kind}); active version ${r.version}${r.previous ? ` (previous ${r.previous})` : ''}\n`,
          );
      }),
    );
}
