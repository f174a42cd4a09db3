// `sedna-ll kb channel add|ls`, `kb rollout`, `kb promote`, `kb fleet`, `kb bundle`: fleet
// rollout on the KB (logic in src/kb/rollout.ts and src/kb/bundle.ts).
import type { Command } from 'commander';
import { EXIT_HELP, UsageError } from '../errors.js';
import { intOption, numOption, printList, printResult, run } from './action.js';
import { verdict } from './color.js';
import { printable } from './table.js';
import { DATA_HELP, kbOpen } from './kb-common.js';
const help = (text = '') => `${text ? `\n${text}\n` : ''}\n${EXIT_HELP}\n`;

function versionArg(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`version "${v}": expected a KB version number >= 1`);
  return n;
}

const iso = (ts: number | null | undefined) => (ts ? new Date(ts).toISOString().replace(/\.\d+Z$/, 'Z') : '-');

export function register(kb: Command): void {
  const channel = kb.command('channel').description('rollout channels: named version pointers devices follow');

  channel
    .command('add <name>')
    .description('create a channel (or change its abort settings)')
    .option('--data <dir>', DATA_HELP)
    .option('--abort-pct <p>', 'abort a rollout when at least this % of reporting devices failed its trial (default 50)', numOption('--abort-pct'))
    .option('--min-reports <n>', '... and at least this many devices reported a trial result (default 2)', intOption('--min-reports', 1))
    .option('--json', 'print the channel as JSON')
    .addHelpText('after', help())
    .action(
      run(async (name: string, o: { data?: string; abortPct?: number; minReports?: number; json?: boolean }) => {
        const { addChannel, channelConfig } = await import('../kb/rollout.js');
        await kbOpen(o, async (store) => {
          const c = await addChannel(store, name, { abort_fail_pct: o.abortPct, abort_min_reports: o.minReports });
          const cfg = channelConfig(c);
          printResult(o.json, { name: c.name, version: c.version, previous_version: c.previous_version, config: cfg }, `channel "${c.name}" (version ${c.version ?? '-'}; abort at ${cfg.abort_fail_pct}% failed of >= ${cfg.abort_min_reports} reports)`);
        });
      }),
    );

  channel
    .command('ls')
    .description('list channels: version, previous version, devices, rollout state')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'JSON array')
    .addHelpText('after', help())
    .action(
      run(async (o: { data?: string; json?: boolean }) => {
        const { listChannels } = await import('../kb/rollout.js');
        await kbOpen(o, async (store) => {
          const list = await listChannels(store);
          await printList('channels', list, {
            json: o.json,
            empty: 'no channels',
            columns: {
              CHANNEL: (c) => c.name,
              VERSION: (c) => c.version,
              PREVIOUS: (c) => c.previous_version,
              DEVICES: (c) => c.devices,
              ROLLOUT: (c, p) => (c.rollout ? `${verdict(p, c.rollout.status)} v${c.rollout.version}: ${c.rollout.passed} pass, ${c.rollout.failed} fail${c.rollout.reason ? ` (${printable(c.rollout.reason)})` : ''}` : '-'),
            },
          });
        });
      }),
    );

  kb.command('rollout <version>')
    .description("point a channel at a published version (the channel's current version is kept as the fallback)")
    .requiredOption('--channel <name>', 'channel to roll the version out to')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'print the channel as JSON')
    .addHelpText('after', help('Devices on the channel pull it on their next sync and report their trial; the rollout is aborted automatically (channel back to its previous version) when the channel\'s abort threshold of failed trials is reached.'))
    .action(
      run(async (version: string, o: { channel: string; data?: string; json?: boolean }) => {
        const { rolloutVersion } = await import('../kb/rollout.js');
        await kbOpen(o, async (store) => {
          const c = await rolloutVersion(store, versionArg(version), o.channel);
          printResult(o.json, { ...c }, `channel "${c.name}" now at version ${c.version} (fallback ${c.previous_version ?? '-'})`);
        });
      }),
    );

  kb.command('promote')
    .description('roll the version of one channel out to another (refused when any device of the source channel failed its trial)')
    .requiredOption('--from <channel>', 'source channel (e.g. canary)')
    .requiredOption('--to <channel>', 'target channel (e.g. stable)')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'print the target channel as JSON')
    .addHelpText('after', help())
    .action(
      run(async (o: { from: string; to: string; data?: string; json?: boolean }) => {
        const { promote } = await import('../kb/rollout.js');
        await kbOpen(o, async (store) => {
          const c = await promote(store, o.from, o.to);
          printResult(o.json, { ...c }, `promoted version ${c.version} from "${o.from}" to "${o.to}" (fallback ${c.previous_version ?? '-'})`);
        });
      }),
    );

  kb.command('fleet')
    .description('each device: channel, active version, last seen, last trial result')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'JSON array')
    .addHelpText('after', help())
    .action(
      run(async (o: { data?: string; json?: boolean }) => {
        const { fleet } = await import('../kb/rollout.js');
        await kbOpen(o, async (store) => {
          const rows = await fleet(store);
          await printList('devices', rows, {
            json: o.json,
            empty: 'no devices',
            columns: {
              DEVICE: (d) => d.id + (d.revoked ? ' (revoked)' : ''),
              CHANNEL: (d) => d.channel,
              ACTIVE: (d) => d.active_version,
              'LAST SEEN': (d) => (d.last_seen ? iso(Date.parse(d.last_seen)) : '-'),
              'LAST TRIAL': (d, p) => (d.last_trial ? `v${d.last_trial.version} ${verdict(p, d.last_trial.result)}${d.last_trial.reason ? `: ${printable(d.last_trial.reason)}` : ''}` : '-'),
            },
          });
        });
      }),
    );

  kb.command('bundle <version>')
    .description('write a published version as a signed offline bundle with canary samples (expected outputs computed by running its models)')
    .requiredOption('-o, --output <file>', 'bundle file to write (.tar.gz)')
    .option('--canary-per-task <n>', 'canary records per task (held-out samples first, random inputs if none)', intOption('--canary-per-task', 1), 4)
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'machine-readable output')
    .addHelpText('after', help('Install it on an edge with "sedna-ll model install FILE".'))
    .action(
      run(async (version: string, o: { output: string; canaryPerTask: number; data?: string; json?: boolean }) => {
        const { buildKbBundle } = await import('../kb/bundle.js');
        await kbOpen(o, async (store) => {
          const r = await buildKbBundle(store, versionArg(version), o.output, { perTask: o.canaryPerTask });
          printResult(o.json, { ...r }, `wrote ${r.file}: version ${r.version}, ${r.bytes} bytes, sha256 ${r.sha256}; canary ${r.canary.map((c) => `${c.task} ${c.records} (${c.source})`).join(', ')}${r.key_transitions ? `; key chain of ${r.key_transitions} transition${r.key_transitions > 1 ? 's' : ''}` : ''}`);
        });
      }),
    );
}
