// The edge home directory and its config.json (DESIGN.md "Edge home").
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../durable/atomic-write.js';
import { UsageError } from '../errors.js';
import { checkConfig } from './config-check.js';
import { DEFAULT_MAX_PIXELS } from '../format/image-header.js';

export interface UploadPolicy {
  /** raw: payload bytes leave the device; none: only metadata, prediction and scores */
  payload: 'raw' | 'none';
  /** per-task override of payload */
  per_task?: Record<string, 'raw' | 'none'>;
  /** keep uploaded samples locally, or delete them once the KB acked them */
  retention: 'keep' | 'delete';
  /**
   * push body encoding (sync --compress overrides): gzip always, none never, auto (the default
   * when absent) gzips a batch only when that is estimated to finish the push sooner (src/sync/compress-policy.ts)
   */
  compress?: 'auto' | 'gzip' | 'none';
}

export interface RolloutPolicy {
  /** activate pulled versions after verification (auto) or wait for `model activate` (manual) */
  activate: 'auto' | 'manual';
  /** inferences observed on trial before a version is committed */
  trial_inferences: number;
  /** roll back when the trial's unseen+hard rate exceeds the previous version's by this factor */
  trial_rate_factor: number;
  /** max abs difference between canary outputs and expected ones */
  canary_tolerance: number;
  /** max mean canary latency per sample in ms */
  max_latency_ms: number;
  /** keep tasks added with `task add` when a pulled KB version lacks them (task add --keep: one task) */
  keep_local_tasks?: boolean;
}

export interface EdgeConfig {
  device_id: string;
  created_at: string;
  kb?: {
    /** absent on an edge that is only updated by offline bundles (USB stick) */
    url?: string;
    /** PEM of the KB's ed25519 public key */
    public_key: string;
    /** private CA (PEM file path) for HTTPS to the KB */
    ca_file?: string;
    /** follow presigned object-store URLs for model downloads (GET /v1/blobs/:sha/url) */
    presigned_blobs?: boolean;
  };
  outbox: { max_mb: number };
  upload: UploadPolicy;
  rollout: RolloutPolicy;
  images: ImagePolicy;
}

/** How `infer` treats image inputs (config "images"). */
export interface ImagePolicy {
  /** refuse images declaring more pixels than this, from the header, before decoding */
  max_pixels: number;
  /** resize an image whose size is not the model's declared input (default: refuse it) */
  resize: boolean;
}

export const DEFAULT_CONFIG: Omit<EdgeConfig, 'device_id' | 'created_at'> = {
  outbox: { max_mb: 512 },
  upload: { payload: 'raw', retention: 'keep' },
  rollout: { activate: 'auto', trial_inferences: 200, trial_rate_factor: 1.5, canary_tolerance: 1e-3, max_latency_ms: 1000 },
  images: { max_pixels: DEFAULT_MAX_PIXELS, resize: false },
};

/**
 * --home, else $SEDNA_LL_HOME, else ~/.sedna-ll. An empty SEDNA_LL_HOME (a unit file's
 * `Environment=SEDNA_LL_HOME=`) counts as unset and an empty --home is refused: resolve('') is
 * the working directory, which `init` turned into an edge home and every other command opened.
 */
export function resolveHome(opt?: string): string {
  if (opt === '') throw new UsageError('--home "": expected a directory');
  return resolve(opt ?? (process.env.SEDNA_LL_HOME || join(homedir(), '.sedna-ll')));
}

export const homePaths = (home: string) => ({
  home,
  config: join(home, 'config.json'),
  token: join(home, 'token'),
  db: join(home, 'edge.db'),
  blobs: join(home, 'blobs'),
  models: join(home, 'models'),
  kb: join(home, 'kb'),
  locks: join(home, 'locks'),
  tmp: join(home, 'tmp'),
});
export type HomePaths = ReturnType<typeof homePaths>;

export function loadConfig(home: string): EdgeConfig {
  const p = homePaths(home).config;
  if (!existsSync(p)) throw new UsageError(`${home}: not an edge home (no config.json); run "sedna-ll init --device-id ID" first`);
  let c: EdgeConfig;
  try {
    c = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new UsageError(`${p}: not valid JSON: ${(e as Error).message}`);
  }
  // `null`, a number, an array: valid JSON but no config (was "Cannot read properties of null")
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new UsageError(`${p}: expected a JSON object, got ${c === null ? 'null' : Array.isArray(c) ? 'an array' : typeof c}`);
  // unknown keys and bad values stop every command here, naming the key (not later, in sync)
  checkConfig(c, p);
  // fill sections added by later versions so older homes keep working
  return {
    ...c,
    outbox: { ...DEFAULT_CONFIG.outbox, ...c.outbox },
    upload: { ...DEFAULT_CONFIG.upload, ...c.upload },
    rollout: { ...DEFAULT_CONFIG.rollout, ...c.rollout },
    images: { ...DEFAULT_CONFIG.images, ...c.images },
  };
}

export function saveConfig(home: string, c: EdgeConfig): void {
  writeFileAtomic(homePaths(home).config, JSON.stringify(c, null, 2) + '\n', 0o600);
}

export function readToken(home: string): string | null {
  const p = homePaths(home).token;
  return existsSync(p) ? readFileSync(p, 'utf8').trim() : null;
}

export function saveToken(home: string, token: string): void {
  writeFileAtomic(homePaths(home).token, token.trim() + '\n', 0o600);
}
