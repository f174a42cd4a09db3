// `sedna-ll model ...`: installed KB versions on this edge: list, install an offline bundle,
// activate (with trial), roll back, verify, prune, export. Logic lives in rollout/state.ts, rollout/files.ts
// and rollout/trial.ts; commands that change state run inside withRolloutLock (shared with sync).
import type { Command } from 'commander';
import { EXIT, EXIT_HELP } from '../errors.js';
import type { OpenHome } from '../store/open-home.js';
import { intOption, printResult, record, recordError, run } from './action.js';

const home = (cmd: Command) => (cmd.optsWithGlobals() as { home?: string }).home;

/** fn on the open edge home, holding the rollout lock (rollout/files.ts withRolloutLock). */
async function withLockedHome<T>(cmd: Command, fn: (h: OpenHome) => Promise<T>): Promise<T> {
  const [{ withHome }, { withRolloutLock }] = await Promise.all([import('../store/open-home.js'), import('../rollout/files.js')]);
  return withHome(home(cmd), (h) => withRolloutLock(h.paths, () => fn(h)));
}

async function withReadHome<T>(cmd: Command, fn: (h: OpenHome) => Promise<T> | T): Promise<T> {
  const { withHome } = await import('../store/open-home.js');
  return withHome(home(cmd), fn);
}

const help = (text: string) => `\n${text}\n\n${EXIT_HELP}\n`;

type Activation = import('../rollout/trial.js').ActivationResult;

/** An activation in the machine-output naming (version, active_version, previous_version). */
function activationRecord(r: Activation) {
  return { version: r.id, result: r.result, ...(r.reason ? { reason: r.reason } : {}), active_version: r.active, previous_version: r.previous, ...(r.checks ? { checks: r.checks } : {}) };
}

/** One line saying what an activation did, its verdict coloured for a person scanning it. */
async function describeActivation(r: Activation, policyN: number): Promise<string> {
  const { paint } = await import('./color.js');
  const p = await paint(process.stdout);
  switch (r.result) {
    case 'noop':
      return `version ${r.id} is already active`;
    case 'ok':
      return `dry run: version ${r.id} ${p.green('passed')} its checks (models load, canary ${r.checks?.canary.records ?? 0} records, ${r.checks?.latency_ms.toFixed(2)} ms/sample); nothing changed`;
    case 'pass':
      return `version ${r.id} is ${p.green('active')} (committed; previous ${r.previous ?? 'none'})`;
    case 'trial':
      return `version ${r.id} is active ${p.yellow('on trial')} for ${policyN} inferences (previous ${r.previous ?? 'none'} kept for rollback)`;
    case 'fail':
      return `version ${r.id} ${p.red('failed')} its trial: ${r.reason}; active version: ${r.active ?? 'none'}`;
  }
}

