// Which key verifies a pulled index, and catching up with a KB that rotated its signing key.
//
// The fast path costs nothing: the index verifies with the key the edge trusts for the version
// it claims. Only when it does not does the edge ask the KB for its key chain (GET /v1/keys,
// every transition since the KB's first key, so an edge offline through any number of
// rotations walks them all), walk it from the keys it trusts, and check the index again with
// the result. The new transitions are stored (one SQLite write) only when the index then
// verifies; a transition that names a trusted key but is not signed by it refuses the pull
// (VerificationError, exit 5) and nothing is stored.
import { VerificationError } from '../errors.js';
import { type KeyEpoch, claimedVersion, keyForVersion, shortFingerprint, verifyIndexSignature } from '../format/key-chain.js';
import type { DB } from '../store/db.js';
import { adoptOffered, offeredTrust, trustedKeys } from '../store/trusted-keys.js';
import type { KbClient } from './http.js';
import { SyncHttpError } from './http.js';

/** The KB's transitions (GET /v1/keys), null from a KB that has none to offer (404: an older KB). */
async function fetchTransitions(client: KbClient): Promise<unknown[] | null> {
  const r = await client.request({ method: 'GET', path: '/v1/keys', accept: (s) => s === 200 || s === 404 });
  if (r.status === 404) return null;
  let t: unknown;
  try {
    t = (JSON.parse(r.body.toString('utf8')) as { transitions?: unknown }).transitions;
  } catch {
    t = undefined;
  }
  if (!Array.isArray(t)) throw new SyncHttpError('KB answered GET /v1/keys without a transitions array', 'protocol');
  return t;
}

/**
 * Verify a pulled index's signature; adopt the KB's newer keys first when needed. Returns the
 * epochs the index verified under. Throws VerificationError (one line) otherwise.
 */
export async function verifyPulledIndex(db: DB, anchor: string, client: KbClient, bytes: Buffer, sig: string, what: string): Promise<KeyEpoch[]> {
  const trusted = trustedKeys(db, anchor);
  if (verifyIndexSignature(trusted, bytes, sig)) return trusted;
  const v = claimedVersion(bytes);
  const refusal = (keys: KeyEpoch[]) => {
    const e = v === null ? null : keyForVersion(keys, v);
    return new VerificationError(
      e
        ? `${what}: signature does not verify with the KB key ${shortFingerprint(e.fingerprint)} this edge trusts for version ${v}; refusing it`
        : `${what}: no KB key this edge trusts signs version ${v ?? '(none claimed)'}; refusing it`,
    );
  };
  const served = await fetchTransitions(client);
  if (!served) throw refusal(trusted);
  // what this edge adopted before plus what the KB serves now, walked from the anchor again
  const offer = offeredTrust(db, anchor, served, 'KB key chain');
  if (!verifyIndexSignature(offer.epochs, bytes, sig)) throw refusal(offer.epochs);
  adoptOffered(db, offer, { for_version: v });
  return offer.epochs;
}
