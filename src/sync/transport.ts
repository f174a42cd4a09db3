// How one HTTP exchange of a sync run reaches its server: the one interface the KB client
// (http.ts) talks to, and the choice between its two carriers.
//
//   - node:http(s) (transport-node.ts) when no proxy variable applies to the URL: a sync run
//     then never loads undici, which costs ~120 ms of CPU at every start (measured: 0.12 s of a
//     1 s `sync --pull-only`), and blob bodies arrive as the socket's own chunks (no copy).
//   - undici's EnvHttpProxyAgent (transport-undici.ts) when HTTP(S)_PROXY applies: it tunnels
//     through the proxy (CONNECT) and applies NO_PROXY itself, as it always has for every sync
//     request. Loaded on first use only.
//
// Both carry the same requests with the same timeouts, CA and deadline signal, and answer the
// same Response; the sync tests run over both (test/sync-http.test.ts, sync-transport).

/** A response whose body is read as a stream (JSON answers are read whole by http.ts). */
export interface Response {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Buffer>;
  /** read and drop the rest of the body (keeps the connection reusable) */
  discard(): Promise<void>;
  /** stop reading: the connection is closed (an answer refused half-way) */
  abort(): void;
}

export interface Exchange {
  method: 'GET' | 'POST' | 'HEAD';
  headers: Record<string, string>;
  /**
   * A Buffer (sent with its Content-Length), or chunks streamed as they are produced (chunked
   * transfer encoding; the push streams its frames from the outbox while they go out)
   */
  body?: Buffer | AsyncIterable<Buffer>;
  /** aborts the exchange (the run's --max-time) */
  signal?: AbortSignal;
}

export interface Transport {
  /** one exchange, no retries; network failures reject with the carrier's own error (codes in http.ts) */
  send(url: URL, x: Exchange): Promise<Response>;
  /** close every connection now (a cut or kept-alive connection must not keep the process waiting) */
  destroy(): Promise<void>;
}

export interface TransportOptions {
  /** PEM of a private CA for https URLs */
  ca?: string;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  /** max idle time between two body chunks */
  bodyTimeoutMs: number;
}

/** The proxy variables of a run, read once (lower case first, as curl and undici do). */
export interface ProxyEnv {
  http?: string;
  https?: string;
  noProxy: string;
}

export function proxyEnv(env: NodeJS.ProcessEnv): ProxyEnv {
  const pick = (...keys: string[]) => keys.map((k) => env[k]).find((v) => v !== undefined && v !== '');
  return { http: pick('http_proxy', 'HTTP_PROXY'), https: pick('https_proxy', 'HTTPS_PROXY'), noProxy: env.no_proxy ?? env.NO_PROXY ?? '' };
}

/**
 * The proxy undici's EnvHttpProxyAgent would use for this URL's scheme before NO_PROXY: an
 * https URL takes HTTPS_PROXY, else HTTP_PROXY; an http URL HTTP_PROXY only. Undefined: no
 * proxy at all, the direct carrier. (NO_PROXY is left to undici, the one reading of it.)
 */
export function proxyFor(url: URL, p: ProxyEnv): string | undefined {
  return url.protocol === 'https:' ? (p.https ?? p.http) : p.http;
}
