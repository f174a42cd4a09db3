// The direct carrier of sync requests: node:http / node:https, keep-alive connections per
// scheme, with the connect, headers and body timeouts undici applied before. Answer bodies are
// the socket's own chunks (no copy through a parser buffer).
import type { Agent, ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import { Readable, pipeline } from 'node:stream';
import type { Exchange, Response, Transport, TransportOptions } from './transport.js';

type HttpModule = typeof import('node:http');

const timeoutError = (message: string) => Object.assign(new Error(message), { code: 'ETIMEDOUT' });

export function nodeTransport(o: TransportOptions): Transport {
  // per scheme: node:https is loaded only for an https URL
  const agents = new Map<string, { mod: HttpModule; agent: Agent }>();
  const carrier = async (protocol: string) => {
    let c = agents.get(protocol);
    if (!c) {
      const https = protocol === 'https:';
      const mod = (https ? await import('node:https') : await import('node:http')) as HttpModule;
      // two connections: the push keeps two batch requests on their way (push.ts IN_FLIGHT:
      // the next body goes while the KB answers the previous one); everything else sends one
      // at a time and reuses the first. Idle kept-alive sockets are unref'd by the agent (they
      // never hold the exit)
      const agent = new mod.Agent({ keepAlive: true, maxSockets: 2, ...(https && o.ca ? { ca: o.ca } : {}) } as ConstructorParameters<HttpModule['Agent']>[0]);
      c = { mod, agent };
      agents.set(protocol, c);
    }
    return c;
  };

  return {
    async send(url: URL, x: Exchange): Promise<Response> {
      const { mod, agent } = await carrier(url.protocol);
      const headers: Record<string, string> = { ...x.headers };
      const whole = Buffer.isBuffer(x.body) ? x.body : undefined;
      if (whole) headers['content-length'] = String(whole.length);
      const opts: RequestOptions = { method: x.method, headers, agent, signal: x.signal, timeout: o.headersTimeoutMs };
      return new Promise<Response>((resolve, reject) => {
        const req: ClientRequest = mod.request(url, opts, (res: IncomingMessage) => {
          // from the answer on, the body timeout applies (time between two chunks); the agent
          // resets it when the socket goes back to the pool
          req.setTimeout(o.bodyTimeoutMs);
          resolve({
            statusCode: res.statusCode ?? 0,
            headers: res.headers,
            body: res,
            discard: () =>
              new Promise<void>((done) => {
                if (res.complete || res.destroyed) return done();
                res.on('end', done).on('error', () => done()).on('close', done);
                res.resume();
              }),
            abort: () => {
              res.destroy();
              req.destroy();
            },
          });
        });
        // connect, then the headers, then each body chunk within its timeout, or the socket
        // dies with ETIMEDOUT (retryable, as undici's timeouts are). The headers timeout counts
        // from the last byte of the request sent (a large batch on a slow link takes long to go
        // up); until then the socket's idle timeout (`timeout` above) catches a stalled upload.
        let headersTimer: NodeJS.Timeout | undefined;
        let answered = false;
        req.on('finish', () => {
          if (!answered && !req.destroyed) headersTimer = setTimeout(() => req.destroy(timeoutError(`no answer headers within ${o.headersTimeoutMs} ms`)), o.headersTimeoutMs);
        });
        req.on('socket', (sock) => {
          if (!sock.connecting) return; // a kept-alive connection
          const connectTimer = setTimeout(() => req.destroy(timeoutError(`connect timeout after ${o.connectTimeoutMs} ms`)), o.connectTimeoutMs);
          sock.once('connect', () => clearTimeout(connectTimer)).once('secureConnect', () => clearTimeout(connectTimer)).once('close', () => clearTimeout(connectTimer));
        });
        req.on('response', () => {
          answered = true;
          clearTimeout(headersTimer);
        });
        req.on('close', () => {
          answered = true;
          clearTimeout(headersTimer);
        });
        req.on('timeout', () => req.destroy(timeoutError('connection timed out')));
        req.on('error', (e) => {
          clearTimeout(headersTimer);
          reject(e);
        });
        if (x.body && !whole) {
          // streamed with backpressure; a failing source (or a dead connection) ends both sides
          const src = x.body as AsyncIterable<Buffer>;
          pipeline(Readable.from(src), req, (e) => {
            if (e && !req.destroyed) req.destroy(e);
          });
        } else req.end(whole);
      });
    },
    async destroy() {
      for (const { agent } of agents.values()) agent.destroy();
      agents.clear();
    },
  };
}
