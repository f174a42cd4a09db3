// A model blob's GET over plain http:// read straight off the socket: node:http's client hands
// every 64 KiB socket read over in a fresh Buffer, through its parser and a stream, and that
// bounded a loopback pull at ~0.35x curl. Here the kernel reads the body straight into two
// reused 1 MiB buffers (net's `onread`), each read is hashed in place, and a full buffer goes to
// disk in one write (GroupWriter, blob-sink.ts) while the other fills: one hash pass, no copy,
// no allocation per read.
//
// Only what a blob answer needs: one GET on a connection of its own, closed by us once the body
// is in (so no framing of a next answer to get right), a status line and headers read with a
// size cap, and a body of the declared Content-Length. Not `Connection: close`: the close stays
// ours, as with node:http (the bench's slow-link proxy cut answers the server closed first).
// An answer this reader does not take (200/206 without a Content-Length, any Transfer-Encoding)
// makes it step aside (null): the caller asks again through the general transport. https and
// proxied URLs never come here (http.ts openBlob).
//
// The timeouts are the transport's: connect, the answer headers (from the request sent) and the
// idle time between two body reads, counted from sinkInto on: the time the caller takes between
// the headers and asking for the body is not the link's (an idle timer running then closed the
// socket under a caller still busy, and each retry then gained only the bytes that came with the
// headers). Each ends the socket with ETIMEDOUT (retryable). A cut
// connection rejects after every byte received before it is written: the .part file is always
// the exact prefix the next attempt resumes from with Range.
import { connect, type Socket } from 'node:net';
import type { Hash } from 'node:crypto';
import { GROUP, GroupWriter, type SinkOptions } from './blob-sink.js';
import { SyncHttpError } from './http-error.js';

/** status line + headers larger than this are refused */
export const HEAD_MAX = 64 << 10;
/** a buffer with less room than this left goes to disk, the next read goes to the other one */
const MIN_READ = 64 << 10;

export interface BlobGetOptions {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  /** max idle time between two body reads */
  bodyTimeoutMs: number;
  /** aborts the exchange (the run's --max-time) */
  signal?: AbortSignal;
}

/**
 * An answer whose headers are read; its body waits for sinkInto (the socket paused, no timer
 * running): the caller takes it or drops it (discard, abort).
 */
export interface BlobReply {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  /** drop the answer (the connection is closed) */
  discard(): Promise<void>;
  abort(): void;
  /**
   * The body into fd from `offset`, hashed into `hash`: the position after the last byte
   * written. Rejects (a cut, a timeout, a write error, tooLarge) after every byte received
   * before the failure is written and nothing runs on fd any more.
   */
  sinkInto(fd: number, offset: number, hash: Hash, o: SinkOptions): Promise<number>;
}

const timeoutError = (message: string) => Object.assign(new Error(message), { code: 'ETIMEDOUT' });
const resetError = (message: string) => Object.assign(new Error(message), { code: 'ECONNRESET' });

/** header field names (RFC 9110 token) and values (visible ASCII, obs-text, space, tab) */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

interface Head {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Content-Length, null when absent */
  length: number | null;
  /** a Transfer-Encoding was sent (this reader reads only Content-Length bodies) */
  encoded: boolean;
}

/** Status line and header lines (latin1, without the final CRLF CRLF); throws on anything malformed. */
export function parseHead(text: string, what: string): Head {
  const bad = (why: string) => new SyncHttpError(`${what}: malformed HTTP answer (${why})`, 'protocol');
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] ([1-9]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/.exec(lines[0]);
  if (!m) throw bad(`status line ${JSON.stringify(lines[0].slice(0, 80))}`);
  const headers: Record<string, string | string[] | undefined> = {};
  const lengths = new Set<string>();
  let encoded = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    const value = line.slice(colon + 1).trim();
    // obs-fold (a line starting with white space), a bare CR or LF, a name that is no token
    if (!TOKEN.test(name) || !VALUE.test(value)) throw bad(`header line ${JSON.stringify(line.slice(0, 80))}`);
    const k = name.toLowerCase();
    if (k === 'content-length') for (const v of value.split(',')) lengths.add(v.trim());
    if (k === 'transfer-encoding') encoded = true;
    const had = headers[k];
    if (had === undefined) headers[k] = value;
    else if (k === 'set-cookie') headers[k] = [...(Array.isArray(had) ? had : [had]), value];
    else headers[k] = `${had}, ${value}`;
  }
  let length: number | null = null;
  if (lengths.size) {
    const [v] = lengths;
    if (lengths.size > 1 || !/^\d{1,15}$/.test(v)) throw bad(`Content-Length ${JSON.stringify(headers['content-length'])}`);
    length = Number(v);
    headers['content-length'] = v;
  }
  return { status: Number(m[1]), headers, length, encoded };
}

