// The KB's private signing key file and its rotation (`kb keys rotate`).
//
// Where the key is: FILE = --signing-key (PostgreSQL KBs: always) or DATA/keys/signing.key. A
// rotation makes a new key pair and a key transition (format/key-chain.ts) signed by the old
// private key and the new one, and switches the KB over in this order, each step durable
// before the next:
//   1. the new private key -> FILE.next (0600): the KB never names a key whose private half
//      is not on disk;
//   2. ONE store transaction, holding the version lock publishers take (nextVersion), so no
//      version is signed by the old key after last_version: the transition is appended to
//      the chain (meta signing_key_transitions) and the KB's public key becomes the new one;
//   3. FILE -> FILE.retired-<seq> (a hard link; the operator destroys it), FILE.next -> FILE.
// A crash after 2 leaves FILE.next holding the KB's key: readSigningKey takes it (publishing
// keeps working) and the next `kb keys rotate` only finishes step 3. A crash before 2 leaves a
// FILE.next nobody names: the next rotation overwrites it.
import { existsSync, linkSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { createPublicKey } from 'node:crypto';
import { ConflictError, ReportedError, UsageError } from '../errors.js';
import { KEY_TRANSITION_FORMAT, type KeyTransition, type SignedTransition, keyFingerprint, parseTransition, transitionBytes } from '../format/key-chain.js';
import { generateSigningKeys, signBytes } from '../format/signature.js';
import { fsyncDir, writeFileAtomic } from '../durable/atomic-write.js';
import type { KbStore, SettingsStore } from './store.js';

/** meta: the KB's current public key (PEM) */
export const META_PUBLIC_KEY = 'signing_public_key';
/** meta: JSON array of SignedTransition, oldest first (served by GET /v1/keys) */
export const META_TRANSITIONS = 'signing_key_transitions';

const nextFile = (file: string) => `${file}.next`;

function publicOf(pem: string, what: string): string {
  try {
    return createPublicKey(pem).export({ type: 'spki', format: 'pem' }).toString();
  } catch (e) {
    throw new UsageError(`${what}: not a PEM private key: ${(e as Error).message}`);
  }
}

const sameKey = (a: string, b: string) => keyFingerprint(a) === keyFingerprint(b);

function readKeyFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `${what}: KB signing key missing (pass --signing-key FILE on the machine that publishes)` : `${what}: cannot read: ${code ?? (e as Error).message}`);
  }
}

/**
 * The private key in `file` when it is the half of publicKeyPem; else FILE.next when that is
 * (a rotation committed but did not finish its file switch). A key the edges do not trust
 * would publish versions every edge refuses, so any other key is refused here.
 */
export function readSigningKey(file: string, publicKeyPem: string, what = `--signing-key ${file}`): string {
  const pem = readKeyFile(file, what);
  if (sameKey(publicOf(pem, what), publicKeyPem)) return pem;
  const next = nextFile(file);
  if (existsSync(next)) {
    const n = readFileSync(next, 'utf8');
    try {
      if (sameKey(publicOf(n, next), publicKeyPem)) return n;
    } catch {
      /* a half-made leftover: not the key */
    }
  }
  throw new UsageError(`${what}: not the private key of this KB's public key (rotated? "kb keys rotate" replaced it on the machine that ran it; copy that FILE here)`);
}

export function readTransitions(raw: string | null, what: string): SignedTransition[] {
  if (!raw) return [];
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new ReportedError(`${what}: meta ${META_TRANSITIONS} is not JSON`);
  }
  if (!Array.isArray(v)) throw new ReportedError(`${what}: meta ${META_TRANSITIONS} is not an array`);
  return v as SignedTransition[];
}

export async function keyTransitions(store: SettingsStore & { describe?: string }): Promise<SignedTransition[]> {
  return readTransitions(await store.getMeta(META_TRANSITIONS), store.describe ?? 'KB');
}

export interface KeyChainEntry {
  seq: number;
  fingerprint: string;
  /** versions this key signs: (after, upto]; null = open */
  after: number | null;
  upto: number | null;
  created_at: string | null;
}

/** `kb keys ls`: the KB's keys, oldest first, with the versions each signs. */
export async function listKeys(store: KbStore): Promise<{ current: string; keys: KeyChainEntry[] }> {
  const current = await store.publicKey();
  const out: KeyChainEntry[] = [];
  for (const s of await keyTransitions(store)) {
    const p = parseTransition(s);
    if (typeof p === 'string') throw new ReportedError(`${store.describe}: a stored key transition is broken: ${p}`);
    if (!out.length) out.push({ seq: 0, fingerprint: p.fromFp, after: null, upto: null, created_at: null });
    out[out.length - 1].upto = p.t.last_version;
    out.push({ seq: p.t.seq, fingerprint: p.toFp, after: p.t.last_version, upto: null, created_at: p.t.created_at });
  }
  if (!out.length) out.push({ seq: 0, fingerprint: keyFingerprint(current), after: null, upto: null, created_at: null });
  return { current: keyFingerprint(current), keys: out };
}

