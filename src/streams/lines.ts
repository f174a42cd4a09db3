// Split a byte stream into text lines without loading it whole: yields arrays of lines per
// chunk (one await per chunk, not per line, keeps the hot path cheap). Handles \r\n, a last
// line without \n, a UTF-8 byte-order mark before the first line, and UTF-8 sequences split
// across chunks (lines are cut on the \n byte).
//
// Linear in the line length: the unfinished tail of a line is kept as a list of chunks and each
// byte is scanned for \n once (concatenating and rescanning per chunk was quadratic: one 100 MB
// line took minutes). A line longer than MAX_LINE_BYTES is not buffered at all: its bytes are
// dropped as they arrive and it is reported as one over-long line (see `tooLong`), so a stream
// without newlines cannot grow memory without bound.
import type { Readable } from 'node:stream';

/** The longest line (record) accepted, in bytes without the \n: 64 MiB. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

/** Lines of one chunk as byte ranges of buf: line k is buf[starts[k], ends[k]) without \r\n. */
export interface ByteLines {
  buf: Buffer;
  starts: number[];
  ends: number[];
  /** indexes k of lines that exceeded the cap: their range is empty, their bytes were dropped */
  tooLong?: number[];
}

export function lineTooLongReason(maxBytes = MAX_LINE_BYTES): string {
  return `line longer than ${Math.round(maxBytes / (1024 * 1024))} MiB (the line cap)`;
}

const BOM = [0xef, 0xbb, 0xbf];

/**
 * Like lineChunks but without decoding to strings: parsers that work on bytes (fast-json.ts)
 * skip the UTF-8 decode and the per-line string of every record.
 */
export async function* byteLineChunks(input: Readable, maxLineBytes = MAX_LINE_BYTES): AsyncGenerator<ByteLines> {
  // the unfinished line: chunks (or parts of them) seen since the last \n
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let skipping = false; // the current line passed the cap: drop until its \n
  let first = true;
  let bomHead: Buffer | null = null; // the first bytes while they may still be a split BOM
  for await (const raw of input as AsyncIterable<Buffer>) {
    let chunk = raw;
    if (first) {
      // a BOM may arrive split over the first chunks (a pipe writing byte by byte)
      chunk = bomHead ? Buffer.concat([bomHead, chunk]) : chunk;
      const n = Math.min(3, chunk.length);
      if (chunk.subarray(0, n).equals(Buffer.from(BOM.slice(0, n))) && n < 3) {
        bomHead = chunk;
        continue;
      }
      first = false;
      bomHead = null;
      if (n === 3 && chunk[0] === BOM[0] && chunk[1] === BOM[1] && chunk[2] === BOM[2]) chunk = chunk.subarray(3);
      if (chunk.length === 0) continue;
    }
    let nl = chunk.indexOf(10);
    if (nl < 0) {
      if (!skipping) {
        pending.push(chunk);
        pendingLen += chunk.length;
        if (pendingLen > maxLineBytes) {
          skipping = true;
          pending = [];
          pendingLen = 0;
        }
      }
      continue;
    }
    // buf: the pending head of the first line + this chunk, so all lines are ranges of one buffer
    const head = skipping ? 0 : pendingLen;
    const buf = head > 0 ? Buffer.concat([...pending, chunk], head + chunk.length) : chunk;
    const starts: number[] = [];
    const ends: number[] = [];
    const tooLong: number[] = [];
    const first0 = head + nl;
    if (skipping || first0 > maxLineBytes) {
      tooLong.push(0);
      starts.push(0);
      ends.push(0);
    } else {
      starts.push(0);
      ends.push(first0 > 0 && buf[first0 - 1] === 13 ? first0 - 1 : first0);
    }
    skipping = false;
    pending = [];
    pendingLen = 0;
    let s = first0 + 1;
    while ((nl = buf.indexOf(10, s)) >= 0) {
      if (nl - s > maxLineBytes) {
        tooLong.push(starts.length);
        starts.push(s);
        ends.push(s);
      } else {
        starts.push(s);
        ends.push(nl > s && buf[nl - 1] === 13 ? nl - 1 : nl);
      }
      s = nl + 1;
    }
    if (s < buf.length) {
      // copy the remainder so the big chunk can be collected
      const rest = Buffer.from(buf.subarray(s));
      if (rest.length > maxLineBytes) skipping = true;
      else {
        pending.push(rest);
        pendingLen = rest.length;
      }
    }
    yield tooLong.length ? { buf, starts, ends, tooLong } : { buf, starts, ends };
  }
  if (bomHead) {
    // the whole input was a BOM prefix: those bytes are the last line's
    pending = [bomHead];
    pendingLen = bomHead.length;
  }
  if (skipping) yield { buf: Buffer.alloc(0), starts: [0], ends: [0], tooLong: [0] };
  else if (pendingLen > 0) {
    const rest = Buffer.concat(pending, pendingLen);
    const e = rest[rest.length - 1] === 13 ? rest.length - 1 : rest.length;
    yield { buf: rest, starts: [0], ends: [e] };
  }
}

/** A line of lineChunks: its text, or null for a line over the cap (reported, then skipped). */
export type TextLine = string | null;

/** Text lines per chunk; an over-long line comes as null. */
export async function* lineChunks(input: Readable, maxLineBytes = MAX_LINE_BYTES): AsyncGenerator<TextLine[]> {
  for await (const { buf, starts, ends, tooLong } of byteLineChunks(input, maxLineBytes)) {
    const lines: TextLine[] = new Array(starts.length);
    for (let k = 0; k < starts.length; k++) lines[k] = buf.toString('utf8', starts[k], ends[k]);
    if (tooLong) for (const k of tooLong) lines[k] = null;
    yield lines;
  }
}
