// The KB's blobs in an S3-compatible object store (Ceph RGW, AWS S3, ...): keys
// [prefix]blobs/<sha256>, immutable, hashed by the KB itself. S3 PUT is atomic per object: an
// upload cut short (uploader killed, connection lost) leaves no object under the key, so a blob
// visible under its name is complete. The bytes are hashed before the PUT (a Buffer in memory,
// a stream spooled to a temp file on the way) and sent with x-amz-content-sha256 = that hash, so
// the server refuses bytes that differ from what the KB hashed; after the PUT a HEAD checks the
// stored size before the caller references the blob.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { spoolHashed } from '../../durable/content-dir.js';
import { isSha256, type BlobInfo, type BlobStore } from '../blob-store.js';
import { S3Client, s3Error, readText, type S3Location } from './client.js';

export interface S3BlobStoreOptions extends S3Location {
  /** key prefix inside the bucket ('' or ending in '/') */
  prefix: string;
  /** where streamed uploads are spooled while hashed (default: the OS temp dir) */
  tmpDir: string;
  /** the store's address as devices reach it, for presigned URLs (default: endpoint) */
  publicEndpoint?: URL;
}

const CACHE = 'public, max-age=31536000, immutable';
const MAX_SINGLE_PUT = 5 * 1024 ** 3;

export class S3BlobStore implements BlobStore {
  readonly client: S3Client;

  constructor(private readonly opts: S3BlobStoreOptions) {
    this.client = new S3Client(opts);
    mkdirSync(opts.tmpDir, { recursive: true });
  }

  get location(): string {
    return `s3://${this.opts.bucket}/${this.opts.prefix} at ${this.opts.endpoint.origin}`;
  }

  key(sha: string): string {
    if (!isSha256(sha)) throw new Error(`blob "${sha}": not a sha256`);
    return `${this.opts.prefix}blobs/${sha}`;
  }

  /** create the bucket when it does not exist yet (a fresh object store) */
  async ensureBucket(): Promise<void> {
    const head = await this.client.request({ method: 'HEAD', key: '' });
    head.resume();
    if (head.statusCode === 200) return;
    if (head.statusCode !== 404) throw s3Error({ method: 'HEAD' }, this.client.path(''), head.statusCode!, '');
    await this.client.call({ method: 'PUT', key: '' }, [200, 409]);
  }

  async put(src: Readable | Buffer, expectSha?: string): Promise<{ sha256: string; size: number }> {
    if (Buffer.isBuffer(src)) {
      const sha256 = createHash('sha256').update(src).digest('hex');
      checkSha(sha256, expectSha);
      await this.upload(sha256, src.length, () => src);
      return { sha256, size: src.length };
    }
    // a stream: spool while hashing (the PUT needs its length and hash up front)
    const tmp = join(this.opts.tmpDir, `s3-spool-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      const { sha256, size } = await spoolHashed(src, tmp);
      checkSha(sha256, expectSha);
      await this.upload(sha256, size, () => createReadStream(tmp));
      return { sha256, size };
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  private async upload(sha: string, size: number, body: () => Buffer | Readable): Promise<void> {
    // one PUT per blob (atomic, no multipart bookkeeping to clean up): S3 takes up to 5 GiB so
    if (size > MAX_SINGLE_PUT) throw new Error(`blob ${sha}: ${size} bytes is over the 5 GiB of a single S3 PUT (multipart uploads are not implemented)`);
    // always PUT, even when the object exists: the same bytes again (idempotent), and its fresh
    // LastModified keeps kb gc's grace period from removing it before the caller references it
    await this.client.call({
      method: 'PUT',
      key: this.key(sha),
      headers: { 'content-length': String(size), 'content-type': 'application/octet-stream', 'cache-control': CACHE },
      body: body(),
      payloadHash: sha,
    });
    const stored = await this.size(sha);
    if (stored !== size) throw new Error(`blob ${sha}: object store holds ${stored ?? 'nothing'} bytes after a PUT of ${size}`);
  }

  async get(sha: string, range?: { start: number; end: number }): Promise<Readable> {
    const res = await this.client.request({ method: 'GET', key: this.key(sha), headers: range ? { range: `bytes=${range.start}-${range.end}` } : {} });
    if (res.statusCode === 404) {
      res.resume();
      throw new Error(`blob ${sha}: not found`);
    }
    if (res.statusCode !== (range ? 206 : 200)) throw s3Error({ method: 'GET' }, this.client.path(this.key(sha)), res.statusCode!, await readText(res));
    return res;
  }

  async has(sha: string): Promise<boolean> {
    return isSha256(sha) && (await this.size(sha)) !== null;
  }

  async size(sha: string): Promise<number | null> {
    if (!isSha256(sha)) return null;
    const r = await this.client.call({ method: 'HEAD', key: this.key(sha) }, [200, 404]);
    return r.status === 404 ? null : Number(r.headers['content-length']);
  }

  async delete(sha: string): Promise<void> {
    await this.client.call({ method: 'DELETE', key: this.key(sha) }, [200, 204, 404]);
  }

  async *list(): AsyncIterable<BlobInfo> {
    const prefix = `${this.opts.prefix}blobs/`;
    let token: string | undefined;
    do {
      const query: Record<string, string> = { 'list-type': '2', prefix, 'max-keys': '1000' };
      if (token) query['continuation-token'] = token;
      const { text } = await this.client.call({ method: 'GET', key: '', query });
      for (const m of text.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const key = tag(m[1], 'Key');
        const sha = key.slice(prefix.length);
        if (!isSha256(sha)) continue; // not ours
        yield { sha256: sha, size: Number(tag(m[1], 'Size')), mtimeMs: Date.parse(tag(m[1], 'LastModified')) };
      }
      token = tag(text, 'IsTruncated') === 'true' ? tag(text, 'NextContinuationToken') : undefined;
    } while (token);
  }

  /** a URL anyone may GET the blob from, for expiresSec seconds (SigV4 query signing) */
  presignGet(sha: string, expiresSec: number): string {
    return this.client.presign(this.key(sha), expiresSec, this.opts.publicEndpoint);
  }

  close(): void {
    this.client.close();
  }
}

function checkSha(actual: string, expected?: string): void {
  if (expected && actual !== expected) throw new Error(`blob content has sha256 ${actual}, expected ${expected}`);
}

function tag(xml: string, name: string): string {
  const v = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1] ?? '';
  return v.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'");
}
