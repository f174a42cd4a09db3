// `sedna-ll kb publish`: a new signed KB version from the tasks registered in the KB.
import type { Command } from 'commander';
import { EXIT_HELP } from '../format/exit-codes.js';
import { printJson, run } from './action.js';

export function register(kb: Command): void {
  kb.command('publish')
    .description('publish a new KB version (signed index.json + model blobs) of the registered tasks and point a channel at it')
    .option('--data <dir>', 'KB data directory (default: $SEDNA_LL_KB_DATA)')
    .option('--channel <name>', 'channel that gets the new version', 'stable')
    .option('--note <text>', 'free-form note stored in the index')
    .option('--json', 'print {version, parent, channel, index_sha, tasks} as JSON')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (o: { data?: string; channel: string; note?: string; json?: boolean }) => {
        const { resolveKbData } = await import('../kb/paths.js');
        const { withKbStore } = await import('../kb/open.js');
        const { publishVersion } = await import('../kb/publish.js');
        const { checkName } = await import('../kb/devices.js');
        checkName('--channel', o.channel);
        await withKbStore(resolveKbData(o.data), async (store) => {
          const r = await publishVersion(store, { channel: o.channel, notes: o.note ? { note: o.note } : undefined });
          const out = { version: r.version.n, parent: r.version.parent, channel: o.channel, index_sha: r.version.index_sha, tasks: r.index.tasks.map((t) => ({ id: t.id, sha256: t.model.sha256 })) };
          if (o.json) return printJson(out);
          process.stdout.write(`published KB version ${out.version} (parent ${out.parent ?? '-'}) to channel "${o.channel}": ${out.tasks.length} task(s)\n`);
        });
      }),
    );
}
