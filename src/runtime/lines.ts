// Split a byte stream into text lines without loading it whole: yields arrays of lines per
// chunk (one await per chunk, not per line, keeps the hot path cheap). Handles \r\n, a last
// line without \n, and UTF-8 sequences split across chunks (lines are cut on the \n byte).
import type { Readable } from 'node:stream';

export async function* lineChunks(input: Readable): AsyncGenerator<string[]> {
  let rest: Buffer | null = null;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    let buf: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
    const last = buf.lastIndexOf(10);
    if (last < 0) {
      rest = buf;
      continue;
    }
    rest = last + 1 < buf.length ? buf.subarray(last + 1) : null;
    // copy the remainder so the big chunk can be collected
    if (rest) rest = Buffer.from(rest);
    buf = buf.subarray(0, last);
    const lines = buf.toString('utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i];
      if (l.length > 0 && l.charCodeAt(l.length - 1) === 13) lines[i] = l.slice(0, -1);
    }
    yield lines;
  }
  if (rest && rest.length > 0) {
    let l = rest.toString('utf8');
    if (l.endsWith('\r')) l = l.slice(0, -1);
    yield [l];
  }
}

/** Lines of one chunk as byte ranges of buf: line k is buf[starts[k], ends[k]) without \r\n. */
export interface ByteLines {
  buf: Buffer;
  starts: number[];
  ends: number[];
}

/**
 * Like lineChunks but without decoding to strings: parsers that work on bytes (fast-json.ts)
 * skip the UTF-8 decode and the per-line string of every record.
 */
export async function* byteLineChunks(input: Readable): AsyncGenerator<ByteLines> {
  let rest: Buffer | null = null;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    const buf: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
    const starts: number[] = [];
    const ends: number[] = [];
    let s = 0;
    let nl: number;
    while ((nl = buf.indexOf(10, s)) >= 0) {
      starts.push(s);
      ends.push(nl > s && buf[nl - 1] === 13 ? nl - 1 : nl);
      s = nl + 1;
    }
    rest = s < buf.length ? Buffer.from(buf.subarray(s)) : null;
    if (starts.length) yield { buf, starts, ends };
  }
  if (rest && rest.length > 0) {
    const e = rest[rest.length - 1] === 13 ? rest.length - 1 : rest.length;
    yield { buf: rest, starts: [0], ends: [e] };
  }
}
