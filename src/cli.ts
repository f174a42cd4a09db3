// The commander program: registers commands, nothing else. Command modules import their heavy
// dependencies (onnxruntime-node, undici, tar, fastify) lazily inside their actions, so that
// `sedna-ll --version` and `--help` stay fast for cron and scripts.
import { Command, CommanderError } from './commander.js';
import { EXIT, EXIT_HELP } from './errors.js';
import { packageVersion } from './version.js';

interface CommandModule {
  register(program: Command): void;
}

// Each module registers the one command it is named after. `sedna-ll infer ...` loads infer's
// module only: compiling the other nine (and kb's seven) costs ~10 ms of every start, and cron
// calls sedna-ll often. --help, `help X`, no command or an unknown name load all of them, in this
// order (the order --help lists them in).
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  init: () => import('./commands/init.js'),
  task: () => import('./commands/task.js'),
  infer: () => import('./commands/infer.js'),
  feedback: () => import('./commands/feedback.js'),
  samples: () => import('./commands/samples.js'),
  status: () => import('./commands/status.js'),
  serve: () => import('./commands/serve.js'),
  sync: () => import('./commands/sync.js'),
  model: () => import('./commands/model.js'),
  kb: () => import('./commands/kb.js'),
  config: () => import('./commands/config.js'),
  completion: () => import('./commands/completion.js'),
};
/** Commands that need every other command registered: they walk the whole tree. */
const WHOLE_TREE = new Set(['completion']);

/** The command word of argv when only --home precedes it (so the program's own help or errors cannot show), else null. */
function commandWord(args: string[]): string | null {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--home') i++;
    else if (!a.startsWith('--home=')) return a.startsWith('-') ? null : a;
  }
  return null;
}

// No onnxruntime telemetry in any command, nor in the processes they start (kb learn workers):
// see disableOrtTelemetry in runtime/sessions.ts.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

// `sedna-ll ... | head` closes the pipe early: that is the reader's choice, not our failure.
// Any other write error (stdout on a full disk: ENOSPC, a dead terminal: EIO) fails the run
// with one line, not a stack trace; what the command stored before it stays stored.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    if (stream === process.stdout) {
      try {
        process.stderr.write(`sedna-ll: stdout: write failed (${e.code ?? e.message})\n`);
      } catch {
        // stderr is broken too: the exit code is all that is left
      }
    }
    process.exit(EXIT.FAILURE);
  });
}

// A parse error is reported by us (below) as one line plus where to look, not commander's
// "error: ..." followed by the whole help; commander's text is only captured here.
let parseError: string | null = null;
const program = new Command('sedna-ll')
  .description('Edge-cloud collaborative lifelong learning for offline edge gateways')
  .version(packageVersion())
  .option('--home <dir>', 'edge home (default: $SEDNA_LL_HOME or ~/.sedna-ll)')
  .addHelpText('after', `\nEnvironment: see README "Environment variables" (SEDNA_LL_HOME, SEDNA_LL_KB_DATA, NO_COLOR, ...).\n\n${EXIT_HELP}\n`)
  .configureOutput({ outputError: (text) => void (parseError = text) })
  .exitOverride();

// An async function, not top-level await: the single-file executables bundle this module as
// CommonJS (what a Node SEA runs), which has no top-level await.
async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const word = commandWord(argv);
  const load = word !== null && Object.hasOwn(COMMANDS, word) && !WHOLE_TREE.has(word) ? [COMMANDS[word]] : Object.values(COMMANDS);
  for (const m of await Promise.all(load.map((f) => f()))) m.register(program);

  try {
    await program.parseAsync(['node', 'sedna-ll', ...helpAsFlag(program, argv)]);
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and --version exit 0; every parse problem is a usage error (exit 2)
      process.exitCode = e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      if (e.exitCode !== 0 && parseError !== null) await reportParseError(program, argv, parseError);
    } else {
      process.stderr.write(`sedna-ll: ${(e as Error).message}\n`);
      process.exitCode = EXIT.FAILURE;
    }
  }
}

void main();

/** `help kb device` -> `kb device --help`: commander's own help command only looks one word deep. */
function helpAsFlag(root: Command, args: string[]): string[] {
  let at = root;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--home') {
      i++;
      continue;
    }
    if (a.startsWith('-')) return args;
    if (a === 'help' && at.commands.length > 0) {
      const rest = args.slice(i + 1);
      return rest.length ? [...args.slice(0, i), ...rest, '--help'] : [...args.slice(0, i), '--help'];
    }
    const next = at.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!next) return args;
    at = next;
  }
  return args;
}

/** The deepest command argv names (options and arguments skipped). */
function commandOf(root: Command, args: string[]): Command {
  let at = root;
  for (const a of args) {
    if (a === '--') break;
    const next = a.startsWith('-') ? undefined : at.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (next) at = next;
  }
  return at;
}

/** One line on stderr, where to read more, and the --json run record when asked for. */
async function reportParseError(root: Command, args: string[], text: string): Promise<void> {
  const { commandPath, errorPrefix, finishRecord, writeRecord } = await import('./commands/output.js');
  const message = text.replace(/^error: /, '').trim().split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
  const path = commandPath(commandOf(root, args));
  process.stderr.write(`${await errorPrefix()} ${message}\nsee \`sedna-ll${path ? ` ${path}` : ''} --help\`\n`);
  const dd = args.indexOf('--');
  if ((dd < 0 ? args : args.slice(0, dd)).includes('--json')) {
    const h = args.indexOf('--home');
    writeRecord(await finishRecord(path, h >= 0 ? args[h + 1] : args.find((a) => a.startsWith('--home='))?.slice(7), EXIT.USAGE, message));
  }
}
