// The edge's HTTP client to the KB: retries (sync/retry.ts, the policy blob downloads use too),
// one deadline (--max-time) that bounds the whole run, the device token, an X-Request-Id on
// every request, and byte counts. The bytes travel through a Transport (transport.ts):
// node:http(s) directly, or undici's EnvHttpProxyAgent when HTTP(S)_PROXY applies to the URL
// (NO_PROXY honoured). undici is imported only then: it costs ~120 ms of CPU to load, about a
// tenth of a whole `sync --pull-only` of a 50 MB model, and cron runs sync every few minutes.
import { randomBytes } from 'node:crypto';
import { Retrier, type RetryPolicy } from './retry.js';
import { type ProxyEnv, type Response, type Transport, type TransportOptions, proxyEnv, proxyFor } from './transport.js';
import { nodeTransport } from './transport-node.js';
import { SyncHttpError } from './http-error.js';
import type { BlobReply } from './blob-get.js';

export { SyncHttpError, type FailureKind } from './http-error.js';

/** Connection settings, and the retry policy (deadline, retries, backoff; defaults below). */
export interface ClientOptions extends Partial<RetryPolicy> {
  baseUrl: string;
  token: string;
  /** PEM of a private CA for https KB urls (the caller reads the file: it names it in errors) */
  ca?: string;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  /** max idle time between two body chunks */
  bodyTimeoutMs?: number;
  /** where HTTP(S)_PROXY / NO_PROXY are read (default process.env) */
  env?: NodeJS.ProcessEnv;
}

