// A minimal S3 client over node:http(s): path-style requests (https://host/bucket/key, what
// S3-compatible servers such as Ceph RGW expect), SigV4-signed, keep-alive connections. Only
// the calls the KB's blob store needs; no SDK.
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { encodePath, presignUrl, signHeaders, type S3Credentials, EMPTY_SHA256 } from './sigv4.js';

export interface S3Location {
  /** http(s)://host[:port] of the S3 API */
  endpoint: URL;
  bucket: string;
  region: string;
  credentials: S3Credentials;
}

/** The object store cannot be reached or answers 5xx: the caller should retry later (HTTP 503). */
export class ObjectStoreUnavailableError extends Error {
  readonly statusCode = 503;
  readonly retryAfterSec = 5;
}

/** An S3 error answer (4xx) other than the 404 the callers handle. */
export class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface S3Request {
  method: 'GET' | 'HEAD' | 'PUT' | 'DELETE' | 'POST';
  /** object key ('' for the bucket itself) */
  key: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** Buffer, or a stream of exactly headers['content-length'] bytes */
  body?: Buffer | Readable;
  /** hex sha256 of the body (S3 checks it against the bytes it received); default: empty body */
  payloadHash?: string;
}

export class S3Client {
  private readonly agent: http.Agent;
  private readonly mod: typeof http | typeof https;

  constructor(readonly loc: S3Location) {
    if (loc.endpoint.protocol !== 'http:' && loc.endpoint.protocol !== 'https:') throw new Error(`S3 endpoint ${loc.endpoint.href}: expected http:// or https://`);
    this.mod = loc.endpoint.protocol === 'https:' ? https : http;
    this.agent = new this.mod.Agent({ keepAlive: true, maxSockets: 64 });
  }

  path(key: string): string {
    return encodePath(`/${this.loc.bucket}${key ? `/${key}` : ''}`);
  }

  /** the response (its body unread); network failures and 5xx throw ObjectStoreUnavailableError */
  async request(r: S3Request): Promise<IncomingMessage> {
    const path = this.path(r.key);
    const qs = r.query && Object.keys(r.query).length ? `?${new URLSearchParams(r.query).toString().replace(/\+/g, '%20')}` : '';
    const headers: Record<string, string> = { host: this.loc.endpoint.host, ...(r.headers ?? {}) };
    if (Buffer.isBuffer(r.body)) headers['content-length'] = String(r.body.length);
    Object.assign(headers, signHeaders(this.loc.credentials, { method: r.method, path, query: r.query, headers, payloadHash: r.payloadHash ?? EMPTY_SHA256, region: this.loc.region }));
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = this.mod.request(
        { protocol: this.loc.endpoint.protocol, hostname: this.loc.endpoint.hostname, port: this.loc.endpoint.port, method: r.method, path: path + qs, headers, agent: this.agent, timeout: 120_000 },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 120 s')));
      req.on('error', (e) => reject(new ObjectStoreUnavailableError(`object store ${this.loc.endpoint.host}: ${r.method} ${path}: ${e.message}`)));
      if (r.body instanceof Readable) {
        r.body.on('error', (e) => req.destroy(e));
        r.body.pipe(req);
      } else req.end(r.body);
    });
    if (res.statusCode! >= 500) {
      const text = await readText(res).catch(() => '');
      throw new ObjectStoreUnavailableError(`object store ${this.loc.endpoint.host}: ${r.method} ${path}: HTTP ${res.statusCode} ${errorCode(text)}`.trim());
    }
    return res;
  }

  /** request + throw S3Error on any status not in ok; the body is drained */
  async call(r: S3Request, ok: number[] = [200, 204]): Promise<{ status: number; headers: IncomingMessage['headers']; text: string }> {
    const res = await this.request(r);
    const text = r.method === 'HEAD' ? (res.resume(), '') : await readText(res);
    if (!ok.includes(res.statusCode!)) throw s3Error(r, this.path(r.key), res.statusCode!, text);
    return { status: res.statusCode!, headers: res.headers, text };
  }

  /** endpoint: the address devices reach the store by, when it differs from ours */
  presign(key: string, expiresSec: number, endpoint: URL = this.loc.endpoint): string {
    return presignUrl(this.loc.credentials, { endpoint, path: this.path(key), region: this.loc.region, expiresSec });
  }

  close(): void {
    this.agent.destroy();
  }
}

export function s3Error(r: { method: string }, path: string, status: number, text: string): S3Error {
  const code = errorCode(text);
  return new S3Error(status, code, `object store: ${r.method} ${path}: HTTP ${status}${code ? ` ${code}` : ''}`);
}

export async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function errorCode(xml: string): string {
  return /<Code>([^<]*)<\/Code>/.exec(xml)?.[1] ?? '';
}
