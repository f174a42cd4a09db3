// The commander program: registers commands, nothing else. Command modules import their heavy
// dependencies (onnxruntime-node, undici, tar, fastify) lazily inside their actions, so that
// `sedna-ll --version` and `--help` stay fast for cron and scripts.
import { Command, CommanderError } from 'commander';
import { EXIT, EXIT_HELP } from './format/exit-codes.js';
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
};

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
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw e;
  });
}

const program = new Command('sedna-ll')
  .description('Edge-cloud collaborative lifelong learning for offline edge gateways')
  .version(packageVersion())
  .option('--home <dir>', 'edge home (default: $SEDNA_LL_HOME or ~/.sedna-ll)')
  .addHelpText('after', `\n${EXIT_HELP}\n`)
  .showHelpAfterError()
  .exitOverride();

// An async function, not top-level await: the single-file executables bundle this module as
// CommonJS (what a Node SEA runs), which has no top-level await.
async function main(): Promise<void> {
  const word = commandWord(process.argv.slice(2));
  const load = word !== null && Object.hasOwn(COMMANDS, word) ? [COMMANDS[word]] : Object.values(COMMANDS);
  for (const m of await Promise.all(load.map((f) => f()))) m.register(program);

  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and --version exit 0; every parse problem is a usage error (exit 2)
      process.exitCode = e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    } else {
      process.stderr.write(`sedna-ll: ${(e as Error).message}\n`);
      process.exitCode = EXIT.FAILURE;
    }
  }
}

void main();
