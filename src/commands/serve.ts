// `sedna-ll serve`: the long-running inference server (src/runtime/serve.ts), imported lazily.
import type { Command } from 'commander';
import { EXIT_HELP } from '../errors.js';
import { intOption, run } from './action.js';

interface ServeOpts {
  socket?: string;
  port?: number;
  host: string;
  log: boolean;
  recheck: number;
  maxBodyMb: number;
  seed?: number;
  home?: string;
}

const HELP = `
Endpoints:
  POST /infer    body: one record {"id"?, "x": [...], "attrs"?, "task"?} or an array of them;
                 answer: the same JSON object(s) infer prints per line (a bad record inside an
                 array answers {"id","error","where"}; a single bad record answers 422)
  GET  /healthz  {"ok": true, "version", "tasks", "requests"}
  GET  /metrics  Prometheus text: inference latency histogram, records, outbox depth and
                 bytes, evictions, the active version and its trial (README "Metrics")
On start one JSON line {"listening": URL} is printed on stdout. SIGTERM/SIGINT: finish the
requests in flight, then exit 0. SIGHUP: re-read the active KB version now (it is also re-read
every --recheck requests and once a second; a new version is switched to between requests,
without a restart).

${EXIT_HELP}
`;

export function register(program: Command): void {
  program
    .command('serve')
    .description('serve inference over loopback HTTP or a Unix socket; logs hard/unseen samples to the same outbox')
    .option('--socket <path>', 'listen on this Unix socket')
    .option('--port <n>', 'listen on this TCP port (0: any free port)', intOption('--port', 0, 65535))
    .option('--host <addr>', 'TCP address to bind', '127.0.0.1')
    .option('--no-log', 'do not write hard/unseen samples to the outbox')
    .option('--recheck <n>', 're-read the active version every N requests', intOption('--recheck', 1), 50)
    .option('--max-body-mb <n>', 'largest request body in MiB', intOption('--max-body-mb', 1), 64)
    .option('--seed <n>', 'seed of the random hard-example filter (default: time)', intOption('--seed', 0))
    .addHelpText('after', HELP)
    .action(
      run(async (opts: ServeOpts, cmd: Command) => {
        const g = cmd.optsWithGlobals() as ServeOpts;
        const { runServe } = await import('../runtime/serve.js');
        await runServe({
          home: g.home,
          socket: opts.socket,
          port: opts.port,
          host: opts.host,
          log: opts.log,
          recheckEvery: opts.recheck,
          maxBodyBytes: opts.maxBodyMb * 1024 * 1024,
          seed: opts.seed,
          onListening: (w) => process.stdout.write(JSON.stringify({ listening: w.url, ...(w.port !== undefined ? { port: w.port } : {}) }) + '\n'),
        });
      }),
    );
}
