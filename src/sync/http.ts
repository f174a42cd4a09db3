// The edge's HTTP client to the KB: one undici dispatcher per run (keep-alive connections),
// proxies from HTTPS_PROXY/HTTP_PROXY/NO_PROXY (EnvHttpProxyAgent), an optional private CA,
// connect/headers/body timeouts, retries (sync/retry.ts, the policy blob downloads use too), and
// one deadline (--max-time) that bounds the whole run.
//
// undici is imported lazily (it costs ~90 ms to load), so commands that never talk to the KB
// never pay for it.
import { readFileSync } from 'node:fs';
import type { Dispatcher } from 'undici';
import { Retrier, type RetryPolicy } from './retry.js';

/** Why a request finally failed; the sync run maps these to exit codes. */
export type FailureKind =
  | 'unreachable' // connection refused/reset, timeouts, 5xx, 429 — after all retries
  | 'auth' // 401/403: the token is wrong or revoked; retrying cannot help
  | 'protocol' // other 4xx or an answer we cannot understand
  | 'deadline'; // --max-time reached

export class SyncHttpError extends Error {
  constructor(
    message: string,
    readonly kind: FailureKind,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Connection settings, and the retry policy (deadline, retries, backoff; defaults below). */
export interface ClientOptions extends Partial<RetryPolicy> {
  baseUrl: string;
  token: string;
  /** PEM file of a private CA for https KB urls */
  caFile?: string;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  /** max idle time between two body chunks */
  bodyTimeoutMs?: number;
}

/** A response whose body is read as a stream (model blobs). */
export interface StreamReply {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Buffer>;
  /** read and drop the rest of the body (keeps the connection reusable) */
  discard(): Promise<void>;
}

/** An undici response as a StreamReply (the proxy path, presigned URLs). */
export const streamReply = (res: Dispatcher.ResponseData): StreamReply => ({
  statusCode: res.statusCode,
  headers: res.headers,
  body: res.body as AsyncIterable<Buffer>,
  discard: () => res.body.dump().then(() => {}, () => {}),
});

/** Does a proxy variable apply to requests of this process? (then undici's EnvHttpProxyAgent carries them) */
const proxyConfigured = () => ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].some((k) => !!process.env[k]);

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface RequestSpec {
  method: 'GET' | 'POST' | 'HEAD';
  path: string;
  headers?: Record<string, string>;
  /** a Buffer so that a retry can send it again */
  body?: Buffer;
  /**
   * Instead of body: a body streamed as it is produced (chunked transfer encoding), made afresh
   * by this function for each attempt (a retry sends it again). The push streams its frames
   * so that reading the outbox overlaps sending them (push.ts).
   */
  bodyStream?: () => Iterable<Buffer> | AsyncIterable<Buffer>;
  /** statuses that are answers (not failures); default 2xx */
  accept?: (status: number) => boolean;
  /** largest answer body read into memory; default MAX_ANSWER_BYTES */
  maxBodyBytes?: number;
}

/**
 * Largest answer body `request` reads (JSON replies, the index): 64 MiB. A broken or hostile KB
 * answering with an endless body drove a sync to 3.3 GB before; model blobs are streamed to
 * disk with the size the signed index lists (pull.ts) and do not pass through here.
 */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** The body of res, at most max bytes; over that, the rest is not read and a 'protocol' error is thrown. */
async function readCapped(res: Dispatcher.ResponseData, max: number, what: string): Promise<Buffer> {
  const tooLarge = () => new SyncHttpError(`KB answer to ${what} is larger than ${max} bytes: refused`, 'protocol', res.statusCode);
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    res.body.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      res.body.destroy();
      throw tooLarge();
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks, n);
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'HPE_INVALID_CONSTANT',
  'HPE_INVALID_CHUNK_SIZE',
  'HPE_UNEXPECTED_CONTENT_LENGTH',
  'Z_BUF_ERROR',
]);

