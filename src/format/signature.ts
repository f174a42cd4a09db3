// ed25519 signatures over the exact bytes of index.json (node:crypto, no dependency).
// The KB holds the private key; every edge holds the public key from `init`.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';

export interface KeyPairPem {
  publicKey: string;
  privateKey: string;
}

export function generateSigningKeys(): KeyPairPem {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKey, privateKey };
}

/** Detached signature, base64 (the content of index.json.sig). */
export function signBytes(bytes: Buffer, privateKeyPem: string): string {
  return sign(null, bytes, createPrivateKey(privateKeyPem)).toString('base64');
}

/** True only when sigB64 is a valid ed25519 signature of bytes under publicKeyPem. */
export function verifyBytes(bytes: Buffer, sigB64: string, publicKeyPem: string): boolean {
  try {
    const sig = Buffer.from(sigB64.trim(), 'base64');
    if (sig.length !== 64) return false;
    return verify(null, bytes, createPublicKey(publicKeyPem), sig);
  } catch {
    return false;
  }
}

export function sha256Hex(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}
