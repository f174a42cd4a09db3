// The KB's signing-key chain: which ed25519 key signs which KB versions, and the signed records
// (key transitions) that let an edge move from the key it was enrolled with to the KB's
// current one without anyone re-enrolling it.
//
// A transition is a small JSON record { from_key, to_key, last_version, seq }: "from_key signed
// versions up to last_version; to_key signs every later one". It carries two detached
// signatures over its exact bytes: `sig` by from_key (the authority: only the holder of the old
// private key can hand trust on, so a KB whose database was stolen, which holds no private key,
// cannot make an edge trust a key of its choosing) and `to_sig` by to_key (the new key exists
// and its holder agreed; it also lets an edge enrolled with the NEW key accept the versions the
// old key signed, walking the chain backwards).
//
// From an anchor (the key the edge was enrolled with) and the transitions that chain from it,
// the edge gets epochs: key K_i is valid for versions in (after_i, upto_i]. A retired key is
// thus never accepted for a version newer than its last_version: after the switch the old key
// stops counting for new versions, while versions it signed before (installed ones, a channel
// fallback, an old bundle) still verify.
import { createPublicKey } from 'node:crypto';
import { sha256Hex, verifyBytes } from './signature.js';

export const KEY_TRANSITION_FORMAT = 'sedna-ll/key-transition@1';

export interface KeyTransition {
  format: typeof KEY_TRANSITION_FORMAT;
  /** 1 for the KB's first rotation, +1 each time */
  seq: number;
  from_key: string;
  to_key: string;
  /** the newest KB version from_key signed; to_key signs every version after it */
  last_version: number;
  created_at: string;
}

/** A transition as stored and served: the exact record bytes (base64) and both signatures. */
export interface SignedTransition {
  record: string;
  sig: string;
  to_sig: string;
}

export interface KeyEpoch {
  key: string;
  fingerprint: string;
  /** versions > after (null: from the first) */
  after: number | null;
  /** versions <= upto (null: every later one) */
  upto: number | null;
}

/** sha256 of the key's SPKI DER: the same key in any PEM spelling has one fingerprint. */
export function keyFingerprint(pem: string): string {
  return sha256Hex(createPublicKey(pem).export({ type: 'spki', format: 'der' }));
}

/** fingerprint or null when pem is not a public key */
function fingerprintOrNull(pem: unknown): string | null {
  if (typeof pem !== 'string') return null;
  try {
    return keyFingerprint(pem);
  } catch {
    return null;
  }
}

export const shortFingerprint = (fp: string) => fp.slice(0, 16);

/** The versions a key signs, (after, upto], as people read them: "first..v3", "v4..", "first..". */
export const versionRange = (after: number | null, upto: number | null) => `${after === null ? 'first' : `v${after + 1}`}..${upto === null ? '' : `v${upto}`}`;

/** The record bytes a rotation signs (to be signed by from_key and to_key). */
export function transitionBytes(t: KeyTransition): Buffer {
  return Buffer.from(JSON.stringify(t) + '\n', 'utf8');
}

/** Parse one served transition; a line naming what is wrong when it is not one. */
export function parseTransition(s: unknown): { t: KeyTransition; bytes: Buffer; fromFp: string; toFp: string } | string {
  if (!s || typeof s !== 'object') return 'not an object';
  const st = s as Partial<SignedTransition>;
  if (typeof st.record !== 'string' || typeof st.sig !== 'string' || typeof st.to_sig !== 'string') return 'record, sig and to_sig must be strings';
  const bytes = Buffer.from(st.record, 'base64');
  let t: Partial<KeyTransition>;
  try {
    t = JSON.parse(bytes.toString('utf8')) as Partial<KeyTransition>;
  } catch {
    return 'record is not JSON';
  }
  if (t.format !== KEY_TRANSITION_FORMAT) return `record format is not "${KEY_TRANSITION_FORMAT}"`;
  if (!Number.isInteger(t.seq) || (t.seq as number) < 1) return 'seq must be an integer >= 1';
  if (!Number.isInteger(t.last_version) || (t.last_version as number) < 0) return 'last_version must be an integer >= 0';
  const fromFp = fingerprintOrNull(t.from_key);
  const toFp = fingerprintOrNull(t.to_key);
  if (!fromFp || !toFp) return 'from_key and to_key must be PEM public keys';
  if (fromFp === toFp) return 'from_key and to_key are the same key';
  return { t: t as KeyTransition, bytes, fromFp, toFp };
}

export interface ChainWalk {
  epochs: KeyEpoch[];
  /** the transitions the epochs rest on (what an edge stores), in seq order */
  used: SignedTransition[];
  /** set when a transition names a key of the chain but is not signed by it: nothing may be adopted */
  refused: string | null;
}

/**
 * The epochs trusted from `anchor` through `transitions` (any order; duplicates and records
 * that do not touch the chain are ignored). Forward: a transition from the current newest key
 * counts only with a valid `sig` by that key (and `to_sig` by the new one). Backward: a
 * transition to the anchor with a valid `to_sig` by the anchor (and `sig` by the old key) adds
 * the old key for the versions it signed.
 */
