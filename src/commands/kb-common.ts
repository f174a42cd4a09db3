// What the `kb ...` command files share: the --data option text and opening the KB store of
// a data directory (imported lazily: `sedna-ll --version` must not load the store).
import { Option, type Command } from '../commander.js';
import type { StoreFlags } from '../kb/open.js';
import type { KbStore } from '../kb/store.js';

export const DATA_HELP = 'KB data directory (default: $SEDNA_LL_KB_DATA)';

/**
 * --store, --blobs and --signing-key next to every --data of the kb commands (added by kb.ts
 * after the subcommands are registered): each command runs against a shared PostgreSQL KB too.
 */
export function addStoreOptions(cmd: Command): void {
  for (const c of cmd.commands) {
    addStoreOptions(c);
    if (!c.options.some((o) => o.long === '--data')) continue;
    const add = (flags: string, help: string) => {
      if (!c.options.some((o) => o.long === flags.split(' ')[0])) c.addOption(new Option(flags, help));
    };
    add('--store <url>', 'shared KB in PostgreSQL: postgres://[user@]host[:port]/db instead of --data (default: $SEDNA_LL_KB_STORE)');
    add('--blobs <dir|url>', 'blob store of a --store KB: a shared directory or s3://bucket[/prefix] (default: $SEDNA_LL_KB_BLOBS)');
    add('--signing-key <file>', 'the private key that signs published versions (default: $SEDNA_LL_KB_SIGNING_KEY, else DATA/keys/signing.key)');
  }
}

/** Open the KB store of --data / --store (or their variables), run fn on it, close it. */
export async function kbOpen<T>(flags: StoreFlags | string | undefined, fn: (store: KbStore) => Promise<T>): Promise<T> {
  const { withKbStore } = await import('../kb/open.js');
  const f: StoreFlags = typeof flags === 'object' ? flags : { data: flags };
  return withKbStore({ data: f.data, store: f.store, blobs: f.blobs, s3Endpoint: f.s3Endpoint, signingKey: f.signingKey }, fn);
}

/** --unseen / --combine / --fpr of `kb train` and `kb publish` (kept in the KB once given). */
export const UNSEEN_OPTIONS: [string, string][] = [
  ['--unseen <methods>', 'unseen methods the edge combines, comma separated: attr, confidence, entropy, distance, features (kept for later rounds; default: the last setting, else attr,confidence,distance)'],
  ['--combine <rule>', 'any: a sample is unseen when some method fires; all: when every applicable one does (kept; default any)'],
  ['--fpr <rate>', 'target false-positive rate of the COMBINED unseen flag on held-out in-domain samples; also the rate of each task\'s radius (kept; default 0.05)'],
];

export interface UnseenFlags {
  unseen?: string;
  combine?: string;
  fpr?: string;
}

/** The parsed flags (usage errors name the flag), or {} when none was given. */
export async function unseenRequest(o: UnseenFlags): Promise<import('../learn/unseen-settings.js').UnseenRequest> {
  const { UsageError } = await import('../errors.js');
  const { parseUnseenMethods, parseCombine } = await import('../learn/unseen-settings.js');
  try {
    const fpr = o.fpr === undefined ? undefined : Number(o.fpr);
    if (fpr !== undefined && !(fpr > 0 && fpr < 1)) throw new Error(`--fpr "${o.fpr}": expected a rate between 0 and 1`);
    return {
      ...(o.unseen !== undefined ? { methods: parseUnseenMethods(o.unseen) } : {}),
      ...(o.combine !== undefined ? { combine: parseCombine(o.combine) } : {}),
      ...(fpr !== undefined ? { fpr } : {}),
    };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
