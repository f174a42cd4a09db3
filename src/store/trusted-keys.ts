// The KB keys this edge trusts: the key it was enrolled with (config.json kb.public_key, the
// anchor) plus the key transitions it adopted since (format/key-chain.ts), kept in the edge
// database's kv table as one value: adopting a new key is one SQLite write, so a kill -9 leaves
// the edge before it or after it, never in between. The stored transitions are checked again
// from the anchor on every load: a value that does not chain from the configured key (the
// operator re-enrolled the edge with `config set kb.public_key`) simply counts for nothing.
//
// Transitions reach an edge two ways, checked the same way here (offeredTrust): GET /v1/keys at
// sync (sync/index-trust.ts) and the keys.json of an offline bundle (rollout/files.ts).
import { VerificationError } from '../errors.js';
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
  return trustedChain(db, anchor).epochs;
}

/** The trusted epochs and the stored transitions they rest on (what `model export` passes on). */
export function trustedChain(db: DB, anchor: string | null | undefined): { epochs: KeyEpoch[]; used: SignedTransition[] } {
  if (!anchor) return { epochs: [], used: [] };
  const stored = storedTransitions(db);
  if (!stored.length) return { epochs: singleKey(anchor), used: [] };
  const w = walkChain(anchor, stored);
  return w.refused ? { epochs: singleKey(anchor), used: [] } : { epochs: w.epochs, used: w.used };
}

/** What this edge would trust after taking the transitions a KB (or a bundle) offers. */
export interface OfferedTrust {
  epochs: KeyEpoch[];
  /** keys trusted now that were not before */
  added: KeyEpoch[];
  /** the transitions `epochs` rest on: what adopt() stores */
  used: SignedTransition[];
}

/**
 * Walk `offered` (with the transitions adopted before) from the anchor: only transitions signed
 * by a key the edge already trusts hand trust on. A transition that names a trusted key but is
 * not signed by it refuses the whole offer (VerificationError, `what` names where it came
 * from); nothing is stored here: the caller adopts (adoptOffered) once what it verifies with
 * the result did verify.
 */
export function offeredTrust(db: DB, anchor: string, offered: readonly unknown[], what: string): OfferedTrust {
  const before = new Set(trustedKeys(db, anchor).map((e) => e.fingerprint));
  const w = walkChain(anchor, [...storedTransitions(db), ...offered]);
  if (w.refused) throw new VerificationError(`${what}: ${w.refused}; no key adopted, nothing installed`);
  return { epochs: w.epochs, added: w.epochs.filter((e) => !before.has(e.fingerprint)), used: w.used };
}

/** Store the chain of an offer when it brought new keys (one write: all or nothing). */
export function adoptOffered(db: DB, offer: OfferedTrust, detail: Record<string, unknown>): void {
  if (!offer.added.length) return;
  adoptTransitions(db, offer.used, { keys: offer.added.map((e) => ({ fingerprint: e.fingerprint, after: e.after, upto: e.upto })), ...detail });
}

/** Store the transitions a verified chain rests on (one write: all or nothing). */
export function adoptTransitions(db: DB, used: SignedTransition[], detail: Record<string, unknown>): void {
  db.transaction(() => {
    kvSet(db, KV_TRANSITIONS, JSON.stringify(used));
    logEvent(db, 'kb_key_adopted', detail);
  })();
}
