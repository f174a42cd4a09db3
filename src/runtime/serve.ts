// `sedna-ll serve`: a long-running inference server on loopback HTTP or a Unix socket (node:http,
// no framework: one route, and start-up matters on a gateway).
//   POST /infer   body: one JSONL-style record or an array of them; answer: the output line's
//                 object, or an array of them (a bad record in an array becomes
//                 {"id","error","where"}; a single bad record answers 422 with that object).
//   GET  /healthz {"ok":true,"version","tasks","requests"}
//   GET  /metrics Prometheus text (serve-metrics.ts: inference latency, outbox, evictions, trial)
// Hard/unseen samples go to the same outbox as `infer`; an answer saying "logged": true is sent
// only after the transaction committed and is on stable storage (survives kill -9 and a power
// cut). One fdatasync of the WAL serves the batches committed meanwhile (store/wal-durability.ts):
// on the event loop while the disk is fast (under 1 ms: cheaper than the thread-pool hand-off),
// otherwise on the thread pool so that other requests keep being served while the disk works.
// Version switches without restart: the active version id is re-read (one indexed kv read)
// every `recheckEvery` requests and on SIGHUP; a new version is loaded into a fresh
// RuntimeState, its models are opened, and only then is the state swapped (one assignment,
// between requests: a request keeps the state it started with). A version that fails to load
// is reported on stderr and the old one keeps serving.
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { ReportedError, UsageError, ConflictError } from '../errors.js';
import type { DB } from '../store/db.js';
import type { HomePaths } from '../store/home.js';
import { openHome } from '../store/open-home.js';
import { Outbox } from '../store/outbox.js';
import { WalCheckpointer } from '../store/wal-checkpointer.js';
import { WalDurability } from '../store/wal-durability.js';
import { decodeJsonBytes, decodeJsonRecord } from './decode-jsonl.js';
import { Pipeline, type Outcome } from './pipeline.js';
import { commitDurability, ServeBatcher } from './serve-batcher.js';
import type { Item } from './sample.js';
import { SessionCache } from './sessions.js';
import { activeVersionId, loadRuntimeState, type RuntimeState } from './state.js';

/**
 * fdatasyncs averaging under this run on the event loop (wal-durability.ts): measured here, a 0.3
 * ms fsync costs less blocked there than its two thread-pool hand-offs; 1 ms bounds what one
 * blocked turn costs the other requests and /healthz.
 */
const INLINE_FSYNC_MS = 1;

export interface ServeOptions {
  home?: string;
  socket?: string;
  port?: number;
  host: string;
  log: boolean;
  /** re-read the active version id every N requests */
  recheckEvery: number;
  /** largest accepted request body */
  maxBodyBytes: number;
  seed?: number;
  /** called once listening (tests, the CLI prints it) */
  onListening?: (where: { url: string; port?: number; socket?: string }) => void;
  /** resolves to stop the server (default: SIGTERM / SIGINT) */
  stop?: Promise<void>;
}

/** The swappable part of a running server. */
export class StateHolder {
  private requestsSinceCheck = 0;
  private reloading: Promise<void> | null = null;

  constructor(
    public state: RuntimeState,
    private readonly paths: HomePaths,
    private readonly db: DB,
    private readonly sessions: SessionCache,
    private readonly recheckEvery: number,
    private readonly warn: (msg: string) => void,
  ) {}

  /**
   * Called per request before it picks its state: cheap, reloads only when the id moved. Returns
   * a promise only when it re-reads (the caller then awaits it): no microtask turn per request.
   */
  tick(): Promise<void> | null {
    if (++this.requestsSinceCheck < this.recheckEvery) return null;
    this.requestsSinceCheck = 0;
    return this.check();
  }

  /** Re-read the active version now (SIGHUP); concurrent callers share one reload. */
  check(): Promise<void> {
    this.reloading ??= this.reload().finally(() => (this.reloading = null));
    return this.reloading;
  }

