// Pull: the newest signed index for this device's channel, the model blobs the edge lacks
// (resumable), then install (and, per the rollout policy, activate) it as a new KB version.
//
// Order matters for "nothing becomes visible unless verified":
//   1. the index signature is checked over the exact body bytes BEFORE anything is downloaded;
//   2. each blob streams into tmp/<sha>.part (resumed with Range + If-Range on the strong ETag),
//      is hashed while it arrives and, only when its sha256 and size match the signed index,
//      renamed into models/<sha>.onnx (content-addressed, so a model nobody references yet is
//      harmless and the next run does not fetch it again);
//   3. installVersion writes kb/<id>/ and the row ('staged'); activateVersion moves the active
//      pointer in one transaction. A failure anywhere before 3 leaves the active version as is.
//
// Channel fallback: the request also names the KB version the edge runs (`active`), and the KB
// answers the channel's index when the channel points elsewhere, though not newer than `since`
// (format/protocol.ts): a rollout aborted on the KB. That index, verified like any other, is
// installed if missing (idempotent) and activated through the same trial path, unless this edge
// already saw it fail (then the edge keeps what it runs: it does not retry a failed version by
// itself) or the activation policy is manual.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, createReadStream } from 'node:fs';
import { join } from 'node:path';
import { UsageError, VerificationError, ReportedError } from '../errors.js';
import type { TaskIndex } from '../format/index-manifest.js';
import { SIGNATURE_HEADER, VERSION_HEADER } from '../format/protocol.js';
import { type DB, kvGet, logEvent } from '../store/db.js';
import { fsyncDir } from '../durable/atomic-write.js';
import type { EdgeConfig, HomePaths } from '../store/home.js';
import { getVersion, latestKbSeq, modelFile, versionId } from '../store/version-rows.js';
import { sinkHashed } from './blob-sink.js';
import { type KbClient, SyncHttpError, describeError, isRetryableError, isRetryableStatus } from './http.js';
// the KB answers 304 on most runs: what verifies and installs an index (the validator, a 319 KB
// generated module, the key chain, the install code) is loaded after the answer, when there is
// an index (see loadInstallCode)

export interface PullResult {
  /** KB version number pulled and installed, null when the edge was current (304) */
  version: number | null;
  versionId: string | null;
  activated: boolean;
  /** model files downloaded (not already present) */
  downloaded: number;
  bytesDown: number;
  /** wall time of the blob downloads (streamed to disk, hashed, fsynced, placed) */
  downloadMs: number;
  /** the channel's version was older than (or beside) the one the edge runs: the KB's fallback */
  fallback: boolean;
  /** the health check of the activation this pull started (config rollout.activate = auto) */
  trial: { version: number; result: 'pass' | 'trial' | 'fail' | 'noop'; reason?: string } | null;
  /** local tasks this version stops serving (one line each); kept ones are not listed */
  warnings: string[];
  /** local tasks carried over onto the pulled version (task add --keep, rollout.keep_local_tasks) */
  kept: string[];
}

/**
 * Activates a pulled version through the rollout trial (health check before the pointer moves).
 * Passed in by the caller (the sync command passes rollout/trial.ts activateWithTrial): sync sits
 * beside runtime, not above it, so it must not import it. Returns 'fail' (never throws) when the
 * version's own check fails.
 */
export type ActivateVersion = (
  paths: HomePaths,
  db: DB,
  id: string,
  opts: { config: EdgeConfig; reason: string; allowDowngrade?: boolean },
) => Promise<{ result: 'pass' | 'trial' | 'fail' | 'ok' | 'noop'; reason?: string }>;

export interface PullOptions {
  /** used when config.rollout.activate is auto */
  activate: ActivateVersion;
  onProgress?: (p: { what: string; done: number; total: number }) => void;
}

const header = (h: Record<string, string | string[] | undefined>, k: string) => {
  const v = h[k];
  return Array.isArray(v) ? v[0] : v;
};

const nothing = (): PullResult => ({ version: null, versionId: null, activated: false, downloaded: 0, bytesDown: 0, downloadMs: 0, fallback: false, trial: null, warnings: [], kept: [] });

/** The KB version number the edge runs (active or on trial), null for none or a local version. */
function activeKbSeq(db: DB): number | null {
  const id = kvGet(db, 'active_version');
  return id && /^\d+$/.test(id) ? Number(id) : null;
}

