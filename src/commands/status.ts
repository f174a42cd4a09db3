// `sedna-ll status`: device, versions, tasks, outbox, quota, evictions, last sync.
import type { Command } from 'commander';
import { EXIT_HELP } from '../format/exit-codes.js';
import { printJson, run } from './action.js';

export function register(program: Command): void {
  program
    .command('status')
    .description('device id, active KB version, tasks, outbox counts and bytes, quota, evictions, last sync')
    .option('--json', 'machine-readable output')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (opts: { json?: boolean }, cmd: Command) => {
        const [{ withHome }, { edgeStatus }, { humanBytes, isoTime, printTable }] = await Promise.all([
          import('../store/open-home.js'),
          import('../store/status.js'),
          import('./table.js'),
        ]);
        const s = await withHome((cmd.optsWithGlobals() as { home?: string }).home, (h) => edgeStatus(h.paths, h.db, h.cfg), { readonly: 'when-needed' });
        if (opts.json) return printJson(s);
        const o = s.outbox;
        const e = s.evictions;
        const w = (l: string) => process.stdout.write(l + '\n');
        w(`device     ${s.device_id}`);
        w(`home       ${s.home}`);
        w(`kb         ${s.kb_url ?? '(none: offline only)'}`);
        w(`version    ${s.active_version ?? '(none; run "sedna-ll task add" or "sedna-ll sync")'}${s.previous_version ? ` (previous ${s.previous_version})` : ''}`);
        if (s.active_error) w(`           ERROR: ${s.active_error}`);
        w(`outbox     ${o.pending} pending (${humanBytes(o.pendingBytes)}), ${o.uploaded} uploaded (${humanBytes(o.uploadedBytes)}), ${o.labelsPending} labels pending${o.rejected ? `, ${o.rejected} rejected by the KB` : ''}`);
        w(`quota      ${humanBytes(o.bytes)} of ${o.maxBytes ? humanBytes(o.maxBytes) : 'unlimited'}${o.used_pct !== null ? ` (${o.used_pct}%)` : ''}; database ${humanBytes(s.db_bytes)}`);
        w(`evicted    ${e.count} (${humanBytes(e.bytes)}): ${e.uploaded} uploaded, ${e.pending} pending (${e.labelled} labelled)`);
        w(`last sync  ${s.last_sync ? `${isoTime(s.last_sync.time)} exit ${s.last_sync.result ?? '?'}` : 'never'}`);
        if (s.tasks.length) {
          w('');
          await printTable(
            ['TASK', 'ATTRS', 'CLASSES', 'MODEL', 'FALLBACK'],
            s.tasks.map((t) => [t.id, Object.entries(t.attrs).map(([k, v]) => `${k}=${v}`).join(',') || '-', t.labels, t.model.slice(0, 12), t.fallback ? 'yes' : '']),
          );
        }
      }),
    );
}
