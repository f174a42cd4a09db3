// Binary push framing ("frames"): samples as length-prefixed records, payload bytes raw (no
// base64, no JSON around them), so the KB reads a push as a stream, record by record, and
// neither side builds or parses one big JSON document. Negotiated (GET /v1/protocol, see
// protocol.ts); the JSON body stays for old edges and old KBs.
//
//   stream  := MAGIC record* END
//   MAGIC   := "SLF1"                      4 bytes: sedna-ll frames, version 1
//   record  := u32be len, body[len]        len > 0
//   body    := u8 idLen, id[idLen] (ASCII), u32be metaLen, meta[metaLen], payload[rest]
//   meta    := UTF-8 JSON object: the UploadSample fields except id and payload_b64
//   END     := u32be 0
//
// Why the id sits outside the JSON: a record whose meta does not parse can still be named in
// the ack's `rejected` (the edge marks it rejected instead of re-sending it forever), and the
// length prefix lets the reader skip it without touching its neighbours. Why an END record:
// a stream that stops without it was cut, and the reader says so instead of treating the
// records it got as the whole push (they are committed anyway: pushes are idempotent).
// The whole stream may be gzipped (Content-Encoding: gzip), never single records.

export const FRAMES_MAGIC = Buffer.from('SLF1', 'latin1');
/** Content-Type of a frames body (POST /v1/sample-frames) */
export const FRAMES_CONTENT_TYPE = 'application/vnd.sedna-ll.sample-frames';
/** name of this framing in GET /v1/protocol's push_framings */
export const FRAMES_NAME = 'frames1';

/** the END marker (u32 0); shared, never written to */
export const FRAMES_END = Buffer.alloc(4);
const END = FRAMES_END;

/** The encoder side: one record's bytes around a payload (header written into one small Buffer). */
export function encodeRecordHead(id: string, meta: string, payloadBytes: number): Buffer {
  const idLen = Buffer.byteLength(id, 'latin1');
  if (idLen > 255) throw new Error(`sample id "${id.slice(0, 40)}…": longer than 255 bytes`);
  const metaLen = Buffer.byteLength(meta, 'utf8');
  const head = Buffer.allocUnsafe(4 + 1 + idLen + 4 + metaLen);
  head.writeUInt32BE(1 + idLen + 4 + metaLen + payloadBytes, 0);
  head[4] = idLen;
  head.write(id, 5, 'latin1');
  head.writeUInt32BE(metaLen, 5 + idLen);
  head.write(meta, 9 + idLen, 'utf8');
  return head;
}

/** A whole frames body from (head, payload) pairs: MAGIC, records, END, in one Buffer. */
export function assembleFrames(parts: Buffer[], total: number): Buffer {
  return Buffer.concat([FRAMES_MAGIC, ...parts, END], FRAMES_MAGIC.length + total + END.length);
}

export interface FrameRecord {
  /** position of the record in the stream (0-based), for messages */
  index: number;
  /** '' when the record is too broken to carry one */
  id: string;
  /** the record's meta JSON text and payload, or why the record is unusable */
  meta?: string;
  payload?: Buffer;
  error?: string;
}

/** A broken stream (bad magic, a cut in the middle of a record): nothing after it can be read. */
export class FramesStreamError extends Error {}

export interface ReadFramesOptions {
  /** largest record body; a larger one is skipped (its bytes read and dropped) and rejected */
  maxRecordBytes: number;
}

/**
 * Records of a frames stream, one at a time, as they arrive. A record that is broken inside
 * its own length (bad id, meta length past the end) is yielded with `error`, and the reader
 * goes on with the next one; a stream that does not start with MAGIC or stops before END throws
 * FramesStreamError. Memory: the chunk being read and at most one record (payloads inside a
 * chunk are views into it, no copy; a record spread over chunks is copied once).
 */
export async function* readFrames(src: AsyncIterable<Buffer>, o: ReadFramesOptions): AsyncGenerator<FrameRecord> {
  // unread bytes: a queue of chunks, consumed from the front
  const chunks: Buffer[] = [];
  let have = 0;
  const it = src[Symbol.asyncIterator]();
  let ended = false;
  /** read until `n` bytes are buffered (false: the stream ended first) */
  const fill = async (n: number): Promise<boolean> => {
    while (have < n) {
      if (ended) return false;
      const r = await it.next();
      if (r.done) {
        ended = true;
        return false;
      }
      const c = r.value;
      if (c.length) {
        chunks.push(c);
        have += c.length;
      }
    }
    return true;
  };
  /** take exactly n buffered bytes: a view when they lie in one chunk, else one copy */
  const take = (n: number): Buffer => {
    have -= n;
    const first = chunks[0];
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) chunks.shift();
      else chunks[0] = first.subarray(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = chunks[0];
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) chunks.shift();
      else chunks[0] = c.subarray(k);
    }
    return out;
  };
  /** drop n bytes as they arrive (an oversized record), without keeping them */
  const skip = async (n: number): Promise<boolean> => {
    while (n > 0) {
      if (have === 0 && !(await fill(1))) return false;
      const c = chunks[0];
      const k = Math.min(c.length, n);
      have -= k;
      n -= k;
      if (k === c.length) chunks.shift();
      else chunks[0] = c.subarray(k);
    }
    return true;
  };

  if (!(await fill(FRAMES_MAGIC.length)) || !take(FRAMES_MAGIC.length).equals(FRAMES_MAGIC)) {
    throw new FramesStreamError(`not a sample-frames stream (it must start with "${FRAMES_MAGIC.toString('latin1')}")`);
  }
  try {
    for (let index = 0; ; index++) {
      if (!(await fill(4))) throw new FramesStreamError(`stream cut before record ${index} (no end marker)`);
      const len = take(4).readUInt32BE(0);
      if (len === 0) {
        // END; anything after it is refused: it is not ours to guess what it was
        if (await fill(1)) throw new FramesStreamError('bytes after the end marker');
        return;
      }
      if (len > o.maxRecordBytes) {
        // the id is in the first bytes: read them to name the record, drop the rest
        let id = '';
        if (await fill(Math.min(len, 256))) {
          const idLen = chunks[0][0];
          if (1 + idLen <= len && (await fill(1 + idLen))) {
            const b = take(1 + idLen);
            id = b.toString('latin1', 1);
            if (!(await skip(len - 1 - idLen))) throw new FramesStreamError(`stream cut inside record ${index}`);
          } else if (!(await skip(len))) throw new FramesStreamError(`stream cut inside record ${index}`);
        } else throw new FramesStreamError(`stream cut inside record ${index}`);
        yield { index, id, error: `record of ${len} bytes is larger than the limit of ${o.maxRecordBytes}` };
        continue;
      }
      if (!(await fill(len))) throw new FramesStreamError(`stream cut inside record ${index} (${have} of ${len} bytes)`);
      const body = take(len);
      const idLen = body[0];
      if (1 + idLen + 4 > len) {
        yield { index, id: '', error: `record ${index}: id length ${idLen} runs past the record (${len} bytes)` };
        continue;
      }
      const id = body.toString('latin1', 1, 1 + idLen);
      const metaLen = body.readUInt32BE(1 + idLen);
      const metaStart = 1 + idLen + 4;
      if (metaStart + metaLen > len) {
        yield { index, id, error: `meta length ${metaLen} runs past the record (${len} bytes)` };
        continue;
      }
      yield { index, id, meta: body.toString('utf8', metaStart, metaStart + metaLen), payload: body.subarray(metaStart + metaLen) };
    }
  } finally {
    if (!ended) await it.return?.();
  }
}