/** The modules a pull needs once the KB sent an index, loaded together. */
async function loadInstallCode() {
  const [chain, validate, versions, kept, trust] = await Promise.all([
    import('../format/key-chain.js'),
    import('../format/validate-index.js'),
    import('../store/versions.js'),
    import('../store/kept-tasks.js'),
    import('./index-trust.js'),
  ]);
  return {
    keyForVersion: chain.keyForVersion,
    parseIndex: validate.parseIndex,
    installVersion: versions.installVersion,
    carryLocalTasks: kept.carryLocalTasks,
    localTasks: kept.localTasks,
    verifyPulledIndex: trust.verifyPulledIndex,
  };
}

export async function pull(paths: HomePaths, db: DB, config: EdgeConfig, client: KbClient, opts: PullOptions): Promise<PullResult> {
  const key = config.kb?.public_key;
  if (!key) throw new UsageError(`no KB public key in ${paths.config}; run "sedna-ll init --kb-url URL --token-file F --kb-key F"`);
  const since = latestKbSeq(db);
  const active = activeKbSeq(db);
  const query = `since=${since}${active !== null ? `&active=${active}` : ''}`;
  const res = await client.request({ method: 'GET', path: `/v1/index?${query}`, accept: (s) => s === 200 || s === 304 });
  if (res.status === 304) return nothing();
  const { keyForVersion, parseIndex, installVersion, carryLocalTasks, localTasks, verifyPulledIndex } = await loadInstallCode();

  // 1. the signature over the exact bytes, before trusting anything in them
  const bytes = res.body;
  const sig = header(res.headers, SIGNATURE_HEADER);
  if (!sig) throw new VerificationError(`KB index (since=${since}): no ${SIGNATURE_HEADER} header; refusing an unsigned index`);
  // with the key this edge trusts for that version; a KB that rotated its key hands the new
  // one on here (index-trust.ts: only through transitions signed by a key already trusted)
  const keys = await verifyPulledIndex(db, key, client, bytes, sig, `KB index (since=${since})`);
  let index: TaskIndex;
  try {
    index = parseIndex(bytes, 'KB index');
  } catch (e) {
    throw new VerificationError((e as Error).message);
  }
  if (index.origin !== 'kb') throw new VerificationError(`KB index version ${index.version}: origin "${index.origin}" is not "kb"`);
  const announced = header(res.headers, VERSION_HEADER);
  if (announced !== undefined && Number(announced) !== index.version) {
    throw new VerificationError(`KB index: header ${VERSION_HEADER} ${announced} differs from the signed version ${index.version}`);
  }
  let fallback = false;
  if (index.version <= since) {
    // not newer than what we have: the channel's fallback, when it is not what we run already
    if (active === null || index.version === active) return nothing();
    const row = getVersion(db, versionId(index, 'kb'));
    if (row?.state === 'failed') return nothing(); // failed here before: keep what runs (kb fleet shows it)
    if (row && config.rollout.activate !== 'auto') return nothing(); // installed; activating it is the operator's call
    fallback = true;
  }

  // 2. missing model blobs, resumable, verified, placed content-addressed
  const wanted = new Map<string, number>();
  for (const t of index.tasks) wanted.set(t.model.sha256, t.model.size);
  const missing = [...wanted].filter(([sha]) => !existsSync(modelFile(paths, sha)));
  const total = missing.reduce((a, [, s]) => a + s, 0);
  let done = 0;
  let bytesDown = 0;
  const t0 = Date.now();
  for (const [sha, size] of missing) {
    const got = await downloadBlob(
      paths,
      client,
      sha,
      size,
      (n) => {
        done += n;
        opts.onProgress?.({ what: 'models', done, total });
      },
      { presigned: config.kb?.presigned_blobs === true },
    );
    bytesDown += got;
  }
  const downloadMs = Date.now() - t0;

  // local tasks served now (before the install changes what "latest KB version" means)
  const local = localTasks(paths, db, since);

  // 3. install (verifies the signature again and the hash of every model this run did not
  // download itself, writes kb/<id>/ and the row) and activate
  const id = installVersion(paths, db, {
    indexBytes: bytes,
    sig,
    origin: 'kb',
    modelPath: (sha) => modelFile(paths, sha),
    publicKey: keyForVersion(keys, index.version)?.key ?? key,
    verifiedModels: new Set(missing.map(([sha]) => sha)),
  });
  let activated = false;
  let trial: PullResult['trial'] = null;
  // tasks the edge added itself: kept on top of this version (a local version), or warned about
  const carry = carryLocalTasks(paths, db, config, index, id, local);
  if (carry.kept.length) logEvent(db, 'local_tasks_kept', { on: id, version: carry.activate, tasks: carry.kept });
  if (config.rollout.activate === 'auto') {
    // through the rollout trial (opts.activate): health check before the pointer moves, then
    // observed inferences; a failed check leaves the active version and records last_trial
    // the channel fallback is the KB's signed decision to go back: a downgrade allowed here
    // (and said on stderr by the sync command), never on a plain pull
    const r = await opts.activate(paths, db, carry.activate, { config, reason: fallback ? `channel fallback from version ${active}` : 'sync', allowDowngrade: fallback });
    activated = r.result !== 'fail';
    if (r.result === 'pass' || r.result === 'trial' || r.result === 'fail' || r.result === 'noop') {
      trial = { version: index.version, result: r.result, ...(r.reason ? { reason: r.reason } : {}) };
    }
  }
  if (fallback) logEvent(db, 'channel_fallback', { from: active, to: index.version, id, downloaded: missing.length, activated, result: trial?.result ?? null, reason: trial?.reason ?? null });
  logEvent(db, 'sync_pulled', { id, version: index.version, downloaded: missing.length, bytes: bytesDown, activated, fallback });
  return { version: index.version, versionId: id, activated, downloaded: missing.length, bytesDown, downloadMs, fallback, trial, warnings: carry.warnings, kept: carry.kept };
}