/** Network-level failure worth another attempt (the KB or the link may be back soon). */
export function isRetryableError(e: unknown): boolean {
  let err = e as { code?: string; cause?: unknown; name?: string } | undefined;
  for (let depth = 0; err && depth < 4; depth++) {
    if (err.code && RETRYABLE_CODES.has(err.code)) return true;
    if (err.name === 'TimeoutError' || err.code === 'ABORT_ERR' || err.name === 'AbortError') return true;
    err = err.cause as typeof err;
  }
  // undici sometimes throws plain errors with these messages on half-closed sockets
  const msg = String((e as Error)?.message ?? '');
  return /other side closed|socket hang up|terminated|premature close|ECONNRESET/i.test(msg);
}

export const isRetryableStatus = (s: number) => s >= 500 || s === 429 || s === 408;

/** Retry-After: seconds or an HTTP date; ms or null. */
export function retryAfterMs(h: string | string[] | undefined, now = Date.now()): number | null {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - now) : null;
}

export function describeError(e: unknown): string {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err?.code ?? err?.cause?.code;
  const msg = err?.cause?.message ?? err?.message ?? String(e);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}

export class KbClient {
  private bytesUp = 0;
  private bytesDown = 0;

  /** node:http(s) agent of openStream (made on first use) */
  private streamAgent: import('node:http').Agent | null = null;

  private constructor(
    readonly opts: Required<Omit<ClientOptions, 'caFile' | 'onRetry'>> & Pick<ClientOptions, 'caFile' | 'onRetry'>,
    private readonly dispatcher: Dispatcher,
    private readonly undici: typeof import('undici'),
    private readonly ca?: string,
  ) {}

  static async create(o: ClientOptions): Promise<KbClient> {
    const undici = await import('undici');
    // an option passed as undefined (e.g. no --retries on the command line) keeps its default:
    // spreading it as-is once made `retries` undefined, and a dead KB was retried forever
    const given = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as ClientOptions;
    const opts = {
      deadline: Infinity,
      retries: 5,
      connectTimeoutMs: 10_000,
      headersTimeoutMs: 60_000,
      bodyTimeoutMs: 30_000,
      backoffBaseMs: 250,
      backoffCapMs: 8_000,
      ...given,
      baseUrl: o.baseUrl.replace(/\/+$/, ''),
    };
    let ca: string | undefined;
    if (opts.caFile) {
      try {
        ca = readFileSync(opts.caFile, 'utf8');
      } catch (e) {
        throw new SyncHttpError(`--ca ${opts.caFile}: cannot read: ${(e as Error).message}`, 'protocol');
      }
    }
    // EnvHttpProxyAgent reads HTTP(S)_PROXY / NO_PROXY and falls back to a plain Agent;
    // `connect` configures direct TLS, `requestTls` the TLS to the KB through a proxy tunnel.
    const dispatcher = new undici.EnvHttpProxyAgent({
      connect: { timeout: opts.connectTimeoutMs, ...(ca ? { ca } : {}) },
      ...(ca ? { requestTls: { ca } } : {}),
      headersTimeout: opts.headersTimeoutMs,
      bodyTimeout: opts.bodyTimeoutMs,
      keepAliveTimeout: 30_000,
      // the push keeps two batch requests on their way (push.ts IN_FLIGHT: the next body is
      // sent while the KB answers the previous one); everything else sends one at a time.
      // undici never pipelines a streamed body behind another request, hence two connections
      connections: 2,
    });
    return new KbClient(opts, dispatcher, undici, ca);
  }

  get traffic() {
    return { up: this.bytesUp, down: this.bytesDown };
  }

  countUp(n: number) {
    this.bytesUp += n;
  }
  countDown(n: number) {
    this.bytesDown += n;
  }

  /** ms left before the deadline (Infinity when none) */
  remainingMs(): number {
    return this.opts.deadline - Date.now();
  }

  checkDeadline(what: string): void {
    if (this.remainingMs() <= 0) throw new SyncHttpError(`--max-time reached before ${what}`, 'deadline');
  }

  private headers(extra?: Record<string, string>): Record<string, string> {
    return { authorization: `Bearer ${this.opts.token}`, 'user-agent': 'sedna-ll-sync', ...extra };
  }

