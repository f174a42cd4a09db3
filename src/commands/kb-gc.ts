// `sedna-ll kb gc`: list (default) or remove (--delete) blobs nothing references.
import type { Command } from 'commander';
import { EXIT_HELP } from '../errors.js';
import { intOption, record, run } from './action.js';
import { DATA_HELP, kbOpen } from './kb-common.js';

export function register(kb: Command): void {
  kb.command('gc')
    .description('find blobs no task, published version or sample references (dry run); --delete removes them')
    .option('--data <dir>', DATA_HELP)
    .option('--delete', 'remove the orphaned blobs (default: only list them)')
    .option('--dry-run', 'only list them (the default; wins over --delete)')
    .option('--grace <minutes>', 'keep unreferenced blobs younger than this: a publish or push may be about to reference them', intOption('--grace', 0), 60)
    .option('--json', 'print {dry_run, blobs, referenced, young, orphans: [{sha256, size, age_minutes}], orphan_bytes, deleted} as JSON')
    .addHelpText(
      'after',
      `
Works on the KB's blob store, whichever it is (DATA/blobs/ or --blobs s3://... / $SEDNA_LL_KB_BLOBS).
Safe while the KB serves: blobs written within the grace period are never removed.

Examples:
  sedna-ll kb gc --data /srv/sedna-kb
  sedna-ll kb gc --data /srv/sedna-kb --delete --json
${EXIT_HELP}
`,
    )
    .action(
      run(async (o: { data?: string; delete?: boolean; dryRun?: boolean; grace: number; json?: boolean }) => {
        const { collectGarbage } = await import('../kb/gc.js');
        const { humanBytes } = await import('../units.js');
        await kbOpen(o, async (store) => {
          const r = await collectGarbage(store, { dryRun: o.dryRun === true || o.delete !== true, graceMinutes: o.grace });
          if (o.json) return record(r);
          for (const b of r.orphans) process.stdout.write(`${b.sha256}  ${humanBytes(b.size)}  ${b.age_minutes} min old\n`);
          const what = r.dry_run ? `${r.orphans.length} orphaned (${humanBytes(r.orphan_bytes)}); "kb gc --delete" removes them` : `${r.deleted} removed (${humanBytes(r.orphan_bytes)})`;
          process.stdout.write(`${r.blobs} blob(s): ${r.referenced} referenced, ${r.young} younger than ${r.grace_minutes} min, ${what}\n`);
        });
      }),
    );
}
