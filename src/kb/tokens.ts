// Bearer tokens of devices and the admin. The KB stores only sha256(token): a leaked kb.db does
// not let anyone talk to the KB. Tokens are 32 random bytes, so an unsalted hash is enough.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function newToken(kind: 'dev' | 'adm'): string {
  return `sll_${kind}_${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Constant-time comparison of two hex hashes. */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}