export function walkChain(anchor: string, transitions: readonly unknown[]): ChainWalk {
  const anchorFp = keyFingerprint(anchor);
  const parsed = transitions.map((s) => ({ s: s as SignedTransition, p: parseTransition(s) }));
  const ok = parsed.filter((x): x is { s: SignedTransition; p: Exclude<ReturnType<typeof parseTransition>, string> } => typeof x.p !== 'string');
  ok.sort((a, b) => a.p.t.seq - b.p.t.seq);
  const epochs: KeyEpoch[] = [{ key: anchor, fingerprint: anchorFp, after: null, upto: null }];
  const used: SignedTransition[] = [];
  const inChain = (fp: string) => epochs.some((e) => e.fingerprint === fp);
  const refuse = (seq: number, why: string): ChainWalk => ({ epochs: [epochs[0]], used: [], refused: `key transition ${seq}: ${why}` });
  const signedBy = (bytes: Buffer, sig: string, key: string) => verifyBytes(bytes, sig, key);

  // forward: anchor -> newest
  for (let moved = true; moved; ) {
    moved = false;
    const tip = epochs[epochs.length - 1];
    for (const { s, p } of ok) {
      if (p.fromFp !== tip.fingerprint || inChain(p.toFp)) continue;
      if (!signedBy(p.bytes, s.sig, tip.key)) return refuse(p.t.seq, `not signed by the trusted key ${shortFingerprint(tip.fingerprint)} it hands trust on from; refusing it`);
      if (!signedBy(p.bytes, s.to_sig, p.t.to_key)) return refuse(p.t.seq, `not signed by the new key ${shortFingerprint(p.toFp)} it announces; refusing it`);
      if (tip.after !== null && p.t.last_version < tip.after) return refuse(p.t.seq, `last_version ${p.t.last_version} is older than the previous key's start (${tip.after})`);
      tip.upto = p.t.last_version;
      epochs.push({ key: p.t.to_key, fingerprint: p.toFp, after: p.t.last_version, upto: null });
      used.push(s);
      moved = true;
      break;
    }
  }
  // backward: keys before the anchor, each vouched for by its successor
  for (let moved = true; moved; ) {
    moved = false;
    const first = epochs[0];
    for (const { s, p } of ok) {
      if (p.toFp !== first.fingerprint || inChain(p.fromFp)) continue;
      if (!signedBy(p.bytes, s.to_sig, first.key)) return refuse(p.t.seq, `names the trusted key ${shortFingerprint(first.fingerprint)} as its new key but is not signed by it; refusing it`);
      if (!signedBy(p.bytes, s.sig, p.t.from_key)) return refuse(p.t.seq, `not signed by the key ${shortFingerprint(p.fromFp)} it hands trust on from; refusing it`);
      if (first.upto !== null && p.t.last_version > first.upto) return refuse(p.t.seq, `last_version ${p.t.last_version} is newer than the next key's end (${first.upto})`);
      first.after = p.t.last_version;
      epochs.unshift({ key: p.t.from_key, fingerprint: p.fromFp, after: null, upto: p.t.last_version });
      used.unshift(s);
      moved = true;
      break;
    }
  }
  return { epochs, used, refused: null };
}

/** The key that signs KB version v (null: none of the chain does). */
export function keyForVersion(epochs: readonly KeyEpoch[], v: number): KeyEpoch | null {
  return epochs.find((e) => (e.after === null || v > e.after) && (e.upto === null || v <= e.upto)) ?? null;
}

/** The `version` an index claims, read before its signature is checked (to pick the key). */
export function claimedVersion(indexBytes: Buffer): number | null {
  try {
    const v = (JSON.parse(indexBytes.toString('utf8')) as { version?: unknown }).version;
    return Number.isInteger(v) ? (v as number) : null;
  } catch {
    return null;
  }
}

/** True when sig is the signature of the key of the version the index claims. */
export function verifyIndexSignature(epochs: readonly KeyEpoch[], indexBytes: Buffer, sig: string): boolean {
  const v = claimedVersion(indexBytes);
  const e = v === null ? null : keyForVersion(epochs, v);
  return e !== null && verifyBytes(indexBytes, sig, e.key);
}

/**
 * A signature made for an index of version v after it was published (a canary signed when a
 * bundle was made): by v's key or any later one, never by a key retired before v.
 */
export function verifyLaterSignature(epochs: readonly KeyEpoch[], v: number, bytes: Buffer, sig: string): boolean {
  const at = epochs.findIndex((e) => e === keyForVersion(epochs, v));
  return at >= 0 && epochs.slice(at).some((e) => verifyBytes(bytes, sig, e.key));
}

/** One epoch: the single key of an edge (or a KB) that never rotated. */
export const singleKey = (pem: string): KeyEpoch[] => [{ key: pem, fingerprint: keyFingerprint(pem), after: null, upto: null }];
