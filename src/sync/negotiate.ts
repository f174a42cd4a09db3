// Which push body format this KB takes, decided before the first batch, so no batch is ever
// sent in a format the KB cannot read.
//
// GET /v1/protocol (format/protocol.ts ProtocolInfo). A KB that predates it answers 404: an old
// KB, JSON pushes. A KB that lists "frames1" gets binary sample frames. `--framing json` skips
// the question (and is what an old edge does: it never asks, and the KB keeps serving JSON).
//
// The answer is kept in the edge's kv table (one entry: an edge syncs with one KB), keyed by the
// KB's URL and the public key the edge trusts, so a cron sync with pending samples does not pay
// the round trip every run. It is asked again when:
//  - the URL or the key in config.json changed (another KB);
//  - the KB refused frames (404/415 to POST /v1/sample-frames: restarted as an older version or
//    with --json-push-only): the push went on as JSON (push.ts) and forgetFraming drops the
//    entry, so the next run asks instead of sending frames to be refused again;
//  - a "json" answer is older than JSON_RECHECK_MS: an upgrade of the KB cannot be seen from a
//    JSON push, so an old KB is asked now and then (JSON still works meanwhile).
import { createHash } from 'node:crypto';
import { type ProtocolInfo } from '../format/protocol.js';
import { FRAMES_NAME } from '../format/sample-frames.js';
import { type DB, kvGet, kvSet } from '../store/db.js';
import type { KbClient } from './http.js';
import type { Framing } from './outbox-reader.js';

export type FramingMode = 'auto' | 'json';
export const FRAMING_MODES: readonly FramingMode[] = ['auto', 'json'];

/** kv key of the cached answer */
export const FRAMING_KV = 'kb_push_framing';
/** how long a "json" answer is used before the KB is asked again */
export const JSON_RECHECK_MS = 60 * 60 * 1000;

/** The KB an answer belongs to: its URL and the key the edge trusts (not the token: same KB). */
export interface KbIdentity {
  url: string;
  publicKey: string;
}

interface CachedFraming {
  url: string;
  /** sha256 of the trusted public key PEM, first 16 hex digits */
  key: string;
  framing: Framing;
  /** ms since the epoch when the KB answered */
  at: number;
}

const keyId = (pem: string) => createHash('sha256').update(pem.trim()).digest('hex').slice(0, 16);
const sameUrl = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

/** The framing to push with: the cached answer of this KB when still valid, else the KB's answer now (then cached). */
export async function pushFraming(db: DB, client: KbClient, kb: KbIdentity, mode: FramingMode, now = Date.now()): Promise<Framing> {
  if (mode === 'json') return 'json';
  const cached = cachedFraming(db, kb, now);
  if (cached) return cached;
  const framing = await askFraming(client);
  const entry: CachedFraming = { url: kb.url, key: keyId(kb.publicKey), framing, at: now };
  kvSet(db, FRAMING_KV, JSON.stringify(entry));
  return framing;
}

/** The KB refused the framing it announced: ask it again next run. */
export function forgetFraming(db: DB): void {
  kvSet(db, FRAMING_KV, null);
}

function cachedFraming(db: DB, kb: KbIdentity, now: number): Framing | null {
  const raw = kvGet(db, FRAMING_KV);
  if (!raw) return null;
  let c: CachedFraming;
  try {
    c = JSON.parse(raw) as CachedFraming;
  } catch {
    return null; // unreadable: ask (and overwrite it)
  }
  if (!c || typeof c.url !== 'string' || !sameUrl(c.url, kb.url) || c.key !== keyId(kb.publicKey)) return null;
  if (c.framing === 'frames') return 'frames';
  // a clock set back makes `at` lie in the future: ask rather than trust it for longer
  if (c.framing === 'json' && typeof c.at === 'number' && c.at <= now && now - c.at < JSON_RECHECK_MS) return 'json';
  return null;
}

/** GET /v1/protocol: the framing this KB announces. */
export async function askFraming(client: KbClient): Promise<Framing> {
  // 404: no such endpoint (old KB); 405 likewise from a proxy or an older router
  const res = await client.request({ method: 'GET', path: '/v1/protocol', accept: (s) => (s >= 200 && s < 300) || s === 404 || s === 405 });
  if (res.status === 404 || res.status === 405) return 'json';
  try {
    const info = JSON.parse(res.body.toString('utf8')) as ProtocolInfo;
    return Array.isArray(info.push_framings) && info.push_framings.includes(FRAMES_NAME) ? 'frames' : 'json';
  } catch {
    return 'json'; // an answer we cannot read announces nothing: the format every KB takes
  }
}