/** The request bytes: our own headers, refused if a value could break the message apart. */
function requestHead(url: URL, headers: Record<string, string>): string {
  let s = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n`;
  for (const [k, v] of Object.entries(headers)) {
    if (!TOKEN.test(k) || !VALUE.test(v)) throw new SyncHttpError(`request header ${k}: invalid character in its name or value`, 'protocol');
    s += `${k}: ${v}\r\n`;
  }
  return `${s}\r\n`;
}

/**
 * GET url (plain http) and read the answer's headers; resolves null when the answer is a 200 or
 * 206 this reader does not take (no Content-Length, or a Transfer-Encoding): ask again through
 * the general transport. Network failures reject with errors coded like node's (ECONNRESET,
 * ETIMEDOUT, ...), malformed answers with a 'protocol' SyncHttpError.
 */
export function blobGet(url: URL, headers: Record<string, string>, o: BlobGetOptions): Promise<BlobReply | null> {
  const what = `GET ${url.pathname}`;
  const req = requestHead(url, headers);
  const bufs = [Buffer.allocUnsafe(GROUP), Buffer.allocUnsafe(GROUP)];
  let cur = 0; // the buffer being filled
  let fill = 0; // bytes in it
  // where the kernel puts the next read: decided in each read callback, since the socket takes
  // it right after the callback and keeps it across a pause
  let next = bufs[0].subarray(0, HEAD_MAX);
  let phase: 'head' | 'wait' | 'body' | 'over' = 'head';
  let failure: Error | null = null;
  let onFailure: ((e: Error) => void) | null = null;
  let onRead: ((n: number) => boolean) | null = null;
  let answer: (r: BlobReply | null) => void = () => {};
  let refuse: (e: Error) => void = () => {};
  let headersTimer: NodeJS.Timeout | undefined;
  let connectTimer: NodeJS.Timeout | undefined;

  const sock: Socket = connect({
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(url.port || 80),
    onread: {
      buffer: () => next,
      // false pauses the socket
      callback: (n: number) => (phase === 'head' ? readHead(n) : (onRead?.(n) ?? false)),
    },
  });
  const fail = (e: Error) => {
    if (phase === 'over') return;
    failure ??= e;
    clearTimeout(connectTimer);
    clearTimeout(headersTimer);
    if (!sock.destroyed) sock.destroy();
    if (phase === 'head') {
      phase = 'over';
      refuse(failure);
    } else onFailure?.(failure);
  };
  const abortBySignal = () => fail(Object.assign(new Error('This operation was aborted'), { code: 'ABORT_ERR', name: 'AbortError' }));
  if (o.signal?.aborted) queueMicrotask(abortBySignal);
  o.signal?.addEventListener('abort', abortBySignal, { once: true });
  const cleanup = () => o.signal?.removeEventListener('abort', abortBySignal);

  connectTimer = setTimeout(() => fail(timeoutError(`connect timeout after ${o.connectTimeoutMs} ms`)), o.connectTimeoutMs);
  sock.once('connect', () => {
    clearTimeout(connectTimer);
    sock.setNoDelay(true);
    sock.write(req, 'latin1', () => {
      if (phase === 'head') headersTimer = setTimeout(() => fail(timeoutError(`no answer headers within ${o.headersTimeoutMs} ms`)), o.headersTimeoutMs);
    });
  });
  sock.on('timeout', () => fail(timeoutError('connection timed out')));
  sock.on('error', (e) => fail(e));
  sock.on('close', () => fail(phase === 'head' ? resetError('socket hang up') : resetError('aborted')));

  /** A read during the head: the status line and headers, once their blank line is in. */
  function readHead(n: number): boolean {
    fill += n;
    const buf = bufs[cur];
    const end = buf.subarray(0, fill).indexOf('\r\n\r\n', Math.max(0, fill - n - 3), 'latin1');
    if (end < 0) {
      if (fill >= HEAD_MAX) fail(new SyncHttpError(`${what}: malformed HTTP answer (status line and headers larger than ${HEAD_MAX} bytes)`, 'protocol'));
      else next = buf.subarray(fill, HEAD_MAX);
      return true;
    }
    let head: Head;
    try {
      head = parseHead(buf.toString('latin1', 0, end), what);
    } catch (e) {
      fail(e as Error);
      return false;
    }
    // the body bytes that came with the head go to the buffer's start (less than HEAD_MAX: the
    // buffer keeps room for a full read)
    buf.copyWithin(0, end + 4, fill);
    fill -= end + 4;
    if (head.status >= 100 && head.status < 200) {
      // an interim answer (103 Early Hints): the real one follows
      const rest = fill;
      fill = 0;
      next = buf.subarray(0, HEAD_MAX);
      return rest ? readHead(rest) : true;
    }
    clearTimeout(headersTimer);
    phase = 'wait';
    next = buf.subarray(fill);
    // paused, the socket holds nothing open (no read pending, no timer): a caller failing
    // before it takes the body (its disk, say) does not keep the process alive
    sock.pause();
    const ok = head.status === 200 || head.status === 206;
    if (ok && (head.length === null || head.encoded)) {
      phase = 'over';
      cleanup();
      sock.destroy();
      answer(null);
      return false;
    }
    const drop = () => {
      phase = 'over';
      cleanup();
      sock.destroy();
    };
    answer({
      statusCode: head.status,
      headers: head.headers,
      discard: async () => drop(),
      abort: drop,
      sinkInto: (fd, offset, hash, so) => body(head.length ?? 0, fd, offset, hash, so),
    });
    return false;
  }

  /** The body (`length` bytes) into fd, from the bytes already read on. */
  function body(length: number, fd: number, offset: number, hash: Hash, so: SinkOptions): Promise<number> {
    if (phase !== 'wait') return Promise.reject(failure ?? new Error('blob answer already read'));
    phase = 'body';
    let got = 0; // body bytes received
    let swapping = false; // paused until the other buffer's write is done
    let ended = false;
    return new Promise<number>((resolve, reject) => {
      // a failed write ends the body at once, also while the socket waits for more (a link
      // slower than the disk): no later write runs, the error is the write's, not a timeout's
      const w = new GroupWriter(fd, offset, (e) => void end(e as Error));
      // once: a failed write seen by a pending swap and a socket failure may both end the body,
      // and the buffer being filled must be written once
      const end = async (e: Error | null) => {
        if (ended) return;
        ended = true;
        phase = 'over';
        cleanup();
        clearTimeout(headersTimer);
        if (!sock.destroyed) sock.destroy();
        try {
          if (e) {
            // keep what arrived before the failure: the next attempt resumes after it
            await w.settle();
            w.write([bufs[cur].subarray(0, fill)], fill);
            await w.settle(); // the caller closes fd next: nothing may still run on it
            reject(e);
          } else {
            await w.idle();
            w.write([bufs[cur].subarray(0, fill)], fill);
            await w.finish();
            resolve(offset + got);
          }
        } catch (err) {
          await w.settle();
          reject(err);
        }
      };
      onFailure = (e) => void end(e);
      /** n new bytes at bufs[cur][fill..]: hashed in place, counted; a full buffer goes to disk */
      const take = (n: number): boolean => {
        const k = Math.min(n, length - got); // anything past Content-Length is not ours
        if (offset + got + k > so.size) {
          void end(so.tooLarge());
          return false;
        }
        if (k > 0) {
          hash.update(bufs[cur].subarray(fill, fill + k));
          fill += k;
          got += k;
          so.onBytes?.(k);
        }
        if (got === length) {
          void end(null);
          return false;
        }
        if (GROUP - fill >= MIN_READ) {
          next = bufs[cur].subarray(fill);
          return true;
        }
        if (!w.busy) {
          w.write([bufs[cur].subarray(0, fill)], fill);
          cur ^= 1;
          fill = 0;
          next = bufs[cur];
          return true;
        }
        // the disk is behind: the next read goes to the other buffer once its write is done
        swapping = true;
        next = bufs[cur ^ 1];
        sock.pause();
        w.idle().then(
          () => {
            if (phase !== 'body') return;
            swapping = false;
            w.write([bufs[cur].subarray(0, fill)], fill);
            cur ^= 1;
            fill = 0;
            sock.resume();
          },
          (e: Error) => void end(e),
        );
        return false;
      };
      onRead = (n) => {
        if (phase !== 'body' || swapping) return false;
        return take(n);
      };
      // the bytes that came with the headers, then the rest from the socket (unless it failed
      // while the answer waited for this call)
      const early = fill;
      fill = 0;
      if (!take(early)) return;
      if (failure) return void end(failure);
      // from here on, the idle timeout between two reads (not before: see the top)
      sock.setTimeout(o.bodyTimeoutMs);
      sock.resume();
    });
  }

  return new Promise<BlobReply | null>((resolve, reject) => {
    answer = resolve;
    refuse = (e) => {
      cleanup();
      reject(e);
    };
  });
}
