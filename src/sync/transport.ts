// How one HTTP exchange of a sync run reaches its server: the one interface the KB client
// (http.ts) talks to, and the choice between its two carriers.
//
//   - node:http(s) (transport-node.ts) when no proxy variable applies to the URL: a sync run
//     then never loads undici, which costs ~120 ms of CPU at every start (measured: 0.12 s of a
//     1 s `sync --pull-only`), and blob bodies arrive as the socket's own chunks (no copy).
//   - undici's EnvHttpProxyAgent (transport-undici.ts) when HTTP(S)_PROXY applies and NO_PROXY
//     does not exclude the host (proxyFor: undici's own NO_PROXY rules, so a host it would
//     reach directly goes to node:http, and its model blobs to the raw reader, blob-get.ts):
//     it tunnels through the proxy (CONNECT). Loaded on first use only.
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
  /** the variables http and https came from (for messages) */
  httpVar?: string;
  httpsVar?: string;
}

export function proxyEnv(env: NodeJS.ProcessEnv): ProxyEnv {
  const pick = (...keys: string[]) => keys.find((k) => env[k] !== undefined && env[k] !== '');
  const httpVar = pick('http_proxy', 'HTTP_PROXY');
  const httpsVar = pick('https_proxy', 'HTTPS_PROXY');
  return { http: httpVar && env[httpVar], https: httpsVar && env[httpsVar], noProxy: env.no_proxy ?? env.NO_PROXY ?? '', httpVar, httpsVar };
}

/** the proxy schemes the proxied carrier (undici's ProxyAgent) connects through */
const PROXY_PROTOCOLS = new Set(['http:', 'https:', 'socks:', 'socks5:']);

/**
 * What is wrong with the proxy variable that applies to url, or null. A value that is no URL
 * ("junk", "http://:0") failed every request with ERR_INVALID_URL naming the KB's URL, not the
 * variable (exit 1): the operator could not tell it was the proxy setting.
 */
export function proxyProblem(url: URL, p: ProxyEnv): string | null {
  const proxy = proxyFor(url, p);
  if (proxy === undefined) return null;
  const name = url.protocol === 'https:' && p.https !== undefined ? p.httpsVar : p.httpVar;
  // a proxy URL may carry a password: never print it
  const shown = JSON.stringify(proxy.replace(/\/\/[^/@]*@/, '//***@').slice(0, 200));
  let u: URL;
  try {
    u = new URL(proxy);
  } catch {
    return `${name} ${shown}: not a proxy URL (expected e.g. http://proxy.example:3128)`;
  }
  if (!PROXY_PROTOCOLS.has(u.protocol)) return `${name} ${shown}: unsupported proxy scheme "${u.protocol}" (http:, https:, socks5:)`;
  return null;
}

/**
 * The proxy for this URL, as undici's EnvHttpProxyAgent picks it: an https URL takes
 * HTTPS_PROXY, else HTTP_PROXY; an http URL HTTP_PROXY only; none when NO_PROXY names the host
 * (noProxied). Undefined: no proxy, the direct carrier (and, over plain http, the raw blob
 * reader). Every carrier choice of a run asks this, so a host NO_PROXY excludes goes direct
 * the same way whichever request it is.
 */
export function proxyFor(url: URL, p: ProxyEnv): string | undefined {
  const proxy = url.protocol === 'https:' ? (p.https ?? p.http) : p.http;
  return proxy !== undefined && noProxied(url, p.noProxy) ? undefined : proxy;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/**
 * Whether NO_PROXY names this URL's host, by undici's rules (EnvHttpProxyAgent #shouldProxy,
 * undici 7; its transport still reads NO_PROXY too, so the two must agree: test/blob-get.test.ts
 * asks undici for each case): entries split on commas and white space; "*" alone matches every
 * host; an entry is a host name (a leading "." or "*." dropped, case-insensitive) matching the
 * host or any subdomain of it, optionally ":port" matching only that port (the scheme's default
 * when the URL names none). No CIDR ranges.
 */
export function noProxied(url: URL, noProxy: string): boolean {
  const entries = noProxy
    .split(/[,\s]/)
    .filter((e) => e)
    .map((e) => {
      const m = e.match(/^(.+):(\d+)$/);
      return { host: (m ? m[1] : e).replace(/^\*?\./, '').toLowerCase(), port: m ? Number.parseInt(m[2], 10) : 0 };
    });
  if (!entries.length) return false;
  if (noProxy === '*') return true;
  // url.host keeps an IPv6 address's brackets; its port is stripped here
  const host = url.host.replace(/:\d*$/, '').toLowerCase();
  const port = Number.parseInt(url.port, 10) || DEFAULT_PORTS[url.protocol] || 0;
  return entries.some((e) => (!e.port || e.port === port) && (host === e.host || host.endsWith(`.${e.host}`)));
}
