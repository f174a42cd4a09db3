// `sedna-ll sync`: one-shot push of the outbox and pull of KB deltas (made for cron).
import type { Command } from 'commander';
import { EXIT_HELP, UsageError } from '../errors.js';
import { resolveHome } from '../store/home.js';
import { intOption, numOption, record, recordError, run } from './action.js';

/**
 * Largest --max-time and --jitter, in seconds (~24.8 days): Node's timers take at most 2^31-1 ms.
 * Beyond it --max-time 99999999999 failed every request (ERR_OUT_OF_RANGE of the deadline's
 * timer, exit 1) and a longer --jitter became a 1 ms sleep (TimeoutOverflowWarning).
 */
const MAX_TIMER_S = 2_147_483;

interface SyncOpts {
  pushOnly?: boolean;
  pullOnly?: boolean;
  batchSize?: number;
  batchBytes?: number;
  maxTime?: number;
  jitter?: number;
  retries?: number;
  ca?: string;
  compress?: string;
  framing?: string;
  json?: boolean;
  home?: string;
}

export function register(program: Command): void {
  program
    .command('sync')
    .description('push pending samples and labels to the KB, pull a newer signed KB version (one-shot, for cron)')
    .option('--push-only', 'only push samples and labels')
    .option('--pull-only', 'only pull the index and models')
    .option('--batch-size <n>', 'samples per upload batch (default 1024 as binary frames, 500 as JSON)', intOption('--batch-size', 1))
    .option('--batch-bytes <bytes>', 'payload bytes per upload batch (default 4194304)', intOption('--batch-bytes', 1024))
    .option('--max-time <s>', 'bound the whole run to S seconds; work left is retried next time (exit 4; exit 3 if the KB never answered)', numOption('--max-time'))
    .option('--jitter <s>', 'sleep a random 0..S seconds first (spreads a cron fleet)', numOption('--jitter'))
    .option('--retries <n>', 'retries per request on resets, timeouts, 5xx and 429 (default 5)', intOption('--retries', 0))
    .option('--compress <mode>', 'push body encoding: auto (gzip only when it makes the push faster: slow links), gzip, none (default: config upload.compress, else auto)')
    .option('--framing <mode>', 'push body format: auto (binary sample frames when the KB announces them, else JSON; default) or json')
    .option('--ca <file>', 'PEM file of a private CA for an https KB (default: config kb.ca_file)')
    .option('--json', 'one JSON line per run: acked, rejected, pending, labels_pushed, pulled_version, activated, trial, warnings, kept_tasks, bytes_up, bytes_down, models_downloaded, model_bytes_down, duration_ms, ... (README "Machine output")')
    .addHelpText(
      'after',
      `
Proxies: HTTPS_PROXY / HTTP_PROXY / NO_PROXY are honoured.
stderr: warnings, retries and failures, one line each (a progress bar only on a TTY); stdout:
the --json record, or a summary on a TTY.
Only one sync runs per edge home (lock in locks/sync.lock); a lock left by a killed run is taken over.
Samples are marked uploaded only when the KB acknowledged storing them, so any interruption is
safe: the rest is sent next time. config.json upload.payload (raw | none, upload.per_task
overrides) decides whether payload bytes leave the device; upload.retention (keep | delete)
whether acked samples stay local. A pulled version is installed only after its ed25519
signature and every model's sha256 verified; with rollout.activate=auto it then goes through
the rollout health check and trial (manual: it stays staged for "model activate"). When the
KB aborted a rollout, the channel's older version comes back the same way (channel fallback).
Samples the KB rejects for good (another device's id, failed checks) are marked rejected with
its reason (see status) and never sent again.

Examples:
  sedna-ll sync
  sedna-ll sync --max-time 300 --jitter 60 --json >> /var/log/sedna-ll/sync.jsonl 2>> /var/log/sedna-ll/sync.err
  sedna-ll sync --push-only --compress gzip            # metered link, no model download now

  0  all pushed, edge has the newest version       3  KB unreachable, nothing done (nothing lost)
  4  partial: some batches acked / --max-time hit  5  signature or checksum failed; nothing installed;
     / samples rejected by the KB in this run         or the pulled version failed its health check
                                                      (the previous version stays active)
  6  another sync holds the lock                   1  token refused (401/403) or unusable answer:
                                                      not "offline", retrying will not fix it

${EXIT_HELP}
`,
    )
    .action(
      run(async (opts: SyncOpts, cmd: Command) => {
        const g = cmd.optsWithGlobals() as SyncOpts;
        if (opts.pushOnly && opts.pullOnly) throw new UsageError('--push-only and --pull-only exclude each other');
        if (opts.maxTime !== undefined && !(opts.maxTime > 0 && opts.maxTime <= MAX_TIMER_S)) throw new UsageError(`--max-time "${opts.maxTime}": expected a number of seconds > 0 and <= ${MAX_TIMER_S}`);
        if (opts.compress !== undefined && !['auto', 'gzip', 'none'].includes(opts.compress)) throw new UsageError(`--compress "${opts.compress}": expected auto, gzip or none`);
        if (opts.framing !== undefined && !['auto', 'json'].includes(opts.framing)) throw new UsageError(`--framing "${opts.framing}": expected auto or json`);
        if (opts.jitter !== undefined && !(opts.jitter >= 0 && opts.jitter <= MAX_TIMER_S)) throw new UsageError(`--jitter "${opts.jitter}": expected seconds >= 0 and <= ${MAX_TIMER_S}`);
        const { runSync } = await import('../sync/run.js');
        const result = await runSync({
          home: resolveHome(g.home),
          // loaded only when a pull activates (rollout.activate auto): push-only runs skip it
          activate: async (...a) => (await import('../rollout/trial.js')).activateWithTrial(...a),
          pushOnly: opts.pushOnly,
          pullOnly: opts.pullOnly,
          batchSize: opts.batchSize,
          batchBytes: opts.batchBytes,
          maxTime: opts.maxTime,
          jitter: opts.jitter,
          retries: opts.retries,
          ca: opts.ca,
          compress: opts.compress as 'auto' | 'gzip' | 'none' | undefined,
          framing: opts.framing as 'auto' | 'json' | undefined,
        });
        const { summary, message, exit } = result;
        // exit and error are the record's envelope (output.ts), not fields of its own
        const { exit: _exit, error: _error, ...fields } = summary;
        for (const w of summary.warnings) process.stderr.write(`sedna-ll: warning: ${w}\n`);
        if (message) {
          process.stderr.write(`sedna-ll: sync: ${message}\n`);
          recordError(exit, message);
        }
        if (result.fallback) process.stderr.write(`sedna-ll: sync: the KB points this device's channel back at older version ${result.fallback.to}: downgrade ${result.fallback.activated ? 'activated' : 'staged'}\n`);
        if (opts.json) record(fields);
        else if (process.stdout.isTTY) {
          const { paint } = await import('./color.js');
          const p = await paint(process.stdout);
          const pulled = summary.pulled_version !== null ? `, pulled version ${summary.pulled_version}${summary.activated ? ' (activated)' : ' (staged)'}` : '';
          process.stdout.write(
            `sync: ${summary.acked} sample(s) acked, ${summary.pending} pending, ${summary.labels_pushed} label(s)${pulled}; ` +
              `${summary.bytes_up} B up, ${summary.bytes_down} B down in ${summary.duration_ms} ms (exit ${exit === 0 ? p.green('0') : p.red(String(exit))})\n`,
          );
        }
        return exit;
      }),
    );
}