  private async reload(): Promise<void> {
    let id: string | null;
    try {
      id = activeVersionId(this.db);
    } catch (e) {
      this.warn(`cannot read the active version: ${(e as Error).message}`);
      return;
    }
    if (id === null || id === this.state.versionId) return;
    try {
      const next = loadRuntimeState(this.paths, this.db);
      // open every model before switching, so the first request on the new version does not
      // pay for it and a broken model never becomes the serving state
      for (const t of next.index.tasks) await this.sessions.get(t);
      const old = this.state.versionId;
      this.state = next;
      this.warn(`switched from version ${old} to ${next.versionId}`);
    } catch (e) {
      this.warn(`version ${id} not loaded, still serving ${this.state.versionId}: ${(e as Error).message}`);
    }
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The request body, at most max bytes. Over the limit (declared by content-length or seen while
 * reading) it rejects with 413 and stops buffering; the rest of the body is read and dropped
 * while the 413 goes out (closing with unread data in the socket makes the kernel send a reset,
 * which the client can see before the answer: EPIPE instead of 413). A client that keeps
 * sending past DRAIN_FACTOR x max is cut off.
 */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HttpError(413, `request body larger than ${max} bytes`);
    // a compressed body read as JSON failed as "malformed JSON" (400), hiding the real cause
    const encoding = req.headers['content-encoding']?.trim().toLowerCase();
    if (encoding && encoding !== 'identity') {
      drainCapped(req, max);
      return reject(new HttpError(415, `unsupported Content-Encoding ${JSON.stringify(encoding.slice(0, 40))} (send the body uncompressed)`));
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      drainCapped(req, max);
      return reject(tooLarge());
    }
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer) => {
      n += c.length;
      if (n > max) {
        req.off('data', onData);
        chunks.length = 0;
        drainCapped(req, max);
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    // one chunk (a small body): no copy
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const DRAIN_FACTOR = 8;

/** Read and drop the rest of an over-limit body; past DRAIN_FACTOR x max the client is cut off. */
function drainCapped(req: IncomingMessage, max: number): void {
  let dropped = 0;
  req.on('data', (c: Buffer) => {
    dropped += c.length;
    if (dropped > DRAIN_FACTOR * max) req.socket.destroy();
  });
  req.resume();
}

/** One answer: a raw header list (no header object to walk) and the body. */
function sendTo(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))]);
  res.end(body);
}

