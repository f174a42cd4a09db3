// Where a KB keeps its blobs: DATA/blobs/ (the default) or an S3-compatible bucket, named by a
// URL s3://bucket[/prefix]. Chosen by (first set wins) `--blobs`, $SEDNA_LL_KB_BLOBS, or the
// "blobs" of DATA/kb.json (`kb init --blobs`). The S3 endpoint (a non-AWS server: Ceph RGW, ...)
// by --s3-endpoint, $SEDNA_LL_KB_S3_ENDPOINT, $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL or kb.json
// "s3_endpoint"; credentials by the usual $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY
// (/ $AWS_SESSION_TOKEN), region by $AWS_REGION ($AWS_DEFAULT_REGION, else us-east-1).
import { tmpdir } from 'node:os';
import { ReportedError, UsageError } from '../errors.js';
import type { S3BlobStore } from './s3/blob-store.js';

export interface BlobsChoice {
  /** s3://bucket[/prefix] */
  url?: string;
  endpoint?: string;
  /** the endpoint as devices reach it (presigned URLs), when it differs from the KB's */
  publicEndpoint?: string;
}

/** --blobs / $SEDNA_LL_KB_BLOBS / kb.json, first set wins; undefined: the data directory's files */
export function chooseBlobs(flag: BlobsChoice, saved: BlobsChoice = {}): BlobsChoice {
  const env = process.env;
  return {
    url: flag.url ?? (env.SEDNA_LL_KB_BLOBS || undefined) ?? saved.url,
    endpoint: flag.endpoint ?? (env.SEDNA_LL_KB_S3_ENDPOINT || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined) ?? saved.endpoint,
    publicEndpoint: flag.publicEndpoint ?? (env.SEDNA_LL_KB_S3_PUBLIC_ENDPOINT || undefined) ?? saved.publicEndpoint,
  };
}

/** s3://bucket[/prefix] -> bucket and prefix ('' or ending in '/') */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/.*)?$/.exec(url);
  if (!m) throw new UsageError(`--blobs "${url}": expected s3://BUCKET[/PREFIX] (bucket: 3-63 lower-case letters, digits, dots, dashes)`);
  const prefix = (m[2] ?? '').replace(/^\/+/, '');
  return { bucket: m[1], prefix: prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix };
}

function httpUrl(what: string, s: string): URL {
  try {
    const u = new URL(s);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('expected http:// or https://');
    return u;
  } catch (e) {
    throw new UsageError(`${what} "${s}": ${(e as Error).message}`);
  }
}

/**
 * The S3 blob store of a choice. create: make the bucket when missing; an unreachable store is
 * then a warning (a server starts and answers 503 until it is back), or an error with 'strict'.
 */
export async function openS3Blobs(choice: BlobsChoice & { url: string }, opts: { tmpDir?: string; create?: boolean | 'strict' } = {}): Promise<S3BlobStore> {
  const { bucket, prefix } = parseS3Url(choice.url);
  const env = process.env;
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) throw new UsageError(`--blobs ${choice.url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the S3 user's keys)`);
  const ep = choice.endpoint ?? `https://s3.${env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1'}.amazonaws.com`;
  const endpoint = httpUrl('S3 endpoint', ep);
  const publicEndpoint = choice.publicEndpoint ? httpUrl('S3 public endpoint', choice.publicEndpoint) : undefined;
  const { S3BlobStore } = await import('./s3/blob-store.js');
  const store = new S3BlobStore({
    endpoint,
    bucket,
    prefix,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    credentials: { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined },
    tmpDir: opts.tmpDir ?? tmpdir(),
    publicEndpoint,
  });
  if (opts.create) {
    try {
      await store.ensureBucket();
    } catch (e) {
      // a server starts while the object store is down: blob requests answer 503 until it is back
      if ((e as { statusCode?: number }).statusCode !== 503 || opts.create === 'strict') throw new ReportedError(`--blobs ${choice.url}: ${(e as Error).message}`);
      process.stderr.write(`warning: ${(e as Error).message}\n`);
    }
  }
  return store;
}
