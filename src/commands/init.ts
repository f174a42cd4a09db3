// `sedna-ll init`: create the edge home, or update the settings given on an existing one.
// Domain modules are imported inside the action so `sedna-ll --version` does not load them.
import type { Command } from 'commander';
import { EXIT_HELP } from '../errors.js';
import { numOption, printResult, run } from './action.js';

interface InitOpts {
  deviceId?: string;
  maxOutboxMb?: number;
  kbUrl?: string;
  tokenFile?: string;
  kbKey?: string;
  json?: boolean;
  home?: string;
}

export function register(program: Command): void {
  program
    .command('init')
    .description('create the edge home (config.json, edge.db, blobs/ models/ kb/); re-running updates only the options given')
    .option('--device-id <id>', 'this device\'s id (required the first time; never changes afterwards)')
    .option('--max-outbox-mb <n>', 'outbox disk quota in MiB (value-aware eviction beyond it)', numOption('--max-outbox-mb'))
    .option('--kb-url <url>', 'knowledge base URL (http:// or https://)')
    .option('--token-file <file>', 'file holding this device\'s KB token (stored with mode 0600)')
    .option('--kb-key <file>', 'PEM file of the KB\'s ed25519 public key (verifies published versions)')
    .option('--json', 'one JSON record: home, created, updated, outbox_max_bytes, kb_url, token')
    .addHelpText(
      'after',
      `\nThe home is --home, else $SEDNA_LL_HOME, else ~/.sedna-ll.

Examples:
  sedna-ll init --device-id gw-7
  sedna-ll init --device-id gw-7 --kb-url https://kb.example:9020 --token-file gw-7.token --kb-key kb.pub
  sedna-ll init --max-outbox-mb 2048          # later: change only the quota

${EXIT_HELP}\n`,
    )
    .action(
      run(async (opts: InitOpts, cmd: Command) => {
        const g = cmd.optsWithGlobals() as InitOpts;
        const [{ resolveHome }, { initHome }] = await Promise.all([import('../store/home.js'), import('../store/init-home.js')]);
        const r = initHome({
          home: resolveHome(g.home),
          deviceId: opts.deviceId,
          maxOutboxMb: opts.maxOutboxMb,
          kbUrl: opts.kbUrl,
          tokenFile: opts.tokenFile,
          kbKeyFile: opts.kbKey,
        });
        // device_id is the record's `device`
        const { device_id: _device, ...fields } = r;
        printResult(
          opts.json,
          fields,
          r.created
            ? `initialised edge home ${r.home} (device ${r.device_id})`
            : `edge home ${r.home} already initialised (device ${r.device_id}); ${r.updated.length ? `updated ${r.updated.join(', ')}` : 'nothing to change'}`,
        );
      }),
    );
}
