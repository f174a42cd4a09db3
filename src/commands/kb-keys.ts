// `sedna-ll kb keys ls|rotate`: the KB's signing keys and their rotation (kb/signing-key.ts).
import type { Command } from 'commander';
import { EXIT_HELP } from '../errors.js';
import { printList, record, run } from './action.js';
import { DATA_HELP, kbOpen } from './kb-common.js';


export function register(kb: Command): void {
  const keys = kb.command('keys').description('the KB signing keys: list them, rotate to a new one');

  keys
    .command('ls')
    .description('the KB signing keys, oldest first, with the versions each signs (sha256 fingerprints of the public keys)')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'print {current, keys: [{seq, fingerprint, after, upto, created_at}]} as JSON')
    .addHelpText('after', `\n${EXIT_HELP}\n`)
    .action(
      run(async (o: { data?: string; json?: boolean }) => {
        const [{ listKeys }, { shortFingerprint: fp, versionRange }] = await Promise.all([import('../kb/signing-key.js'), import('../format/key-chain.js')]);
        await kbOpen(o, async (store) => {
          const r = await listKeys(store);
          if (o.json) return record(r);
          await printList('keys', r.keys, {
            empty: 'no keys',
            columns: {
              SEQ: (k) => String(k.seq),
              FINGERPRINT: (k) => fp(k.fingerprint) + (k.fingerprint === r.current ? ' (current)' : ''),
              VERSIONS: (k) => versionRange(k.after, k.upto),
              SINCE: (k) => k.created_at ?? '-',
            },
          });
        });
      }),
    );

  keys
    .command('rotate')
    .description('make a new signing key pair and hand the edges over to it: a key transition signed by the current key (and the new one) that edges fetch and verify; the key file is replaced by the new key')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'print {seq, from, to, last_version, signing_key, retired, public_key, resumed} as JSON')
    .addHelpText(
      'after',
      `
Run it on the machine that publishes (it needs the current private key: DATA/keys/signing.key,
or --signing-key FILE / $SEDNA_LL_KB_SIGNING_KEY, which is replaced by the new key; the old one
is kept as FILE.retired-<seq> for you to destroy). Versions up to the newest one stay signed by
the old key; every later version is signed by the new one. Edges adopt the new key at their
next sync that brings such a version. Safe while the KB serves and while others publish; run
it again after a crash to finish a rotation that had committed.

Examples:
  sedna-ll kb keys rotate --data /srv/sedna-kb
  sedna-ll kb keys rotate --store postgres://kb@db/sedna --signing-key /etc/sedna/signing.key --json
${EXIT_HELP}
`,
    )
    .action(
      run(async (o: { data?: string; json?: boolean }) => {
        const [{ rotateSigningKey }, { shortFingerprint: fp }] = await Promise.all([import('../kb/signing-key.js'), import('../format/key-chain.js')]);
        await kbOpen(o, async (store) => {
          const r = await rotateSigningKey(store);
          if (o.json) return record(r);
          process.stdout.write(
            `${r.resumed ? 'finished the interrupted rotation' : 'rotated'} ${r.seq}: key ${fp(r.from)} signed versions up to ${r.last_version}; key ${fp(r.to)} signs every later one\n` +
              `new private key: ${r.signing_key}${r.retired ? ` (old one kept as ${r.retired}: destroy it once no publisher needs it)` : ''}\n` +
              `new public key (for edges enrolled from now on; enrolled edges adopt it at their next sync):\n${r.public_key}`,
          );
        });
      }),
    );
}
