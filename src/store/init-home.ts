// Creating or updating an edge home (`sedna-ll init`). Re-running is safe: only the settings
// given are changed, and the device id of an existing home never changes silently.
import { createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { keepPrivate, sqliteFiles } from './private-files.js';
import { ReportedError, UsageError } from '../errors.js';
import { openEdgeDb } from './db.js';
import { DEFAULT_CONFIG, type EdgeConfig, homePaths, loadConfig, saveConfig, saveToken } from './home.js';
import { asStorageError } from './open-home.js';

export interface InitOptions {
  home: string;
  deviceId?: string;
  maxOutboxMb?: number;
  kbUrl?: string;
  tokenFile?: string;
  kbKeyFile?: string;
}

export interface InitResult {
  home: string;
  device_id: string;
  created: boolean;
  /** settings this run changed (empty when re-run with nothing new) */
  updated: string[];
  /** the outbox quota (config outbox.max_mb) in bytes */
  outbox_max_bytes: number;
  kb_url: string | null;
  token: boolean;
}

const DEVICE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function readPublicKey(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--kb-key ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let key;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new UsageError(`--kb-key ${file}: not a PEM public key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new UsageError(`--kb-key ${file}: a ${key.asymmetricKeyType} key; the KB signs with ed25519`);
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

function readTokenFile(file: string): string {
  let t: string;
  try {
    t = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new UsageError(`--token-file ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!t || /\s/.test(t)) throw new UsageError(`--token-file ${file}: expected one token on one line`);
  return t;
}

function checkUrl(u: string): string {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new UsageError(`--kb-url "${u}": not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--kb-url "${u}": expected http:// or https://`);
  return url.toString().replace(/\/+$/, '');
}

export function initHome(o: InitOptions): InitResult {
  // validate every input before touching the disk
  if (o.deviceId !== undefined && !DEVICE_ID_RE.test(o.deviceId)) {
    throw new UsageError(`--device-id "${o.deviceId}": expected 1-128 characters [A-Za-z0-9._:-], starting with a letter or digit`);
  }
  if (o.maxOutboxMb !== undefined && !(o.maxOutboxMb > 0)) throw new UsageError(`--max-outbox-mb ${o.maxOutboxMb}: expected a number > 0`);
  const url = o.kbUrl !== undefined ? checkUrl(o.kbUrl) : undefined;
  const key = o.kbKeyFile !== undefined ? readPublicKey(o.kbKeyFile) : undefined;
  const token = o.tokenFile !== undefined ? readTokenFile(o.tokenFile) : undefined;

  const paths = homePaths(o.home);
  const existed = existsSync(paths.config);
  let cfg: EdgeConfig;
  const updated: string[] = [];
  if (existed) {
    try {
      cfg = loadConfig(o.home);
    } catch (e) {
      throw new ReportedError((e as Error).message);
    }
    if (o.deviceId !== undefined && o.deviceId !== cfg.device_id) {
      throw new UsageError(`${o.home}: already initialised as device "${cfg.device_id}"; refusing to change it to "${o.deviceId}" (use another --home)`);
    }
  } else {
    if (o.deviceId === undefined) throw new UsageError(`${o.home}: not initialised yet; --device-id ID is required`);
    cfg = { device_id: o.deviceId, created_at: new Date().toISOString(), ...structuredClone(DEFAULT_CONFIG) };
    updated.push('device_id');
  }
  if (o.maxOutboxMb !== undefined && o.maxOutboxMb !== cfg.outbox.max_mb) {
    cfg.outbox = { ...cfg.outbox, max_mb: o.maxOutboxMb };
    updated.push('outbox.max_mb');
  }
  if (url !== undefined || key !== undefined) {
    const nextUrl = url ?? cfg.kb?.url;
    const nextKey = key ?? cfg.kb?.public_key;
    // a key without a URL is fine: an edge updated only by offline bundles needs the key alone
    if (!nextKey) throw new UsageError(`--kb-url needs --kb-key FILE (the KB's ed25519 public key) to verify what it publishes`);
    if (nextUrl !== undefined && nextUrl !== cfg.kb?.url) updated.push('kb.url');
    if (nextKey !== cfg.kb?.public_key) updated.push('kb.public_key');
    cfg.kb = { ...cfg.kb, ...(nextUrl !== undefined ? { url: nextUrl } : {}), public_key: nextKey };
  }

  try {
    keepPrivate(paths.home);
    for (const d of [paths.blobs, paths.models, paths.kb, paths.locks, paths.tmp]) mkdirSync(d, { recursive: true });
    // the database first: a home with config.json is "initialised", so config comes last
    const db = openEdgeDb(paths.db);
    db.close();
    keepPrivate(paths.home, [...sqliteFiles(paths.db), paths.config, paths.token]);
    if (token !== undefined) {
      const old = existsSync(paths.token) ? readFileSync(paths.token, 'utf8').trim() : null;
      if (old !== token) {
        saveToken(o.home, token);
        updated.push('token');
      }
    }
    if (updated.some((u) => u !== 'token')) saveConfig(o.home, cfg);
  } catch (e) {
    throw asStorageError(e, paths.db);
  }
  return {
    home: o.home,
    device_id: cfg.device_id,
    created: !existed,
    updated,
    outbox_max_bytes: Math.round(cfg.outbox.max_mb * 1024 * 1024),
    kb_url: cfg.kb?.url ?? null,
    token: existsSync(paths.token),
  };
}