export interface RotateResult {
  seq: number;
  from: string;
  to: string;
  /** the newest version the old key signed; the new key signs every later one */
  last_version: number;
  signing_key: string;
  /** the old private key, kept for the operator to destroy */
  retired: string | null;
  public_key: string;
  /** a rotation that had committed before a crash was only finished now */
  resumed: boolean;
}

/** Step 3: the key file becomes the new key; the old one stays as FILE.retired-<seq>. */
function switchFiles(file: string, seq: number): string | null {
  const retired = `${file}.retired-${seq}`;
  let kept: string | null = null;
  if (existsSync(file)) {
    rmSync(retired, { force: true }); // a crash between link and rename left it: same bytes
    linkSync(file, retired);
    kept = retired;
  }
  renameSync(nextFile(file), file);
  fsyncDir(dirname(file));
  return kept;
}

/**
 * `kb keys rotate`: new key pair, transition signed by the old and the new private key, the
 * KB's public key switched in one transaction, the key file replaced. onCommitted runs after
 * the transaction (SQLite KBs rewrite keys/signing.pub there).
 */
export async function rotateSigningKey(store: KbStore): Promise<RotateResult> {
  const { privateFile: file, publicFile } = store.keyFiles();
  if (!file) throw new UsageError(`${store.describe}: pass --signing-key FILE (the KB's current private key; it is replaced by the new one) on the machine that publishes`);
  // SQLite KBs also keep the public key as a file (meta wins; the file is for people)
  const onCommitted = (pem: string) => {
    if (publicFile) writeFileAtomic(publicFile, pem, 0o644);
  };
  const current = await store.publicKey();
  const next = nextFile(file);
  if (existsSync(next)) {
    let pub: string | null = null;
    try {
      pub = publicOf(readFileSync(next, 'utf8'), next);
    } catch {
      pub = null;
    }
    if (pub && sameKey(pub, current)) {
      // the store already names FILE.next's key: a rotation died after its commit; finish it
      const chain = await keyTransitions(store);
      const last = parseTransition(chain[chain.length - 1]);
      if (typeof last === 'string') throw new ReportedError(`${store.describe}: the newest key transition is broken: ${last}`);
      const retired = switchFiles(file, last.t.seq);
      onCommitted(current);
      return { seq: last.t.seq, from: last.fromFp, to: last.toFp, last_version: last.t.last_version, signing_key: file, retired, public_key: current, resumed: true };
    }
  }
  const oldPrivate = readSigningKey(file, current); // FILE itself here (FILE.next was handled above)
  const keys = generateSigningKeys();
  writeFileAtomic(next, keys.privateKey, 0o600);
  const r = await store.tx(async (t) => {
    // the version lock: a publisher signing with the old key commits before this, or waits and
    // then signs with the new one (publish.ts reads the key inside its transaction)
    const last = (await t.nextVersion()) - 1;
    const pub = await t.publicKey();
    if (!sameKey(pub, current)) throw new ConflictError(`${store.describe}: the KB's key changed while rotating (another "kb keys rotate"?); run it again`);
    const chain = readTransitions(await t.getMeta(META_TRANSITIONS), store.describe);
    const rec: KeyTransition = { format: KEY_TRANSITION_FORMAT, seq: chain.length + 1, from_key: current, to_key: keys.publicKey, last_version: last, created_at: new Date().toISOString() };
    const bytes = transitionBytes(rec);
    const signed: SignedTransition = { record: bytes.toString('base64'), sig: signBytes(bytes, oldPrivate), to_sig: signBytes(bytes, keys.privateKey) };
    await t.setMeta(META_TRANSITIONS, JSON.stringify([...chain, signed]));
    await t.setMeta(META_PUBLIC_KEY, keys.publicKey);
    await t.logEvent('key_rotated', { seq: rec.seq, from: keyFingerprint(current), to: keyFingerprint(keys.publicKey), last_version: last });
    return rec;
  });
  const retired = switchFiles(file, r.seq);
  onCommitted(keys.publicKey);
  return { seq: r.seq, from: keyFingerprint(current), to: keyFingerprint(keys.publicKey), last_version: r.last_version, signing_key: file, retired, public_key: keys.publicKey, resumed: false };
}