/** Stream hash of a file's first `len` bytes (to resume hashing a partial download). */
async function hashPrefix(path: string, len: number) {
  const h = createHash('sha256');
  if (len > 0) {
    for await (const chunk of createReadStream(path, { start: 0, end: len - 1, highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  }
  return h;
}

/**
 * The presigned object-store URL the KB offers for a blob (GET /v1/blobs/<sha>/url), or null
 * when it offers none (presigned URLs off on that KB: 404).
 */
async function presignedUrl(client: KbClient, sha: string): Promise<string | null> {
  const r = await client.request({ method: 'GET', path: `/v1/blobs/${sha}/url`, accept: (s) => s === 200 || s === 404 });
  if (r.status === 404) return null;
  let url: unknown;
  try {
    url = (JSON.parse(r.body.toString('utf8')) as { url?: unknown }).url;
  } catch {
    url = undefined;
  }
  if (typeof url !== 'string' || !/^https?:\/\//.test(url)) throw new SyncHttpError(`KB answered GET /v1/blobs/${sha.slice(0, 12)}…/url without an http(s) url`, 'protocol');
  return url;
}

/**
 * Download /v1/blobs/<sha> into tmp/<sha>.part, resuming what a previous (killed or cut) run
 * left there with Range + If-Range on the blob's strong ETag; every received chunk is written
 * synchronously, so a cut loses at most the chunk in flight. Verified bytes end up in
 * models/<sha>.onnx. Returns the bytes received.
 *
 * presigned (config kb.presigned_blobs): the bytes come from the object-store URL the KB
 * presigns, fetched WITHOUT the device token. A resume there sends Range but no If-Range (the
 * store's ETag is not our sha256; the sha256 of the signed index checks the result anyway), and
 * a 403 (the URL expired) fetches a new URL and continues from the partial file.
 */
export async function downloadBlob(paths: HomePaths, client: KbClient, sha: string, size: number, onBytes: (n: number) => void = () => {}, opts: { presigned?: boolean } = {}): Promise<number> {
  let presigned = opts.presigned === true;
  let url: string | null = null;
  mkdirSync(paths.tmp, { recursive: true });
  const part = join(paths.tmp, `${sha}.part`);
  const etagFile = join(paths.tmp, `${sha}.etag`);
  const drop = () => {
    rmSync(part, { force: true });
    rmSync(etagFile, { force: true });
  };
  let received = 0;
  const retry = client.retrier((n, reason) => `KB unreachable while downloading blob ${sha.slice(0, 12)}… (${n} attempts): ${reason}`);
  for (;;) {
    const receivedBefore = received;
    let have = existsSync(part) ? statSync(part).size : 0;
    if (have > size) {
      drop();
      have = 0;
    }
    let reason = '';
    let done = false;
    if (have < size) {
      const etag = existsSync(etagFile) ? readFileSync(etagFile, 'utf8').trim() : `"${sha}"`;
      const headers: Record<string, string> = have > 0 ? { range: `bytes=${have}-`, 'if-range': etag } : {};
      try {
        // the prefix is hashed before the request, not between the answer and its body: on a
        // large .part and a slow disk that took longer than the body timeout, the link timed
        // out idle, and each retry (hashing it all again) gained only the first read's bytes
        const prefix = have > 0 ? await hashPrefix(part, have) : null;
        if (presigned && !url) {
          url = await presignedUrl(client, sha);
          if (url === null) presigned = false; // not offered: through the KB as usual
        }
        const res = url ? await client.openExternal(url, have > 0 ? { range: `bytes=${have}-` } : {}) : await client.openBlob({ path: `/v1/blobs/${sha}`, headers });
        const status = res.statusCode;
        if (status === 200 || status === 206) {
          let offset = 0;
          if (status === 206) {
            const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(header(res.headers, 'content-range') ?? ''));
            if (!m || Number(m[1]) !== have) {
              await res.discard();
              drop();
              throw new SyncHttpError(`blob ${sha.slice(0, 12)}: KB answered a range we did not ask for (${header(res.headers, 'content-range')})`, 'protocol');
            }
            offset = have;
          }
          const tag = header(res.headers, 'etag');
          // only a strong ETag may validate a resume
          if (tag && !tag.startsWith('W/') && !url) writeFileSync(etagFile, tag);
          // offset is `have` (206) or 0 (200: the whole blob again)
          const hash = offset > 0 && prefix ? prefix : createHash('sha256');
          const fd = openSync(part, offset === 0 ? 'w' : 'r+');
          let pos = offset;
          let refused: ReportedError | null = null;
          try {
            // hashed once as it arrives, written in large groups off the event loop (blob-sink.ts;
            // read off the socket into reused buffers over plain http: blob-get.ts)
            const sink = {
              size,
              tooLarge: () => new VerificationError(`blob ${sha.slice(0, 12)}: KB sent more than the ${size} bytes the signed index lists`),
              onBytes: (n: number) => {
                received += n;
                client.countDown(n);
                onBytes(n);
              },
            };
            pos = 'sinkInto' in res ? await res.sinkInto(fd, offset, hash, sink) : await sinkHashed(res.body, fd, offset, hash, sink);
            fsyncSync(fd);
          } catch (e) {
            if (e instanceof ReportedError) refused = e;
            else reason = describeError(e);
            pos = fstatSync(fd).size;
          } finally {
            closeSync(fd);
          }
          if (refused) {
            drop();
            throw refused;
          }
          if (!reason) {
            if (pos !== size) reason = `short body (${pos} of ${size} bytes)`;
            else {
              const got = hash.digest('hex');
              if (got !== sha) {
                drop();
                throw new VerificationError(`blob ${sha.slice(0, 12)}…: sha256 of the download is ${got.slice(0, 12)}…, not the one the signed index lists; deleted, not installed`);
              }
              done = true;
            }
          }
        } else {
          await res.discard();
          if (status === 416) {
            drop(); // our partial file does not fit the blob: restart it
            reason = 'HTTP 416';
          } else if (url && status === 403) {
            url = null; // expired (or revoked): ask the KB for a new one, keep the partial file
            reason = 'presigned URL refused (HTTP 403, expired?)';
          } else if (url && !isRetryableStatus(status)) {
            throw new SyncHttpError(`object store answered ${status} to the presigned GET of blob ${sha.slice(0, 12)}…`, 'protocol', status);
          } else if (status === 401 || status === 403) {
            throw new SyncHttpError(`KB refused the device token (${status}) on GET /v1/blobs/${sha.slice(0, 12)}…`, 'auth', status);
          } else if (!isRetryableStatus(status)) {
            throw new SyncHttpError(`KB answered ${status} to GET /v1/blobs/${sha}`, 'protocol', status);
          } else reason = `HTTP ${status}`;
        }
      } catch (e) {
        if (e instanceof ReportedError || e instanceof SyncHttpError) throw e;
        if (client.remainingMs() <= 0) throw new SyncHttpError(`--max-time reached while downloading blob ${sha.slice(0, 12)}…`, 'deadline');
        if (!isRetryableError(e)) throw e;
        reason = describeError(e);
      }
    } else {
      // a previous run finished the download but died before placing it
      const h = await hashPrefix(part, size);
      if (h.digest('hex') !== sha) {
        drop();
        throw new VerificationError(`blob ${sha.slice(0, 12)}…: the completed partial download does not match its sha256; deleted, not installed`);
      }
      done = true;
    }
    if (done) {
      mkdirSync(paths.models, { recursive: true });
      renameSync(part, modelFile(paths, sha));
      fsyncDir(paths.models);
      rmSync(etagFile, { force: true });
      return received;
    }
    // an attempt that made progress does not count against the retries (a flaky link that
    // still moves bytes should finish the blob); the deadline still bounds the run. A retry
    // after a cut continues where the file ends.
    await retry.failed(reason, { progressed: received > receivedBefore });
  }
}