export function register(program: Command): void {
  const model = program
    .command('model')
    .description('installed KB versions: list, install a bundle, activate with trial, roll back, verify, prune, export')
    .addHelpText('after', help('Version states: staged, trial (active, being observed), active, previous (rollback target), failed (+ reason), retired.'));

  model
    .command('ls')
    .description('list installed versions with state, tasks and model hashes')
    .option('--json', 'machine-readable output (one JSON document)')
    .addHelpText('after', help(''))
    .action(
      run(async (opts: { json?: boolean }, cmd: Command) => {
        const { installedVersions } = await import('../rollout/files.js');
        return withReadHome(cmd, ({ paths, db }) => {
          const rows = installedVersions(paths, db);
          if (opts.json) return record({ versions: rows });
          if (!rows.length) return void process.stdout.write('no versions installed\n');
          for (const r of rows) {
            const mark = r.active ? '*' : ' ';
            const trial = r.trial && r.state === 'trial' ? ` trial ${r.trial.n}/${r.trial.of}` : '';
            const why = r.reason ? ` (${r.reason})` : '';
            process.stdout.write(`${mark} ${r.id.padEnd(10)} ${r.state.padEnd(8)} ${r.origin.padEnd(6)}${trial}${why}\n`);
            for (const t of r.tasks) process.stdout.write(`    ${t.id.padEnd(24)} ${t.model_sha256}\n`);
            if (r.problem) process.stdout.write(`    problem: ${r.problem}\n`);
          }
        });
      }),
    );

  model
    .command('install')
    .argument('<bundle>', 'offline bundle (.tar.gz: index.json, index.json.sig, models/<sha256>.onnx, canary.jsonl)')
    .description('verify and install an offline bundle as a staged version (nothing is visible until the signature and every sha256 verified)')
    .option('--activate', 'activate it with trial right after install')
    .option('--allow-downgrade', 'with --activate: also when it is older than the active version')
    .option('--json', 'machine-readable output')
    .addHelpText('after', help('Examples:\n  sedna-ll model install /media/usb/kb-v12.tar.gz\n  sedna-ll model install kb-v12.tar.gz --activate --json\n\nA refused bundle (bad signature, checksum, unsafe or unexpected entry, size caps, truncated) exits 5 and leaves no trace.'))
    .action(
      run(async (bundle: string, opts: { activate?: boolean; allowDowngrade?: boolean; json?: boolean }, cmd: Command) => {
        const { installBundle } = await import('../rollout/files.js');
        const { activateWithTrial } = await import('../rollout/trial.js');
        return withLockedHome(cmd, async ({ paths, db, cfg }) => {
          const inst = await installBundle(paths, db, bundle, cfg);
          if (inst.canary_note) process.stderr.write(`sedna-ll: ${bundle}: ${inst.canary_note}\n`);
          const act = opts.activate ? await activateWithTrial(paths, db, inst.id, { config: cfg, allowDowngrade: opts.allowDowngrade, reason: 'model install --activate' }) : null;
          if (opts.json) record({ version: inst.id, already: inst.already, tasks: inst.index.tasks.map((t) => t.id), canary: inst.canary, ...(inst.canary_note ? { canary_note: inst.canary_note } : {}), keys_adopted: inst.keys_adopted, activation: act ? activationRecord(act) : null });
          else {
            process.stdout.write(`${inst.already ? 'already installed' : 'installed'} version ${inst.id} (${inst.index.tasks.length} tasks, ${inst.canary} canary records)\n`);
            if (inst.keys_adopted.length) process.stdout.write(`adopted KB key ${inst.keys_adopted.map((f) => f.slice(0, 16)).join(', ')} from the bundle's key chain\n`);
            if (act) process.stdout.write((await describeActivation(act, cfg.rollout.trial_inferences)) + '\n');
          }
          return act?.result === 'fail' ? EXIT.VERIFY : EXIT.OK;
        });
      }),
    );

  model
    .command('activate')
    .argument('<version>', 'installed version id (see "model ls")')
    .description('check a version (models load, canary, latency) and make it active on trial; a failed check leaves the active version unchanged and exits 5')
    .option('--dry-run', 'run the checks only; change nothing')
    .option('--force', 'try a version that failed before')
    .option('--allow-downgrade', 'activate a signed version older than the active one')
    .option('--json', 'machine-readable output')
    .addHelpText('after', help('Examples:\n  sedna-ll model activate 12 --dry-run\n  sedna-ll model activate 12 --json\n  sedna-ll model activate 11 --force         # a version that failed before\n\nOn trial the version serves; after config rollout.trial_inferences inferences it is committed, or rolled back automatically if its unseen+hard rate is worse than the previous version\'s by more than rollout.trial_rate_factor.'))
    .action(
      run(async (version: string, opts: { dryRun?: boolean; force?: boolean; allowDowngrade?: boolean; json?: boolean }, cmd: Command) => {
        const { activateWithTrial } = await import('../rollout/trial.js');
        const go = async ({ paths, db, cfg }: OpenHome) => {
          const r = await activateWithTrial(paths, db, version, { config: cfg, dryRun: opts.dryRun, force: opts.force, allowDowngrade: opts.allowDowngrade, reason: 'model activate' });
          if (opts.json) record(activationRecord(r));
          else process.stdout.write((await describeActivation(r, cfg.rollout.trial_inferences)) + '\n');
          if (r.result === 'fail') recordError(EXIT.VERIFY, `version ${r.id} failed its check: ${r.reason ?? 'no reason given'}`);
          return r.result === 'fail' ? EXIT.VERIFY : EXIT.OK;
        };
        return opts.dryRun ? withReadHome(cmd, go) : withLockedHome(cmd, go);
      }),
    );

  model
    .command('rollback')
    .description('make the previous version active again; the current one is marked failed ("rolled back by operator")')
    .option('--json', 'machine-readable output')
    .addHelpText('after', help(''))
    .action(
      run(async (opts: { json?: boolean }, cmd: Command) => {
        const { rollbackActive } = await import('../rollout/trial.js');
        return withLockedHome(cmd, async ({ db }) => {
          const r = rollbackActive(db);
          printResult(opts.json, { from_version: r.from, to_version: r.to }, `rolled back from version ${r.from} to ${r.to}`);
        });
      }),
    );

  model
    .command('verify')
    .description('re-hash every installed index and model file, check signatures and the active pointer')
    .option('--json', 'machine-readable output')
    .addHelpText('after', help('Exits 5 when any problem is found.'))
    .action(
      run(async (opts: { json?: boolean }, cmd: Command) => {
        const { verifyInstalled } = await import('../rollout/files.js');
        return withReadHome(cmd, async ({ paths, db, cfg }) => {
          const r = await verifyInstalled(paths, db, cfg);
          if (opts.json) record(r);
          else {
            for (const pr of r.problems) process.stdout.write(`problem: ${pr}\n`);
            for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
            process.stdout.write(`${r.ok ? 'ok' : `${r.problems.length} problem(s)`}: ${r.versions} versions, ${r.models} model files checked\n`);
          }
          if (!r.ok) recordError(EXIT.VERIFY, `${r.problems.length} problem(s): ${r.problems[0]}`);
          return r.ok ? EXIT.OK : EXIT.VERIFY;
        });
      }),
    );

  model
    .command('prune')
    .description('remove old versions (kb/<id>/ and model files no remaining version uses); never the active, trial or previous one')
    .requiredOption('--keep <n>', 'newest versions to keep besides active and previous', intOption('--keep', 0))
    .option('--json', 'machine-readable output')
    .addHelpText('after', help(''))
    .action(
      run(async (opts: { keep: number; json?: boolean }, cmd: Command) => {
        const { pruneVersions } = await import('../rollout/files.js');
        return withLockedHome(cmd, async ({ paths, db }) => {
          const r = pruneVersions(paths, db, opts.keep);
          printResult(opts.json, r, `pruned ${r.removed.length} version(s)${r.removed.length ? ` (${r.removed.join(', ')})` : ''}, ${r.models_removed.length} model file(s); kept ${r.kept.join(', ') || 'none'}`);
        });
      }),
    );

  model
    .command('export')
    .argument('<version>', 'installed version id')
    .requiredOption('-o, --output <file>', 'bundle file to write (.tar.gz)')
    .description('write an installed version as an offline bundle (signature, models, canary from kb/<id>/canary.jsonl)')
    .option('--json', 'machine-readable output')
    .addHelpText('after', help('A local version ("local-<n>") has no KB signature: its bundle cannot be installed elsewhere.'))
    .action(
      run(async (version: string, opts: { output: string; json?: boolean }, cmd: Command) => {
        const { exportVersion } = await import('../rollout/files.js');
        return withReadHome(cmd, async ({ paths, db, cfg }) => {
          const r = await exportVersion(paths, db, cfg, version, opts.output);
          printResult(opts.json, r, `wrote ${r.file} (${r.bytes} bytes, sha256 ${r.sha256}${r.signed ? '' : ', UNSIGNED'}, ${r.canary} canary records)`);
        });
      }),
    );
}
