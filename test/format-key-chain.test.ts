// The signing-key chain (format/key-chain.ts) on its own: which transitions an edge accepts,
// which key signs which version, and the refusals. Real ed25519 keys and signatures.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KEY_TRANSITION_FORMAT, type SignedTransition, keyFingerprint, keyForVersion, transitionBytes, verifyIndexSignature, verifyLaterSignature, walkChain } from '../src/format/key-chain.js';
import { generateSigningKeys, signBytes, type KeyPairPem } from '../src/format/signature.js';

function transition(seq: number, from: KeyPairPem, to: KeyPairPem, last: number, signers: { sig?: string; to_sig?: string } = {}): SignedTransition {
  const bytes = transitionBytes({ format: KEY_TRANSITION_FORMAT, seq, from_key: from.publicKey, to_key: to.publicKey, last_version: last, created_at: '2026-11-30T00:00:00.000Z' });
  return { record: bytes.toString('base64'), sig: signBytes(bytes, signers.sig ?? from.privateKey), to_sig: signBytes(bytes, signers.to_sig ?? to.privateKey) };
}
const index = (v: number) => Buffer.from(JSON.stringify({ version: v, origin: 'kb' }));
const [k0, k1, k2, thief] = [generateSigningKeys(), generateSigningKeys(), generateSigningKeys(), generateSigningKeys()];
const t1 = transition(1, k0, k1, 3);
const t2 = transition(2, k1, k2, 7);

test('forward: each key counts for the versions it signed, whatever order the KB serves them in', () => {
  const w = walkChain(k0.publicKey, [t2, t1]);
  assert.equal(w.refused, null);
  assert.deepEqual(w.epochs.map((e) => [e.fingerprint, e.after, e.upto]), [
    [keyFingerprint(k0.publicKey), null, 3],
    [keyFingerprint(k1.publicKey), 3, 7],
    [keyFingerprint(k2.publicKey), 7, null],
  ]);
  assert.deepEqual(w.used, [t1, t2]);
  for (const [v, k, ok] of [[3, k0, true], [4, k0, false], [4, k1, true], [7, k1, true], [8, k1, false], [8, k2, true], [1, k2, false]] as const) {
    assert.equal(verifyIndexSignature(w.epochs, index(v), signBytes(index(v), k.privateKey)), ok, `version ${v}`);
  }
  assert.equal(keyForVersion(w.epochs, 100)?.key, k2.publicKey);
  // a canary signed later (bundle made after the rotation) by a newer key: yes; by an older one: no
  assert.equal(verifyLaterSignature(w.epochs, 2, Buffer.from('c'), signBytes(Buffer.from('c'), k2.privateKey)), true);
  assert.equal(verifyLaterSignature(w.epochs, 5, Buffer.from('c'), signBytes(Buffer.from('c'), k0.privateKey)), false);
});

test('backward: an edge enrolled with a newer key accepts what older keys signed, vouched for by to_sig', () => {
  const w = walkChain(k2.publicKey, [t1, t2]);
  assert.equal(w.refused, null);
  assert.deepEqual(w.epochs.map((e) => [e.after, e.upto]), [[null, 3], [3, 7], [7, null]]);
  const mid = walkChain(k1.publicKey, [t1, t2]);
  assert.deepEqual(mid.epochs.map((e) => e.key), [k0.publicKey, k1.publicKey, k2.publicKey]);
});

test('refusals: not signed by the trusted key, not by the announced key, going back in versions', () => {
  const forged = transition(2, k1, thief, 9, { sig: thief.privateKey });
  const w = walkChain(k0.publicKey, [t1, forged]);
  assert.match(w.refused ?? '', /^key transition 2: not signed by the trusted key [0-9a-f]{16} it hands trust on from/);
  assert.deepEqual(w.used, []);
  assert.equal(w.epochs.length, 1);
  const unvouched = transition(1, k0, k1, 3, { to_sig: thief.privateKey });
  assert.match(walkChain(k0.publicKey, [unvouched]).refused ?? '', /not signed by the new key/);
  const backwards = transition(2, k1, k2, 1);
  assert.match(walkChain(k0.publicKey, [t1, backwards]).refused ?? '', /last_version 1 is older/);
  // a thief's transition between keys this edge never trusted touches nothing
  const unrelated = transition(5, thief, generateSigningKeys(), 50);
  assert.equal(walkChain(k0.publicKey, [unrelated, t1]).refused, null);
  // garbage records are ignored, not trusted
  assert.equal(walkChain(k0.publicKey, [{ record: 'xx', sig: '', to_sig: '' }, 7, null]).epochs.length, 1);
});
