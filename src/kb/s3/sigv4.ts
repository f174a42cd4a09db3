// AWS Signature Version 4 for S3 requests (header signing) and presigned URLs (query signing).
// Our own ~100 lines instead of the AWS SDK (tens of MB, slow to import): pure functions over
// node:crypto, checked against the AWS documentation's examples (test/s3-sigv4.test.ts).
import { createHash, createHmac } from 'node:crypto';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** temporary credentials (AWS_SESSION_TOKEN) */
  sessionToken?: string;
}

/** the hash S3 accepts in x-amz-content-sha256 when the body is not hashed up front */
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** RFC 3986 encoding as SigV4 wants it: only A-Z a-z 0-9 - _ . ~ stay as they are */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** a path's segments encoded, slashes kept (S3 does not normalise paths) */
export function encodePath(path: string): string {
  return path.split('/').map(uriEncode).join('/');
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/** 20130524T000000Z */
export function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function canonicalQuery(query: Record<string, string>): string {
  return Object.keys(query)
    .map((k) => [uriEncode(k), uriEncode(query[k])] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function signature(creds: S3Credentials, region: string, service: string, when: string, canonicalRequest: string): string {
  const day = when.slice(0, 8);
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${when}\n${scope}\n${sha256Hex(canonicalRequest)}`;
  const kDate = hmac(`AWS4${creds.secretAccessKey}`, day);
  const kSigning = hmac(hmac(hmac(kDate, region), service), 'aws4_request');
  return hmac(kSigning, toSign).toString('hex');
}

export interface SignInput {
  method: string;
  /** path as sent, already encoded (encodePath) */
  path: string;
  query?: Record<string, string>;
  /** must include host; names in any case */
  headers: Record<string, string>;
  /** hex sha256 of the body, UNSIGNED_PAYLOAD or EMPTY_SHA256 */
  payloadHash: string;
  region: string;
  service?: string;
  now?: Date;
}

/**
 * Headers to add to the request: x-amz-date, x-amz-content-sha256, authorization (and
 * x-amz-security-token with temporary credentials). Every header given is signed.
 */
export function signHeaders(creds: S3Credentials, r: SignInput): Record<string, string> {
  const service = r.service ?? 's3';
  const when = amzDate(r.now ?? new Date());
  const extra: Record<string, string> = { 'x-amz-date': when, 'x-amz-content-sha256': r.payloadHash };
  if (creds.sessionToken) extra['x-amz-security-token'] = creds.sessionToken;
  const all: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...r.headers, ...extra })) all[k.toLowerCase()] = String(v).trim().replace(/\s+/g, ' ');
  const names = Object.keys(all).sort();
  const signed = names.join(';');
  const canonical = [r.method, r.path, canonicalQuery(r.query ?? {}), names.map((n) => `${n}:${all[n]}\n`).join(''), signed, r.payloadHash].join('\n');
  const sig = signature(creds, r.region, service, when, canonical);
  const scope = `${when.slice(0, 8)}/${r.region}/${service}/aws4_request`;
  return { ...extra, authorization: `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${sig}` };
}

/**
 * A presigned GET URL (query signing, only the host header signed, unsigned payload): anyone
 * holding it may read that one object until it expires (expiresSec, 1 s .. 7 days).
 */
export function presignUrl(creds: S3Credentials, r: { method?: string; endpoint: URL; path: string; region: string; expiresSec: number; service?: string; now?: Date }): string {
  if (!Number.isInteger(r.expiresSec) || r.expiresSec < 1 || r.expiresSec > 604800) throw new Error(`presign expiry ${r.expiresSec}: expected 1..604800 seconds`);
  const service = r.service ?? 's3';
  const when = amzDate(r.now ?? new Date());
  const query: Record<string, string> = {
    'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
    'X-Amz-Credential': `${creds.accessKeyId}/${when.slice(0, 8)}/${r.region}/${service}/aws4_request`,
    'X-Amz-Date': when,
    'X-Amz-Expires': String(r.expiresSec),
    'X-Amz-SignedHeaders': 'host',
  };
  if (creds.sessionToken) query['X-Amz-Security-Token'] = creds.sessionToken;
  const host = r.endpoint.host;
  const canonical = [r.method ?? 'GET', r.path, canonicalQuery(query), `host:${host}\n`, 'host', UNSIGNED_PAYLOAD].join('\n');
  const sig = signature(creds, r.region, service, when, canonical);
  return `${r.endpoint.protocol}//${host}${r.path}?${canonicalQuery(query)}&X-Amz-Signature=${sig}`;
}