/** Remove a socket file left by a dead server; refuse when a live one answers on it. */
async function clearStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new UsageError(`--socket ${path}: exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) throw new ConflictError(`--socket ${path}: another server is listening on it`);
  unlinkSync(path);
}

export async function runServe(o: ServeOptions): Promise<void> {
  if (!o.socket && o.port === undefined) throw new UsageError('serve: give --socket PATH or --port N');
  if (o.socket && o.port !== undefined) throw new UsageError('serve: give either --socket or --port, not both');
  // one place opens a home and names the file on busy / read-only / full-disk errors
  const { paths, cfg: config, db } = openHome(o.home);
  // one onnxruntime thread per run: a request batch is a few samples (sessions.ts)
  const sessions = new SessionCache(paths.models, { intraOpThreads: 1 });
  const warn = (m: string) => process.stderr.write(`sedna-ll serve: ${m}\n`);
  let server: Server | null = null;
  let walDurability: WalDurability | null = null;
  let checkpointer: WalCheckpointer | null = null;
  // prom-client (for /metrics) loads while the models load: onnxruntime opens them off the main thread
  const metricsModule = import('./serve-metrics.js');
  metricsModule.catch(() => {}); // awaited below; an early failure must not be an unhandled rejection
  try {
    const holder = new StateHolder(loadRuntimeState(paths, db), paths, db, sessions, o.recheckEvery, warn);
    for (const t of holder.state.index.tasks) await sessions.get(t);
    const outbox = new Outbox(db, paths, config);
    const sink = o.log ? outbox : null;
    // logging: this connection commits with synchronous=NORMAL and answers after an fdatasync of
    // the WAL on the thread pool (group commit); the durability promise is FULL's
    // (inline on the event loop while the disk's fsyncs take under INLINE_FSYNC_MS: the
    // thread-pool hand-off then costs more than the fsync)
    walDurability = o.log ? new WalDurability(db, paths.db, { inlineMaxMs: INLINE_FSYNC_MS }) : null;
    // and checkpoints (copy WAL -> database, two fsyncs) run on a worker thread, not in a COMMIT
    checkpointer = o.log ? WalCheckpointer.open(db, paths.db, warn) : null;
    const { EdgeServeMetrics } = await metricsModule;
    let batcher: ServeBatcher | null = null;
    const metrics = new EdgeServeMetrics(db, outbox, () => ({ batches: batcher?.batches ?? 0, batchedRequests: batcher?.batchedRequests ?? 0, fsyncs: walDurability?.syncs ?? 0 }));
    // runInTurn: a batch's model run, commit and fsync in one go (onnx/ort.ts)
    const pipeline = new Pipeline(sessions, { db: o.log ? db : null, sink, seed: o.seed ?? Date.now() >>> 0, runInTurn: true });
    // concurrent requests share one model run per task and one outbox commit (serve-batcher.ts)
    // answers that report a sample logged wait for the WAL's fdatasync, checkpointer or not
    batcher = new ServeBatcher(pipeline, commitDurability(walDurability, checkpointer));
    let requests = 0;

    const handleInfer = async (req: IncomingMessage): Promise<[number, string]> => {
      const body = await readBody(req, o.maxBodyBytes);
      // one record {"x":[...]}: parsed straight from the bytes (fast-json.ts: x into a
      // Float32Array, no 784-number JS array); anything it does not take goes the JSON.parse way
      // below, which also words the errors
      let b0 = 0;
      while (b0 < body.length && (body[b0] === 0x20 || body[b0] === 0x0a || body[b0] === 0x0d || body[b0] === 0x09)) b0++;
      if (body[b0] === 0x7b) {
        const fast = decodeJsonBytes(body, b0, body.length, 1, null, null);
        if (fast && !fast.bad) {
          fast.where = 'request'; // a fresh object of this request's
          return answer([fast], false);
        }
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch (e) {
        throw new HttpError(400, `malformed JSON: ${(e as Error).message}`);
      }
      const many = Array.isArray(parsed);
      const recs = many ? (parsed as unknown[]) : [parsed];
      if (recs.length === 0) return [200, '[]'];
      const items: Item[] = recs.map((r, i) => decodeJsonRecord(r, many ? `record ${i + 1}` : 'request', many ? i + 1 : 1, null, null));
      return answer(items, many);
    };

    const answer = async (items: Item[], many: boolean): Promise<[number, string]> => {
      const reload = holder.tick();
      if (reload) await reload;
      const state = holder.state; // this request's state, whatever happens to the holder meanwhile
      const t0 = performance.now();
      const outcomes = await batcher.run(state, items);
      let bad = 0;
      for (const oc of outcomes) if (oc.error !== undefined) bad++;
      metrics.inference((performance.now() - t0) / 1000, outcomes.length - bad, bad);
      const text = (oc: Outcome) => (oc.error !== undefined ? JSON.stringify({ id: oc.id, error: oc.error, where: oc.where }) : oc.line);
      if (!many) return [outcomes[0].error !== undefined ? 422 : 200, text(outcomes[0])];
      return [200, `[${outcomes.map(text).join(',')}]`];
    };

    server = createServer((req, res) => {
      requests++;
      const raw = req.url ?? '/';
      const q = raw.indexOf('?');
      const url = q < 0 ? raw : raw.slice(0, q);
      const send = (status: number, body: string) => {
        metrics.request(url === '/infer' || url === '/healthz' || url === '/metrics' ? url : 'unmatched', status);
        sendTo(res, status, body);
      };
      if (url === '/metrics') {
        if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, '{"error":"use GET"}');
        metrics.render().then(
          (text) => {
            metrics.request(url, 200);
            res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) });
            res.end(text);
          },
          (e) => send(500, JSON.stringify({ error: `metrics: ${(e as Error).message}` })),
        );
        return;
      }
      if (url === '/healthz') {
        if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, '{"error":"use GET"}');
        return send(200, JSON.stringify({ ok: true, version: holder.state.versionId, tasks: holder.state.index.tasks.length, requests }));
      }
      if (url !== '/infer') return send(404, JSON.stringify({ error: `no route ${url}; use POST /infer, GET /healthz or GET /metrics` }));
      if (req.method !== 'POST') return send(405, '{"error":"use POST"}');
      handleInfer(req).then(
        ([status, body]) => send(status, body),
        (e) => {
          if (e instanceof HttpError) return send(e.status, JSON.stringify({ error: e.message }));
          // model or outbox failure: the request fails, the server keeps running
          warn((e as Error).message);
          send(e instanceof ReportedError ? 503 : 500, JSON.stringify({ error: (e as Error).message }));
        },
      );
    });
    server.keepAliveTimeout = 5000;

    if (o.socket) await clearStaleSocket(o.socket);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', (e: NodeJS.ErrnoException) =>
        reject(new ReportedError(`cannot listen on ${o.socket ?? `${o.host}:${o.port}`}: ${e.code ?? e.message}`)),
      );
      if (o.socket) server!.listen(o.socket, resolve);
      else server!.listen(o.port, o.host, resolve);
    });
    const addr = server.address();
    if (o.socket) o.onListening?.({ url: `unix:${o.socket}`, socket: o.socket });
    else if (addr && typeof addr === 'object') o.onListening?.({ url: `http://${o.host}:${addr.port}`, port: addr.port });

    const onHup = () => void holder.check();
    process.on('SIGHUP', onHup);
    // also poll (one indexed kv read a second): `model activate` / `model rollback` / a trial's
    // automatic rollback in another process are picked up even by an idle server (by ROLLOUT)
    const poll = setInterval(onHup, 1000);
    poll.unref();
    const stop =
      o.stop ??
      new Promise<void>((resolve) => {
        process.once('SIGTERM', () => resolve());
        process.once('SIGINT', () => resolve());
      });
    await stop;
    clearInterval(poll);
    process.off('SIGHUP', onHup);
    // graceful: stop accepting, let in-flight requests finish (their logging commits), then close
    await new Promise<void>((resolve) => {
      server!.close(() => resolve());
      server!.closeIdleConnections();
    });
  } finally {
    if (server?.listening) server.close();
    if (o.socket && existsSync(o.socket)) {
      try {
        if (lstatSync(o.socket).isSocket()) unlinkSync(o.socket);
      } catch {
        /* already gone */
      }
    }
    await sessions.dispose();
    await walDurability?.close();
    await checkpointer?.close();
    db.close();
  }
}
