// `sedna-ll kb publish`: a new signed KB version from the tasks registered in the KB.
import type { Command } from 'commander';
import { EXIT_HELP } from '../errors.js';
import { printResult, run } from './action.js';
import { DATA_HELP, kbOpen, UNSEEN_OPTIONS, unseenRequest, type UnseenFlags } from './kb-common.js';

export function register(kb: Command): void {
  kb.command('publish')
    .description('publish a new KB version (signed index.json + model blobs) of the registered tasks and point a channel at it')
    .option('--data <dir>', DATA_HELP)
    .option('--channel <name>', 'channel that gets the new version', 'stable')
    .option('--note <text>', 'free-form note stored in the index')
    .option('--force', 'publish even when nothing changed since the latest version')
    .option(...UNSEEN_OPTIONS[0])
    .option(...UNSEEN_OPTIONS[1])
    .option(...UNSEEN_OPTIONS[2])
    .option('--json', 'print {version, parent, channel, index_sha, tasks} as JSON ({unchanged: N} when nothing changed)')
    .addHelpText(
      'after',
      `
When the tasks, models, allocation, unseen and hard-example settings are the same as in the
latest version, nothing is published ("nothing changed since version N", exit 0): every edge
would pull the copy and start a trial of it. --force publishes anyway. New --unseen/--combine/--fpr
settings recalibrate every task's thresholds from its held-out samples before publishing.
${EXIT_HELP}
`,
    )
    .action(
      run(async (o: UnseenFlags & { data?: string; channel: string; note?: string; force?: boolean; json?: boolean }) => {
        const { publishIfChanged } = await import('../kb/publish.js');
        const { checkName } = await import('../kb/devices.js');
        checkName('--channel', o.channel);
        const req = await unseenRequest(o);
        await kbOpen(o, async (store) => {
          const { applyUnseenSettings } = await import('../learn/unseen-settings.js');
          const unseen = await applyUnseenSettings(store, req);
          const { published: r, unchanged } = await publishIfChanged(store, { channel: o.channel, notes: o.note ? { note: o.note } : undefined, force: o.force, unseen });
          if (r === null) {
            return printResult(o.json, { unchanged }, `nothing changed since version ${unchanged}; not published (--force publishes anyway; "kb rollout ${unchanged} --channel ${o.channel}" points the channel at it)`);
          }
          const out = { version: r.version.n, parent: r.version.parent, channel: o.channel, index_sha: r.version.index_sha, tasks: r.index.tasks.map((t) => ({ id: t.id, sha256: t.model.sha256 })) };
          printResult(o.json, out, `published KB version ${out.version} (parent ${out.parent ?? '-'}) to channel "${o.channel}": ${out.tasks.length} task(s)`);
        });
      }),
    );
}
