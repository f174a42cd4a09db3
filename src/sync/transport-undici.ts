// The proxied carrier of sync requests: undici's EnvHttpProxyAgent, used when HTTP(S)_PROXY
// applies to a URL (transport.ts proxyFor, which already leaves out the hosts NO_PROXY names, by
// undici's rules). It tunnels through the proxy with CONNECT (TLS to the KB inside the tunnel,
// with the private CA); given NO_PROXY too, it would reach such a host directly all the same.
// undici is loaded here only (~120 ms of CPU).
import type { Exchange, ProxyEnv, Response, Transport, TransportOptions } from './transport.js';

export async function undiciTransport(o: TransportOptions, proxy: ProxyEnv): Promise<Transport> {
  const undici = await import('undici');
  // the variables as read by the client (not undici's own reading of process.env): one
  // decision for both carriers. `connect` configures direct TLS, `requestTls` the TLS to the
  // KB through a proxy tunnel.
  const dispatcher = new undici.EnvHttpProxyAgent({
    httpProxy: proxy.http ?? '',
    httpsProxy: proxy.https ?? proxy.http ?? '',
    noProxy: proxy.noProxy,
    connect: { timeout: o.connectTimeoutMs, ...(o.ca ? { ca: o.ca } : {}) },
    ...(o.ca ? { requestTls: { ca: o.ca } } : {}),
    headersTimeout: o.headersTimeoutMs,
    bodyTimeout: o.bodyTimeoutMs,
    keepAliveTimeout: 30_000,
    // the push keeps two batch requests on their way (push.ts IN_FLIGHT); everything else
    // sends one at a time. undici never pipelines a streamed body behind another request,
    // hence two connections
    connections: 2,
  });
  return {
    async send(url: URL, x: Exchange): Promise<Response> {
      // undici takes any (async) iterable of chunks as a streamed body (its types list only Readable)
      const body = x.body as Buffer | import('node:stream').Readable | undefined;
      const res = await undici.request(url, { method: x.method, headers: x.headers, body, dispatcher, signal: x.signal });
      return {
        statusCode: res.statusCode,
        headers: res.headers,
        body: res.body as AsyncIterable<Buffer>,
        discard: () => res.body.dump().then(() => {}, () => {}),
        abort: () => void res.body.destroy(),
      };
    },
    destroy: () => dispatcher.destroy().catch(() => {}),
  };
}