  /**
   * Open a request and return the live response (body not consumed); no retries here.
   * Throws the raw undici error on network failure.
   */
  async open(spec: RequestSpec): Promise<Dispatcher.ResponseData> {
    const remaining = this.remainingMs();
    if (remaining <= 0) throw new SyncHttpError(`--max-time reached before ${spec.method} ${spec.path}`, 'deadline');
    const signal = Number.isFinite(remaining) ? AbortSignal.timeout(Math.max(1, Math.ceil(remaining))) : undefined;
    let streamed = 0;
    const res = await this.undici.request(this.opts.baseUrl + spec.path, {
      method: spec.method,
      headers: this.headers(spec.headers),
      // undici takes any (async) iterable of chunks (its types list only Readable)
      body: spec.bodyStream ? (counted(spec.bodyStream(), (n) => (streamed += n)) as unknown as import('node:stream').Readable) : spec.body,
      dispatcher: this.dispatcher,
      signal,
    });
    // counted once the KB answered: bytes of a request that never got through (DNS, refused
    // connection, reset) did not go up
    if (spec.body) this.bytesUp += spec.body.length;
    this.bytesUp += streamed;
    return res;
  }

  /**
   * GET an absolute URL outside the KB (a presigned object-store URL) through the same
   * connection settings (proxy, CA, timeouts) but WITHOUT the device token: the URL is its own
   * credential, and the token must not leak to another host. No retries here.
   */
  async openExternal(url: string, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
    const remaining = this.remainingMs();
    if (remaining <= 0) throw new SyncHttpError('--max-time reached before a presigned download', 'deadline');
    const signal = Number.isFinite(remaining) ? AbortSignal.timeout(Math.max(1, Math.ceil(remaining))) : undefined;
    return this.undici.request(url, { method: 'GET', headers: { 'user-agent': 'sedna-ll-sync', ...headers }, dispatcher: this.dispatcher, signal });
  }

