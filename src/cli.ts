// The commander program: registers commands, nothing else. Command modules import their heavy
// dependencies (onnxruntime-node, undici, tar, fastify) lazily inside their actions, so that
// `sedna-ll --version` and `--help` stay fast for cron and scripts.
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT, EXIT_HELP } from './format/exit-codes.js';
import * as init from './commands/init.js';
import * as task from './commands/task.js';
import * as infer from './commands/infer.js';
import * as feedback from './commands/feedback.js';
import * as samples from './commands/samples.js';
import * as status from './commands/status.js';
import * as serve from './commands/serve.js';
import * as sync from './commands/sync.js';
import * as model from './commands/model.js';
import * as kb from './commands/kb.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

// `sedna-ll ... | head` closes the pipe early: that is the reader's choice, not our failure.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw e;
  });
}

const program = new Command('sedna-ll')
  .description('Edge-cloud collaborative lifelong learning for offline edge gateways')
  .version(pkg.version)
  .option('--home <dir>', 'edge home (default: $SEDNA_LL_HOME or ~/.sedna-ll)')
  .addHelpText('after', `\n${EXIT_HELP}\n`)
  .showHelpAfterError()
  .exitOverride();

for (const m of [init, task, infer, feedback, samples, status, serve, sync, model, kb]) m.register(program);

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
