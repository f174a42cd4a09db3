// One `sedna-ll sync` run: lock, push (samples then labels), pull, report, and how it ended
// (its outcome; outcome.ts maps that to the exit code).
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT, type ExitCode, UsageError, VerificationError } from '../errors.js';
import { type DB, kvGet, kvSet, logEvent, openEdgeDb, upgradeWaitMs } from '../store/db.js';
import { type EdgeConfig, type HomePaths, homePaths, loadConfig, readToken } from '../store/home.js';
import { withRolloutLock } from '../rollout/lock.js';
import { listVersions } from '../store/version-rows.js';
import { asStorageError } from '../store/open-home.js';
import { KbClient, SyncHttpError, type FailureKind } from './http.js';
import { type SyncOutcome, outcomeMessage, syncExitCode } from './outcome.js';
import { makeProgress, type Progress } from './progress.js';
// the push and pull halves are imported when the run does them (--pull-only never loads the
// outbox writer and the framing, --push-only never the index and install code): each start of
// a cron run pays only for what it uses
import type { ActivateVersion } from './pull.js';
import { COMPRESS_MODES, type CompressMode } from './compress-policy.js';
import { rejectedCount } from '../store/rejected.js';
import { pendingCounts } from '../store/pending-counts.js';
import type { FramingMode } from './negotiate.js';
import { readThreadMode } from './read-thread-setting.js';
import { proxyEnv, proxyProblem } from './transport.js';

export interface SyncOptions {
  home: string;
  /** activates a pulled version (config rollout.activate auto); the CLI passes rollout/trial.ts
   *  activateWithTrial — injected because sync must not import runtime */
  activate: ActivateVersion;
  pushOnly?: boolean;
  pullOnly?: boolean;
  batchSize?: number;
  batchBytes?: number;
  /** seconds; bounds the whole run */
  maxTime?: number;
  /** seconds; sleep random(0..jitter) first */
  jitter?: number;
  /** PEM file of a private CA (--ca); default config kb.ca_file */
  ca?: string;
  /** retries per request (default 5) */
  retries?: number;
  /** true: progress bars; false: nothing on stderr while running; default: bars on a TTY, else notes as plain lines */
  progress?: boolean;
  /** push body encoding; default config upload.compress, else auto */
  compress?: CompressMode;
  /** push body format: auto (binary frames when the KB announces them) or json */
  framing?: FramingMode;
}

export interface SyncSummary {
  pushed: number;
  acked: number;
  /** samples the KB refused for good in this run (marked rejected, never re-sent) */
  rejected: number;
  /** all samples marked rejected on this edge so far */
  rejected_total: number;
  pending: number;
  labels_pushed: number;
  labels_pending: number;
  /** sample batches sent gzipped / uncompressed (--compress, upload.compress) */
  batches_gzip: number;
  batches_plain: number;
  /** push body format used: "frames" (binary, the KB announced it), "json", null when nothing was pushed */
  push_framing: 'frames' | 'json' | null;
  pulled_version: number | null;
  activated: boolean;
  /** the health check / trial of the version this run activated, if it activated one */
  trial?: { version: number; result: 'pass' | 'trial' | 'fail' | 'noop'; reason?: string };
  /** e.g. local tasks the pulled version stops serving (also on stderr) */
  warnings: string[];
  /** local tasks carried over onto the pulled version (task add --keep, rollout.keep_local_tasks) */
  kept_tasks: string[];
  bytes_up: number;
  bytes_down: number;
  duration_ms: number;
  /** wall time of the push (samples + labels) and pull phases */
  push_ms: number;
  pull_ms: number;
  /** part of pull_ms spent downloading model blobs */
  download_ms: number;
  /** model files the pull downloaded (the ones the edge did not hold already) and their bytes */
  models_downloaded: number;
  model_bytes_down: number;
  /** prefix of the X-Request-Id of every request of this run (`<request_id>-<n>`; the KB logs it as req_id) */
  request_id: string;
  /** kept with the summary in the edge's history (kv last_sync, the sync event) */
  exit: ExitCode;
  error?: string;
}

