// The KB keys this edge trusts: the key it was enrolled with (config.json kb.public_key, the
// anchor) plus the key transitions it adopted since (format/key-chain.ts), kept in the edge
// database's kv table as one value: adopting a new key is one SQLite write, so a kill -9 leaves
// the edge before it or after it, never in between. The stored transitions are checked again
// from the anchor on every load: a value that does not chain from the configured key (the
// operator re-enrolled the edge with `config set kb.public_key`) simply counts for nothing.
import { type KeyEpoch, type SignedTransition, singleKey, walkChain } from '../format/key-chain.js';
import { type DB, kvGet, kvSet, logEvent } from './db.js';

const KV_TRANSITIONS = 'kb_key_transitions';

export function storedTransitions(db: DB): unknown[] {
  const raw = kvGet(db, KV_TRANSITIONS);
  if (!raw) return [];
  try {
    const v = JSON.parse(raw) as unknown;
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

/** The epochs (key per KB version range) this edge trusts; [] when no key is configured. */
export function trustedKeys(db: DB, anchor: string | null | undefined): KeyEpoch[] {
  if (!anchor) return [];
  const stored = storedTransitions(db);
  if (!stored.length) return singleKey(anchor);
  const w = walkChain(anchor, stored);
  return w.refused ? singleKey(anchor) : w.epochs;
}

/** Store the transitions a verified chain rests on (one write: all or nothing). */
export function adoptTransitions(db: DB, used: SignedTransition[], detail: Record<string, unknown>): void {
  db.transaction(() => {
    kvSet(db, KV_TRANSITIONS, JSON.stringify(used));
    logEvent(db, 'kb_key_adopted', detail);
  })();
}
