// `sedna-ll infer`: offline inference over a stream of samples (src/runtime/infer.ts).
// The runtime (onnxruntime-node, better-sqlite3) is imported inside the action only.
import { type Command, Option } from '../commander.js';
import { EXIT_HELP } from '../errors.js';
import { intOption, record, recordToStderr, run } from './action.js';

interface InferOpts {
  format?: 'jsonl' | 'csv' | 'npy' | 'image';
  features?: string;
  attrs?: string;
  task?: string;
  batch: number;
  strict?: boolean;
  log: boolean;
  seed?: number;
  json?: boolean;
  home?: string;
}

const HELP = `
Input (FILE, a directory of images, or "-"/nothing for stdin; format from the extension):
  jsonl   one record per line: {"id"?: string|number, "x": [numbers], "attrs"?: {k: v}, "task"?: id}
  csv     header row; --features COLS --attrs COLS (names, 1-based numbers "2-785", or "a..b")
  npy     float32/float64 tensor, one sample per row of the leading dimension
  image   PNG/JPEG file or directory: decoded, resized (bilinear), normalised per the model
For jsonl/npy/image, --attrs k=v[,k=v] applies attributes to every sample.

Output: one JSON line per good input, in input order:
  {"id","task","label","scores","hard","hard_reasons","unseen","unseen_reason"?,"logged","sample_id"?}
"hard_reasons" names the filters that fired ("<filter>:capped" when its rate cap was reached;
such a sample is logged only if another reason holds). "logged": true is printed only after
the sample is durably in the outbox; "sample_id" is what "sedna-ll feedback --sample" takes.
Bad records are reported on stderr ("sedna-ll: line N: reason") and skipped; --strict stops
at the first one with exit 1. Input with bad records and no good one exits 1 (wrong format?);
empty input exits 0.

Examples:
  echo '{"id":"a1","x":[0.1,0.7,0.2],"attrs":{"site":"berlin"}}' | sedna-ll infer
  sedna-ll infer frames.csv --features 2-785 --attrs site --batch 256 > predictions.jsonl
  sedna-ll infer photos/ --attrs site=berlin --json 2>> infer-runs.jsonl

${EXIT_HELP}
`;

export function register(program: Command): void {
  program
    .command('infer')
    .description('run samples through the active KB version: task allocation, ONNX inference, hard-example and unseen-task detection, outbox logging')
    .argument('[file]', 'input file or image directory; "-" or omitted: stdin')
    .addOption(new Option('--format <fmt>', 'input format (default: from the file extension, stdin: jsonl)').choices(['jsonl', 'csv', 'npy', 'image']))
    .option('--features <cols>', 'CSV feature columns')
    .option('--attrs <spec>', 'CSV attribute columns; other formats: k=v[,k=v] for every sample')
    .option('--task <id>', 'send every sample to this task (no allocation)')
    .option('--batch <n>', 'samples per inference window, grouped per task', intOption('--batch', 1), 256)
    .option('--strict', 'stop at the first bad record (exit 1)')
    .option('--no-log', 'do not write hard/unseen samples to the outbox')
    .option('--seed <n>', 'seed of the random hard-example filter (default: time)', intOption('--seed', 0))
    .option('--json', 'also one JSON run record {inferred, logged, bad} as the last line on stderr (stdout is the data)')
    .addHelpText('after', HELP)
    .action(
      run(async (file: string | undefined, opts: InferOpts, cmd: Command) => {
        const g = cmd.optsWithGlobals() as InferOpts;
        const { runInfer } = await import('../runtime/infer.js');
        recordToStderr();
        const r = await runInfer({
          home: g.home,
          file,
          format: opts.format,
          features: opts.features,
          attrs: opts.attrs,
          task: opts.task ?? null,
          batch: opts.batch,
          strict: !!opts.strict,
          log: opts.log,
          seed: opts.seed,
        });
        record({ inferred: r.ok, logged: r.logged, bad: r.bad });
      }),
    );
}