export interface SyncResult {
  summary: SyncSummary;
  outcome: SyncOutcome;
  /** the process exit code of the run (syncExitCode of the outcome) */
  exit: ExitCode;
  /** one line for stderr when exit != 0 */
  message: string | null;
  /** the KB's channel fallback brought an older version back (said on stderr: a downgrade) */
  fallback?: { to: number; activated: boolean };
}

/** the PEM text of a CA file the operator named (what: how it was named, for the message) */
function readCa(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${what}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // TLS ignores what is not a PEM certificate: a wrong file (a key, junk, empty) gave every
  // request "self-signed certificate" / "unable to verify", never naming the file
  const certs = text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (certs.length === 0) throw new UsageError(`${what}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)`);
  certs.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (e) {
      throw new UsageError(`${what}: certificate ${i + 1} does not parse (${(e as Error).message})`);
    }
  });
  return text;
}

export async function runSync(o: SyncOptions): Promise<SyncResult> {
  const t0 = Date.now();
  const deadline = o.maxTime !== undefined ? t0 + o.maxTime * 1000 : Infinity;
  const paths = homePaths(o.home);
  let config: EdgeConfig;
  try {
    config = loadConfig(o.home);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (!config.kb?.url) throw new UsageError(`no KB configured in ${paths.config}; run "sedna-ll init --kb-url URL --token-file F --kb-key F"`);
  const compress = o.compress ?? config.upload.compress ?? 'auto';
  if (!COMPRESS_MODES.includes(compress)) throw new UsageError(`${paths.config}: upload.compress "${compress}": expected auto, gzip or none`);
  o = { ...o, compress };
  readThreadMode(); // a bad SEDNA_LL_PUSH_READ_THREAD is reported on every run, not only when samples are pending
  const token = readToken(o.home);
  if (!token) throw new UsageError(`no device token in ${paths.token}; run "sedna-ll init --token-file F" with the token "kb device add" printed`);
  // a proxy variable that cannot be used is the operator's setting to fix: exit 2 naming it
  const badProxy = proxyProblem(new URL(config.kb.url), proxyEnv(process.env));
  if (badProxy) throw new UsageError(badProxy);
  // read before the jitter sleep and the lock: a wrong file named by the operator is a usage error now
  const ca = o.ca !== undefined ? readCa(o.ca, `--ca ${o.ca}`) : config.kb.ca_file !== undefined ? readCa(config.kb.ca_file, `${paths.config}: kb.ca_file ${config.kb.ca_file}`) : undefined;

  if (o.jitter && o.jitter > 0) {
    // spread a cron fleet over the window; never sleep past the deadline
    const wait = Math.min(Math.random() * o.jitter * 1000, Math.max(0, deadline - Date.now() - 1000));
    await sleep(wait);
  }

  return withRolloutLock(paths, async () => {
    let db: DB | null = null;
    try {
      // --max-time bounds the whole run: a wait for another process's schema upgrade too
      const left = Math.max(0, deadline - Date.now());
      db = openEdgeDb(paths.db, left < upgradeWaitMs() ? { upgradeWaitMs: left, upgradeWaitLimit: `${o.maxTime} s, --max-time` } : {});
      return await syncLocked(paths, db, config, token, ca, o, deadline, t0);
    } catch (e) {
      // busy / read-only / full disk / not a database: one line naming the file
      throw asStorageError(e, paths.db);
    } finally {
      db?.close();
    }
  });
}

async function syncLocked(paths: HomePaths, db: DB, config: EdgeConfig, token: string, ca: string | undefined, o: SyncOptions, deadline: number, t0: number): Promise<SyncResult> {
  // not a TTY: no bars, but the notes as plain lines (cron mail shows that a run retried)
  const progress: Progress = makeProgress(o.progress === false ? 'off' : o.progress || process.stderr.isTTY ? 'bars' : 'lines');
  const client = await KbClient.create({
    baseUrl: config.kb!.url!,
    token,
    ca,
    deadline,
    retries: o.retries,
    onRetry: ({ attempt, waitMs, reason }) => progress.note(`sync: retry ${attempt} in ${waitMs} ms (${reason})`),
  });
  let fallbackInfo: SyncResult['fallback'] | undefined;
  const s: SyncSummary = {
    pushed: 0,
    acked: 0,
    rejected: 0,
    rejected_total: 0,
    pending: 0,
    labels_pushed: 0,
    batches_gzip: 0,
    batches_plain: 0,
    push_framing: null,
    labels_pending: 0,
    pulled_version: null,
    activated: false,
    warnings: [],
    kept_tasks: [],
    bytes_up: 0,
    bytes_down: 0,
    duration_ms: 0,
    push_ms: 0,
    pull_ms: 0,
    download_ms: 0,
    models_downloaded: 0,
    model_bytes_down: 0,
    request_id: client.requestId,
    exit: EXIT.OK,
  };
  let failure: { kind: FailureKind | 'verify'; message: string } | null = null;
  // the first failure decides the exit code (a later one is only noted), except that a
  // verification failure (exit 5) always wins: it must never hide behind another error
  const fail = (e: unknown) => {
    let f: { kind: FailureKind | 'verify'; message: string };
    if (e instanceof SyncHttpError) f = { kind: e.kind, message: e.message };
    else if (e instanceof VerificationError) f = { kind: 'verify', message: e.message };
    else throw e;
    if (!failure || f.kind === 'verify') failure = f;
    else progress.note(`sync: ${f.message}`);
  };
  try {
    // an edge with nothing pending (most cron runs) loads no push code at all
    const before = o.pullOnly ? null : pendingCounts(db);
    if (before && (before.pending > 0 || before.labelsPending > 0)) {
      const [{ pushLabels, pushSamples }, { Outbox }, { pushFraming, forgetFraming }] = await Promise.all([import('./push.js'), import('../store/outbox.js'), import('./negotiate.js')]);
      const t = Date.now();
      try {
        const outbox = new Outbox(db, paths, config);
        // the format is asked only when there is something to push (one round trip), and then
        // kept for this KB (negotiate.ts)
        if (before.pending > 0) {
          const framing = await pushFraming(db, client, { url: config.kb!.url!, publicKey: config.kb!.public_key }, o.framing ?? 'auto');
          try {
            await pushSamples(db, outbox, config, client, s, { batchSize: o.batchSize, batchBytes: o.batchBytes, framing, compress: o.compress, progress });
          } finally {
            // frames went out but JSON batches followed: the KB refused frames (push.ts falls
            // back to JSON in the run); the next run asks it again
            if (framing === 'frames' && s.push_framing === 'json') forgetFraming(db);
          }
        }
        await pushLabels(outbox, client, s);
      } catch (e) {
        fail(e);
      }
      s.push_ms = Date.now() - t;
    }
    // pull even when the push hit a protocol problem (a refused batch must not keep new models
    // away); not when the KB is unreachable, refuses the token or the time is up
    const pushFailure = failure as { kind: string } | null;
    if (!o.pushOnly && (!pushFailure || pushFailure.kind === 'protocol')) {
      const { pull } = await import('./pull.js');
      const t = Date.now();
      try {
        const r = await pull(paths, db, config, client, { activate: o.activate, onProgress: (p) => progress.update('pull', p.done, p.total, 'bytes') });
        s.pulled_version = r.version;
        s.activated = r.activated;
        if (r.fallback && r.version !== null) fallbackInfo = { to: r.version, activated: r.activated };
        s.download_ms = r.downloadMs;
        s.models_downloaded = r.downloaded;
        s.model_bytes_down = r.bytesDown;
        if (r.trial) s.trial = r.trial;
        s.warnings.push(...r.warnings);
        s.kept_tasks = r.kept;
        if (r.trial?.result === 'fail') {
          const kept = kvGet(db, 'active_version');
          fail(new VerificationError(`KB version ${r.version} failed its health check (${r.trial.reason ?? 'no reason given'}); ${kept ? `version ${kept} stays active` : 'no version active'}`));
        }
      } catch (e) {
        fail(e);
      }
      s.pull_ms = Date.now() - t;
    }
    const counts = pendingCounts(db);
    s.pending = counts.pending;
    s.labels_pending = counts.labelsPending;
    s.rejected_total = rejectedCount(db);
    // the fleet view: report on every sync that can still reach the KB (best effort)
    const f = failure as { kind: string; message: string } | null;
    if (!f || f.kind === 'verify' || f.kind === 'protocol') {
      try {
        await report(db, client, s, f ? f.message : null);
      } catch (e) {
        if (!(e instanceof SyncHttpError)) throw e;
        progress.note(`sync: report not sent: ${e.message}`);
      }
    }
  } finally {
    progress.done();
    s.bytes_up = client.traffic.up;
    s.bytes_down = client.traffic.down;
    await client.close();
  }

  const didWork = s.acked > 0 || s.labels_pushed > 0 || s.pulled_version !== null;
  const f = failure as { kind: FailureKind | 'verify'; message: string } | null;
  const outcome: SyncOutcome = f
    ? { kind: 'failed', failure: f.kind, message: f.message, didWork, heardFromKb: s.bytes_down > 0 }
    : s.rejected > 0
      ? { kind: 'rejected', samples: s.rejected }
      : { kind: 'done' };
  const message = outcomeMessage(outcome);
  s.exit = syncExitCode(outcome);
  if (f) s.error = f.message;
  s.duration_ms = Date.now() - t0;
  // one transaction: one commit (fsync) at the end of every run, not two
  db.transaction(() => {
    kvSet(db, 'last_sync', JSON.stringify({ time: Date.now(), result: s.exit, summary: s }));
    logEvent(db, 'sync', { ...s });
  })();
  return { summary: s, outcome, exit: s.exit, message, ...(fallbackInfo ? { fallback: fallbackInfo } : {}) };
}

async function report(db: DB, client: KbClient, s: SyncSummary, lastError: string | null): Promise<void> {
  const active = kvGet(db, 'active_version');
  const versions = listVersions(db)
    .filter((v) => v.origin !== 'local')
    .map((v) => ({ version: v.seq, state: v.state }));
  const body: Record<string, unknown> = {
    active_version: active && /^\d+$/.test(active) ? Number(active) : null,
    versions,
    pending_samples: s.pending,
    health: {
      active_id: active,
      labels_pending: s.labels_pending,
      last_sync_acked: s.acked,
      ...(lastError ? { last_error: lastError.slice(0, 500) } : {}),
    },
  };
  const trial = parseTrial(kvGet(db, 'last_trial'));
  if (trial) body.trial = trial;
  await client.request({
    method: 'POST',
    path: '/v1/report',
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify(body)),
  });
}

/** kv last_trial (written by the rollout side) in the DeviceReport.trial shape, if it fits. */
function parseTrial(raw: string | null): { version: number; result: 'pass' | 'fail' | 'pending'; reason?: string } | null {
  if (!raw) return null;
  try {
    const t = JSON.parse(raw) as { version?: unknown; id?: unknown; result?: unknown; reason?: unknown };
    const v = typeof t.version === 'number' ? t.version : typeof t.id === 'string' && /^\d+$/.test(t.id) ? Number(t.id) : null;
    if (v === null || !['pass', 'fail', 'pending'].includes(String(t.result))) return null;
    return { version: v, result: t.result as 'pass' | 'fail' | 'pending', ...(typeof t.reason === 'string' ? { reason: t.reason } : {}) };
  } catch {
    return null;
  }
}