  /**
   * Open a GET whose (large) body is read as a stream; no retries here. Without a proxy it goes
   * through node:http(s): the body arrives as the socket's own chunks, where undici copies every
   * byte into its WASM parser and out again (a 51 MB model: ~100 MB of copies and the GC
   * churn of them, measured at 1/4 of the download's CPU). With a proxy variable set, undici's
   * proxy agent carries it as every other request. Same timeouts, deadline and token.
   */
  async openStream(spec: { path: string; headers?: Record<string, string> }): Promise<StreamReply> {
    if (proxyConfigured()) {
      return streamReply(await this.open({ method: 'GET', ...spec }));
    }
    const remaining = this.remainingMs();
    if (remaining <= 0) throw new SyncHttpError(`--max-time reached before GET ${spec.path}`, 'deadline');
    const url = new URL(this.opts.baseUrl + spec.path);
    const https = url.protocol === 'https:';
    const mod = https ? await import('node:https') : await import('node:http');
    // one keep-alive connection, as the undici dispatcher: blobs are fetched one after another
    this.streamAgent ??= new mod.Agent({ keepAlive: true, maxSockets: 1, ...(https && this.ca ? { ca: this.ca } : {}) });
    const signal = Number.isFinite(remaining) ? AbortSignal.timeout(Math.max(1, Math.ceil(remaining))) : undefined;
    return new Promise<StreamReply>((resolve, reject) => {
      const req = mod.request(url, { method: 'GET', headers: this.headers(spec.headers), agent: this.streamAgent!, signal, timeout: this.opts.headersTimeoutMs }, (res) => {
        // from the answer on, the body timeout applies (time between two chunks)
        req.setTimeout(this.opts.bodyTimeoutMs);
        resolve({
          statusCode: res.statusCode ?? 0,
          headers: res.headers,
          body: res,
          discard: () =>
            new Promise<void>((done) => {
              res.on('end', done).on('error', () => done()).on('close', done);
              res.resume();
            }),
        });
      });
      // connect, then the headers, then each body chunk within its timeout, or the socket dies
      // with ETIMEDOUT (retryable, as undici's timeouts are)
      const headersTimer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer headers within ${this.opts.headersTimeoutMs} ms`), { code: 'ETIMEDOUT' })), this.opts.headersTimeoutMs);
      req.on('socket', (sock) => {
        if (!sock.connecting) return; // a kept-alive connection
        const connectTimer = setTimeout(() => req.destroy(Object.assign(new Error(`connect timeout after ${this.opts.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' })), this.opts.connectTimeoutMs);
        sock.once('connect', () => clearTimeout(connectTimer)).once('close', () => clearTimeout(connectTimer));
      });
      req.on('response', () => clearTimeout(headersTimer));
      req.on('close', () => clearTimeout(headersTimer));
      req.on('timeout', () => req.destroy(Object.assign(new Error('connection timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (e) => {
        clearTimeout(headersTimer);
        reject(e);
      });
      req.end();
    });
  }

  /**
   * One logical request with retries: network errors, 5xx, 429 (Retry-After) and timeouts are
   * retried with full-jitter exponential backoff until retries or the deadline run out.
   */
  async request(spec: RequestSpec): Promise<Reply> {
    const accept = spec.accept ?? ((s: number) => s >= 200 && s < 300);
    const retry = this.retrier((n, reason) => `KB unreachable at ${this.opts.baseUrl} (${spec.method} ${spec.path}, ${n} attempts): ${reason}`);
    for (;;) {
      let reason: string;
      let waitHint: number | null = null;
      try {
        const res = await this.open(spec);
        const body = await readCapped(res, spec.maxBodyBytes ?? MAX_ANSWER_BYTES, `${spec.method} ${spec.path}`);
        this.bytesDown += body.length;
        if (accept(res.statusCode)) return { status: res.statusCode, headers: res.headers, body };
        const detail = errorDetail(body);
        if (res.statusCode === 401 || res.statusCode === 403) {
          const hint = res.statusCode === 401 ? '; check the token file given to init ("kb device add" prints it)' : '';
          throw new SyncHttpError(`KB refused ${spec.method} ${spec.path} (${res.statusCode}${detail ? `: ${detail}` : ''})${hint}`, 'auth', res.statusCode);
        }
        if (!isRetryableStatus(res.statusCode)) {
          throw new SyncHttpError(`KB answered ${res.statusCode} to ${spec.method} ${spec.path}${detail ? `: ${detail}` : ''}`, 'protocol', res.statusCode);
        }
        reason = `HTTP ${res.statusCode}${detail ? ` ${detail}` : ''}`;
        waitHint = retryAfterMs(res.headers['retry-after']);
      } catch (e) {
        if (e instanceof SyncHttpError) throw e;
        if (this.remainingMs() <= 0) throw new SyncHttpError(`--max-time reached during ${spec.method} ${spec.path}`, 'deadline');
        if (!isRetryableError(e)) throw new SyncHttpError(`${spec.method} ${this.opts.baseUrl}${spec.path}: ${describeError(e)}`, 'protocol');
        reason = describeError(e);
      }
      await retry.failed(reason, { hintMs: waitHint });
    }
  }

  /** The retry state of one logical operation under this client's policy (sync/retry.ts). */
  retrier(unreachable: (attempts: number, reason: string) => string): Retrier {
    return new Retrier(this.opts, unreachable, (kind, message) => new SyncHttpError(message, kind));
  }

  async close(): Promise<void> {
    // destroy, not close: a cut connection must not keep the process waiting
    this.streamAgent?.destroy();
    await this.dispatcher.destroy().catch(() => {});
  }
}

/** The chunks of `src`, each counted as it is handed on. */
async function* counted(src: Iterable<Buffer> | AsyncIterable<Buffer>, count: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const c of src) {
    count(c.length);
    yield c;
  }
}

/** The KB's error message from a JSON error body, one line, short. */
function errorDetail(body: Buffer): string {
  if (!body.length) return '';
  try {
    const j = JSON.parse(body.toString('utf8')) as { error?: string; message?: string };
    return String(j.message ?? j.error ?? '').split('\n')[0].slice(0, 200);
  } catch {
    return body.toString('utf8', 0, Math.min(body.length, 200)).split('\n')[0];
  }
}
