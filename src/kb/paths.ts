// Layout of a KB data directory (embedded backend):
//   kb.db                     SQLite metadata (WAL)
//   blobs/<sha256>            model files and large sample payloads, content-addressed
//   versions/<n>/index.json   each published index, byte-exact as signed, + index.json.sig
//   keys/signing.key (0600)   ed25519 private key (PKCS#8 PEM); keys/signing.pub: public key
//   tmp/                      partial writes (same filesystem, so renames are atomic)
import { resolve, join } from 'node:path';
import { UsageError } from '../errors.js';

export function kbPaths(dataDir: string) {
  const data = resolve(dataDir);
  return {
    data,
    db: join(data, 'kb.db'),
    blobs: join(data, 'blobs'),
    versions: join(data, 'versions'),
    keys: join(data, 'keys'),
    privateKey: join(data, 'keys', 'signing.key'),
    publicKey: join(data, 'keys', 'signing.pub'),
    tmp: join(data, 'tmp'),
  };
}
export type KbPaths = ReturnType<typeof kbPaths>;

/** --data, else $SEDNA_LL_KB_DATA; a usage error when neither is set. */
export function resolveKbData(opt: string | undefined): string {
  const d = opt ?? process.env.SEDNA_LL_KB_DATA;
  if (!d) throw new UsageError('no KB data directory: pass --data DIR or set SEDNA_LL_KB_DATA');
  return resolve(d);
}
