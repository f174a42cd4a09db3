// `sedna-ll status`: device, versions, tasks, outbox, quota, evictions, last sync.
import type { Command } from 'commander';
import { EXIT_HELP } from '../errors.js';
import { record, run } from './action.js';
import { humanBytes } from '../units.js';

const EXAMPLES = `
Examples:
  sedna-ll status
  sedna-ll status --json | jq .outbox.pending
  SEDNA_LL_HOME=/var/lib/sedna-ll sedna-ll status --json
`;

export function register(program: Command): void {
  program
    .command('status')
    .description('device id, active KB version, tasks, outbox counts and bytes, quota, evictions, trusted KB keys, last sync')
    .option('--json', 'one JSON record: active_version, previous_version, versions, tasks, outbox, evictions, db_bytes, trusted_keys, last_sync')
    .addHelpText('after', `${EXAMPLES}\n${EXIT_HELP}\n`)
    .action(
      run(async (opts: { json?: boolean }, cmd: Command) => {
        const [{ withHome }, { edgeStatus }, { printRows }, { paint, verdict }, { shortFingerprint, versionRange }] = await Promise.all([
          import('../store/open-home.js'),
          import('../store/status.js'),
          import('./table.js'),
          import('./color.js'),
          import('../format/key-chain.js'),
        ]);
        const { s, device } = await withHome((cmd.optsWithGlobals() as { home?: string }).home, (h) => ({ s: edgeStatus(h.paths, h.db, h.cfg), device: h.cfg.device_id }), { readonly: 'when-needed' });
        if (opts.json) return record({ ...s });
        const p = await paint(process.stdout);
        const o = s.outbox;
        const e = s.evictions;
        const w = (l: string) => process.stdout.write(l + '\n');
        w(`device     ${p.bold(device)}`);
        w(`home       ${s.home}`);
        w(`kb         ${s.kb_url ?? '(none: offline only)'}`);
        const state = s.versions.find((v) => v.id === s.active_version)?.state;
        w(`version    ${s.active_version ? `${p.bold(s.active_version)}${state && state !== 'active' ? ` (${verdict(p, state)})` : ''}` : p.yellow('(none; run "sedna-ll task add" or "sedna-ll sync")')}${s.previous_version ? ` (previous ${s.previous_version})` : ''}`);
        if (s.active_error) w(`           ${p.red(`ERROR: ${s.active_error}`)}`);
        w(`outbox     ${o.pending} pending (${humanBytes(o.pending_bytes)}), ${o.uploaded} uploaded (${humanBytes(o.uploaded_bytes)}), ${o.labels_pending} labels pending${o.rejected ? `, ${p.red(`${o.rejected} rejected by the KB`)}` : ''}`);
        const pct = o.used_pct !== null ? ` (${o.used_pct >= 90 ? p.red(`${o.used_pct}%`) : o.used_pct >= 75 ? p.yellow(`${o.used_pct}%`) : `${o.used_pct}%`})` : '';
        w(`quota      ${humanBytes(o.bytes)} of ${o.max_bytes ? humanBytes(o.max_bytes) : 'unlimited'}${pct}; database ${humanBytes(s.db_bytes)}`);
        w(`evicted    ${e.count ? p.yellow(String(e.count)) : '0'} (${humanBytes(e.bytes)}): ${e.uploaded} uploaded, ${e.pending} pending (${e.labelled} labelled)`);
        // a key per KB version range: after a rotation, the retired key still verifies what it signed
        w(`kb keys    ${s.trusted_keys.length ? s.trusted_keys.map((k) => `${shortFingerprint(k.fingerprint)} (${versionRange(k.after, k.upto)})`).join(', ') : s.kb_url ? p.yellow('(none: pulled versions cannot be verified; "sedna-ll config set kb.public_key ...")') : '(none)'}`);
        const ls = s.last_sync;
        w(`last sync  ${ls ? `${ls.time.replace(/\.\d{3}Z$/, 'Z')} exit ${ls.exit === 0 ? p.green('0') : p.red(String(ls.exit ?? '?'))}${ls.error ? `: ${ls.error}` : ''}` : 'never'}`);
        if (s.tasks.length) {
          w('');
          await printRows(s.tasks, {
            TASK: (t) => t.id,
            ATTRS: (t) => Object.entries(t.attrs).map(([k, v]) => `${k}=${v}`).join(',') || '-',
            CLASSES: (t) => t.classes,
            MODEL: (t) => t.model_sha256.slice(0, 12),
            FALLBACK: (t) => (t.fallback ? 'yes' : ''),
          });
        }
      }),
    );
}