/** A response whose body is read as a stream (model blobs): what a Transport answers. */
export type StreamReply = Response;

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
async function readCapped(res: StreamReply, max: number, what: string): Promise<Buffer> {
  const tooLarge = () => new SyncHttpError(`KB answer to ${what} is larger than ${max} bytes: refused`, 'protocol', res.statusCode);
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    res.abort();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      res.abort();
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
  // the push's reader thread died under a streamed body: the retry reads it in the main thread
  // (frames-source.ts ReaderThreadLost)
  'ERR_PUSH_READER_THREAD_LOST',
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
  private requests = 0;
  private direct: Transport | null = null;
  private proxied: Promise<Transport> | null = null;
  /** this KB's blob answers need the general transport (openBlob) */
  private blobsByTransport = false;

  /**
   * Prefix of the X-Request-Id of every request of this client (one sync run): `<id>-<n>`, n
   * counting the requests (each retry its own). The KB logs it as req_id and echoes it; the
   * sync event and --json record carry the prefix, so one grep finds the run in the KB's log.
   */
  readonly requestId = randomBytes(8).toString('hex');

  private constructor(
    readonly opts: Required<Omit<ClientOptions, 'ca' | 'onRetry' | 'env'>> & Pick<ClientOptions, 'ca' | 'onRetry'>,
    private readonly transportOpts: TransportOptions,
    private readonly proxy: ProxyEnv,
  ) {}

  static async create(o: ClientOptions): Promise<KbClient> {
    // an option passed as undefined (e.g. no --retries on the command line) keeps its default:
    // spreading it as-is once made `retries` undefined, and a dead KB was retried forever
    const { env, ...given } = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as ClientOptions;
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
    const t = { ca: opts.ca, connectTimeoutMs: opts.connectTimeoutMs, headersTimeoutMs: opts.headersTimeoutMs, bodyTimeoutMs: opts.bodyTimeoutMs };
    return new KbClient(opts, t, proxyEnv(env ?? process.env));
  }

  /** The carrier for this URL: through the proxy when one applies (undici, loaded now), else direct. */
  private transport(url: URL): Promise<Transport> {
    if (proxyFor(url, this.proxy) !== undefined) {
      this.proxied ??= import('./transport-undici.js').then((m) => m.undiciTransport(this.transportOpts, this.proxy));
      return this.proxied;
    }
    this.direct ??= nodeTransport(this.transportOpts);
    return Promise.resolve(this.direct);
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
    return { authorization: `Bearer ${this.opts.token}`, 'user-agent': 'sedna-ll-sync', 'x-request-id': `${this.requestId}-${++this.requests}`, ...extra };
  }

  /** The deadline as an abort signal for one exchange (none without --max-time). */
  private deadlineSignal(what: string): AbortSignal | undefined {
    const remaining = this.remainingMs();
    if (remaining <= 0) throw new SyncHttpError(`--max-time reached before ${what}`, 'deadline');
    return Number.isFinite(remaining) ? AbortSignal.timeout(Math.max(1, Math.ceil(remaining))) : undefined;
  }

  /**
   * Open a request to the KB and return the live response (body not consumed); no retries
   * here. Throws the carrier's raw error on network failure.
   */
  async open(spec: RequestSpec): Promise<StreamReply> {
    const signal = this.deadlineSignal(`${spec.method} ${spec.path}`);
    const url = new URL(this.opts.baseUrl + spec.path);
    let streamed = 0;
    // an error of the body's own source (the push reading the outbox: a corrupt edge.db) is
    // what failed, not the connection the transport then reset: it is reported as such
    let sourceError: { e: unknown } | null = null;
    const body = spec.bodyStream ? counted(spec.bodyStream(), (n) => (streamed += n), (e) => (sourceError ??= { e })) : spec.body;
    let res: StreamReply;
    try {
      res = await (await this.transport(url)).send(url, { method: spec.method, headers: this.headers(spec.headers), body, signal });
    } catch (e) {
      const src = sourceError as { e: unknown } | null;
      throw src ? new BodySourceError(src.e) : e;
    }
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
  async openExternal(url: string, headers: Record<string, string>): Promise<StreamReply> {
    const signal = this.deadlineSignal('a presigned download');
    const u = new URL(url);
    return (await this.transport(u)).send(u, { method: 'GET', headers: { 'user-agent': 'sedna-ll-sync', ...headers }, signal });
  }

  /** Open a GET whose (large) body is read as a stream (model blobs); no retries here. */
  openStream(spec: { path: string; headers?: Record<string, string> }): Promise<StreamReply> {
    return this.open({ method: 'GET', ...spec });
  }

  /**
   * Open a model blob's GET; no retries here. Over plain http without a proxy (none set, or
   * NO_PROXY names the host) it is read off the socket into reused buffers (blob-get.ts, ~2x
   * node:http's client on loopback); https, a proxy, or a KB whose blob answers that reader does not take (no Content-Length: then for
   * the rest of the run) go through the transport as every other request.
   */
  async openBlob(spec: { path: string; headers?: Record<string, string> }): Promise<StreamReply | BlobReply> {
    const url = new URL(this.opts.baseUrl + spec.path);
    if (url.protocol === 'http:' && !this.blobsByTransport && proxyFor(url, this.proxy) === undefined) {
      const signal = this.deadlineSignal(`GET ${spec.path}`);
      const { blobGet } = await import('./blob-get.js');
      const r = await blobGet(url, this.headers(spec.headers), { ...this.transportOpts, signal });
      if (r) return r;
      this.blobsByTransport = true;
    }
    return this.openStream(spec);
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
        if (e instanceof BodySourceError) {
          // a local failure, not the KB's: no retry can mend it (except a lost reader thread,
          // whose retry reads in the main thread), and it is named as what it is
          if (!isRetryableError(e.cause)) throw e.cause;
          e = e.cause;
        }
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
    this.direct?.destroy();
    await (await this.proxied?.catch(() => null))?.destroy();
  }
}

/**
 * The chunks of `src`, each counted as it is handed on. An error of `src` itself (its next(),
 * not one the consumer throws in) is told to `failed` before it goes on.
 */
async function* counted(src: Iterable<Buffer> | AsyncIterable<Buffer>, count: (n: number) => void, failed: (e: unknown) => void): AsyncGenerator<Buffer> {
  const it = Symbol.asyncIterator in src ? src[Symbol.asyncIterator]() : src[Symbol.iterator]();
  let ended = false;
  try {
    for (;;) {
      let r: IteratorResult<Buffer>;
      try {
        r = await it.next();
      } catch (e) {
        ended = true;
        failed(e);
        throw e;
      }
      if (r.done) {
        ended = true;
        return;
      }
      count(r.value.length);
      yield r.value;
    }
  } finally {
    if (!ended) await it.return?.(); // the consumer stopped early: the source closes (its finally blocks run)
  }
}

/** A request failed because its body's source did (see KbClient.open); `cause` is that error. */
class BodySourceError extends Error {
  constructor(readonly cause: unknown) {
    super(describeError(cause));
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
