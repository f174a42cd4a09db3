// `sedna-ll kb task add` (register a task model in the KB) and `sedna-ll kb tasks` (list them).
import type { Command } from 'commander';
import { EXIT_HELP, UsageError } from '../errors.js';
import { collect, numOption, printList, printResult, run } from './action.js';
import { DATA_HELP, kbOpen } from './kb-common.js';

export function register(kb: Command): void {
  const task = kb.command('task').description('task models registered in the KB');
  task
    .command('add <model>')
    .description('register an ONNX model as the model of a task (replaces the task model if the task exists); publish with "kb publish"')
    .option('--data <dir>', DATA_HELP)
    .requiredOption('--task <id>', 'task id')
    .option('--attr <key=value>', 'attribute that routes samples to this task (repeatable)', collect, [])
    .option('--labels <a,b,c>', 'class labels in output order (default: 0..K-1)')
    .option('--fallback', 'this task serves samples no other task matches')
    .option('--output-kind <kind>', 'probabilities | logits (default: from the output name)')
    .option('--scale <x>', 'preprocessing: multiply inputs by x (e.g. 0.00392 for 1/255; with --image the default is 1/255)', numOption('--scale'))
    .option('--image <WxHxC>', 'the task takes images: decode, resize to W x H, C = 1 (gray) or 3 channels, NCHW; the model input must be [N,C,H,W] or [N,W*H*C]')
    .option('--json', 'print the task record as JSON')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (model: string, o: { data?: string; task: string; attr: string[]; labels?: string; fallback?: boolean; outputKind?: string; scale?: number; image?: string; json?: boolean }) => {
        const { parseAttrPairs } = await import('../format/attrs.js');
        const { addTaskModel } = await import('../kb/tasks.js');
        if (o.outputKind !== undefined && o.outputKind !== 'probabilities' && o.outputKind !== 'logits') {
          throw new UsageError(`--output-kind "${o.outputKind}": expected probabilities or logits`);
        }
        let attrs: Record<string, string>;
        try {
          attrs = parseAttrPairs(o.attr);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        const labels = o.labels === undefined ? undefined : o.labels.split(',').map((s) => s.trim());
        const img = o.image === undefined ? null : /^(\d+)x(\d+)x([13])$/.exec(o.image);
        if (o.image !== undefined && !img) throw new UsageError(`--image "${o.image}": expected WxHxC with C 1 or 3, e.g. 28x28x1`);
        const preprocessing = img
          ? { kind: 'image' as const, width: Number(img[1]), height: Number(img[2]), channels: Number(img[3]) as 1 | 3, scale: o.scale ?? 1 / 255, layout: 'NCHW' as const }
          : o.scale !== undefined
            ? { kind: 'vector' as const, scale: o.scale }
            : undefined;
        if (labels && labels.some((l) => !l)) throw new UsageError(`--labels "${o.labels}": empty label`);
        await kbOpen(o, async (store) => {
          const t = await addTaskModel(store, {
            modelPath: model,
            id: o.task,
            attrs: o.attr.length ? attrs : undefined,
            labels,
            fallback: o.fallback,
            outputKind: o.outputKind as 'probabilities' | 'logits' | undefined,
            preprocessing,
          });
          printResult(o.json, { ...t }, `task "${t.id}": model ${t.model_sha.slice(0, 12)} (${t.model_size} bytes, ${t.labels.length} labels)${t.fallback ? ', fallback' : ''}`);
        });
      }),
    );

  kb.command('tasks')
    .description('tasks the KB knows: attributes, model, parent, samples, metrics')
    .option('--data <dir>', DATA_HELP)
    .option('--all', 'include retired tasks')
    .option('--json', 'JSON array of task records')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (o: { data?: string; all?: boolean; json?: boolean }) => {
        await kbOpen(o, async (store) => {
          const tasks = await store.listTasks({ includeRetired: !!o.all });
          await printList('tasks', tasks, {
            json: o.json,
            empty: 'no tasks',
            columns: {
              TASK: (t) => t.id + (t.fallback ? ' (fallback)' : '') + (t.retired ? ' (retired)' : ''),
              ATTRS: (t) => Object.entries(t.attrs).map(([k, v]) => `${k}=${v}`).join(',') || '-',
              MODEL: (t) => t.model_sha.slice(0, 12),
              PARENT: (t) => t.parent,
              SAMPLES: (t) => t.samples,
              ROUND: (t) => t.updated_round,
              METRICS: (t) => Object.entries(t.metrics).map(([k, v]) => `${k}=${Number(v.toFixed(4))}`).join(' ') || '-',
            },
          });
        });
      }),
    );
}
