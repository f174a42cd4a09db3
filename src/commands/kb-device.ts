// `sedna-ll kb device add|ls|revoke|set`: enrol devices, list them, revoke their tokens, move
// them between rollout channels. Works on the data directory directly (safe while serving: WAL).
import type { Command } from 'commander';
import { EXIT_HELP } from '../errors.js';
import { printList, printResult, record, run } from './action.js';
import { verdict } from './color.js';
import { DATA_HELP, kbOpen } from './kb-common.js';

function ago(ts: number | null): string {
  if (ts === null) return '-';
  return new Date(ts).toISOString().replace(/\.\d+Z$/, 'Z');
}

export function register(kb: Command): void {
  const device = kb.command('device').description('enrol and manage edge devices');

  device
    .command('add <id>')
    .description('enrol a device: prints its bearer token (shown once) and the KB public key')
    .option('--data <dir>', DATA_HELP)
    .option('--channel <name>', 'rollout channel', 'stable')
    .option('--token-out <file>', 'write the token to this file (mode 0600) instead of printing it')
    .option('--key-out <file>', 'write the KB public key PEM to this file')
    .option('--json', 'one JSON record: id, channel, token (or token_file), public_key')
    .addHelpText('after', `\nExamples:\n  sedna-ll kb device add gw-7 --token-out gw-7.token --key-out kb.pub\n  sedna-ll kb device add gw-8 --channel canary --json\n\n${EXIT_HELP}\n`)
    .action(
      run(async (id: string, o: { data?: string; channel: string; tokenOut?: string; keyOut?: string; json?: boolean }) => {
        const { addDevice } = await import('../kb/devices.js');
        const { writeFileAtomic } = await import('../durable/atomic-write.js');
        await kbOpen(o, async (store) => {
          const publicKey = await store.publicKey();
          const { device: d, token } = await addDevice(store, id, o.channel);
          if (o.tokenOut) writeFileAtomic(o.tokenOut, token + '\n', 0o600);
          if (o.keyOut) writeFileAtomic(o.keyOut, publicKey);
          if (o.json) return record({ id: d.id, channel: d.channel, ...(o.tokenOut ? { token_file: o.tokenOut } : { token }), public_key: publicKey });
          process.stdout.write(`device "${d.id}" enrolled on channel "${d.channel}"\n`);
          if (o.tokenOut) process.stdout.write(`token written to ${o.tokenOut}\n`);
          else process.stdout.write(`token (shown once): ${token}\n`);
          if (o.keyOut) process.stdout.write(`KB public key written to ${o.keyOut}\n`);
          else process.stdout.write(`KB public key:\n${publicKey}`);
        });
      }),
    );

  device
    .command('ls')
    .description('list devices: channel, active version, last seen, revoked')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'JSON array')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (o: { data?: string; json?: boolean }) => {
        await kbOpen(o, async (store) => {
          const list = await store.listDevices();
          await printList('devices', list, {
            json: o.json,
            empty: 'no devices',
            columns: {
              DEVICE: (d) => d.id,
              CHANNEL: (d) => d.channel,
              VERSION: (d) => d.active_version,
              'LAST SEEN': (d) => ago(d.last_seen),
              STATE: (d, p) => (d.revoked_at ? `${verdict(p, 'revoked')} ${ago(d.revoked_at)}` : 'active'),
            },
          });
        });
      }),
    );

  device
    .command('revoke <id>')
    .description('revoke a device token: its requests are refused (401) from now on')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'print the device as JSON')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (id: string, o: { data?: string; json?: boolean }) => {
        const { revokeDevice } = await import('../kb/devices.js');
        await kbOpen(o, async (store) => {
          const d = await revokeDevice(store, id);
          printResult(o.json, { ...d }, `device "${id}" revoked`);
        });
      }),
    );

  device
    .command('set <id>')
    .description('change a device setting (its rollout channel)')
    .option('--data <dir>', DATA_HELP)
    .requiredOption('--channel <name>', 'rollout channel the device pulls from')
    .option('--json', 'print the device as JSON')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (id: string, o: { data?: string; channel: string; json?: boolean }) => {
        const { setDeviceChannel } = await import('../kb/devices.js');
        await kbOpen(o, async (store) => {
          const d = await setDeviceChannel(store, id, o.channel);
          printResult(o.json, { ...d }, `device "${id}" now on channel "${d.channel}"`);
        });
      }),
    );
}
