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
/** Bytes of one record (length prefix included) with a latin1 id of idLen bytes and a UTF-8 meta of metaLen bytes. */
export const recordSize = (idLen: number, metaLen: number, payloadBytes: number): number => 9 + idLen + metaLen + payloadBytes;

/**
 * Write one record into `buf` at `off`: u32 length, u8 id length, id (latin1), u32 meta length,
 * meta (UTF-8), then the payload when given (else the caller sends `payloadBytes` bytes after
 * it). `metaLen` is Buffer.byteLength(meta, 'utf8'), which the caller has already computed to
 * size `buf`. Returns the offset after what was written.
 */
export function writeRecord(buf: Buffer, off: number, id: string, meta: string, metaLen: number, payload: Buffer | null, payloadBytes = payload ? payload.length : 0): number {
  const idLen = id.length; // ids are ASCII (SAMPLE_ID_RE): one byte per character
  if (idLen > 255) throw new Error(`sample id "${id.slice(0, 40)}…": longer than 255 bytes`);
  buf.writeUInt32BE(recordSize(idLen, metaLen, payloadBytes) - 4, off);
  buf[off + 4] = idLen;
  off += 5;
  off += buf.write(id, off, 'latin1');
  buf.writeUInt32BE(metaLen, off);
  off += 4;
  off += buf.write(meta, off, 'utf8');
  if (payload) off += payload.copy(buf, off);
  return off;
}

/** The head of one record (everything before its payload), for a body assembled from parts. */
export function encodeRecordHead(id: string, meta: string, payloadBytes: number): Buffer {
  const metaLen = Buffer.byteLength(meta, 'utf8');
  const head = Buffer.allocUnsafe(recordSize(id.length, metaLen, 0));
  writeRecord(head, 0, id, meta, metaLen, null, payloadBytes);
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

// where the decoder is in the stream
const MAGIC = 0;
const LEN = 1;
const BODY = 2;
/** an oversized record: collecting its first bytes (the id), then dropping the rest */
const SKIP_HEAD = 3;
const SKIP = 4;
const DONE = 5;

/** the first bytes of an oversized record kept to name it: u8 idLen + an id of at most 255 */
const ID_HEAD = 256;

/**
 * The decoder as a synchronous state machine: `push` takes each chunk as it arrives and parses
 * every record the chunk completes in one pass (no promise per record, no per-record async
 * iterator hop). A record that lies inside one chunk is a view into it (payload: subarray, no
 * copy); only a record spread over chunks is copied, once, into a buffer of its exact length.
 * So a record's payload keeps its chunk alive, and nothing else does.
 */
export class FramesDecoder {
  private stage = MAGIC;
  /** bytes of a length prefix, the magic, or an id head gathered across chunks */
  private readonly small = Buffer.alloc(ID_HEAD);
  private smallFill = 0;
  /** a record body spread over chunks, and how much of it has arrived */
  private part: Buffer | null = null;
  private partFill = 0;
  private len = 0;
  private skipLeft = 0;
  private index = 0;

  constructor(private readonly o: ReadFramesOptions) {}

  /** Records `chunk` completes, appended to `out`; a broken stream throws FramesStreamError after appending the records before the break. */
  push(chunk: Buffer, out: FrameRecord[]): void {
    const n = chunk.length;
    let pos = 0;
    while (pos < n) {
      switch (this.stage) {
        case LEN: {
          if (this.smallFill === 0 && n - pos >= 4) {
            this.len = chunk.readUInt32BE(pos);
            pos += 4;
          } else {
            pos = this.gather(chunk, pos, 4);
            if (this.smallFill < 4) return;
            this.len = this.small.readUInt32BE(0);
            this.smallFill = 0;
          }
          const len = this.len;
          // END; anything after it is refused: it is not ours to guess what it was
          if (len === 0) this.stage = DONE;
          else if (len > this.o.maxRecordBytes) this.stage = SKIP_HEAD;
          else this.stage = BODY;
          break;
        }
        case BODY: {
          const len = this.len;
          if (this.part === null && n - pos >= len) {
            out.push(this.record(chunk, pos, len));
            pos += len;
          } else {
            if (this.part === null) {
              this.part = Buffer.allocUnsafe(len);
              this.partFill = 0;
            }
            const k = Math.min(n - pos, len - this.partFill);
            chunk.copy(this.part, this.partFill, pos, pos + k);
            this.partFill += k;
            pos += k;
            if (this.partFill < len) return;
            out.push(this.record(this.part, 0, len));
            this.part = null;
          }
          this.index++;
          this.stage = LEN;
          break;
        }
        case SKIP_HEAD: {
          // the id is in the first bytes: keep them to name the record, drop the rest
          const head = Math.min(this.len, ID_HEAD);
          pos = this.gather(chunk, pos, head);
          if (this.smallFill < head) return;
          this.smallFill = 0;
          this.skipLeft = this.len - head;
          this.stage = SKIP;
          if (this.skipLeft === 0) this.skipped(out);
          break;
        }
        case SKIP: {
          const k = Math.min(n - pos, this.skipLeft);
          this.skipLeft -= k;
          pos += k;
          if (this.skipLeft > 0) return;
          this.skipped(out);
          break;
        }
        case MAGIC: {
          pos = this.gather(chunk, pos, FRAMES_MAGIC.length);
          if (this.smallFill < FRAMES_MAGIC.length) return;
          if (!this.small.subarray(0, FRAMES_MAGIC.length).equals(FRAMES_MAGIC)) {
            throw new FramesStreamError(`not a sample-frames stream (it must start with "${FRAMES_MAGIC.toString('latin1')}")`);
          }
          this.smallFill = 0;
          this.stage = LEN;
          break;
        }
        default:
          throw new FramesStreamError('bytes after the end marker');
      }
    }
  }

  /** The stream ended: throws FramesStreamError unless it ended right after its end marker. */
  end(): void {
    switch (this.stage) {
      case DONE:
        return;
      case MAGIC:
        throw new FramesStreamError(`not a sample-frames stream (it must start with "${FRAMES_MAGIC.toString('latin1')}")`);
      case LEN:
        throw new FramesStreamError(`stream cut before record ${this.index} (no end marker)`);
      case BODY:
        throw new FramesStreamError(`stream cut inside record ${this.index} (${this.partFill} of ${this.len} bytes)`);
      default:
        throw new FramesStreamError(`stream cut inside record ${this.index}`);
    }
  }

  /** an oversized record was dropped: name it (its id is in `small`) */
  private skipped(out: FrameRecord[]): void {
    const idLen = this.small[0];
    const id = 1 + idLen <= this.len ? this.small.toString('latin1', 1, 1 + idLen) : '';
    out.push({ index: this.index, id, error: `record of ${this.len} bytes is larger than the limit of ${this.o.maxRecordBytes}` });
    this.index++;
    this.stage = LEN;
  }

  /** copy bytes of chunk into `small` until it holds `want`; returns the new position */
  private gather(chunk: Buffer, pos: number, want: number): number {
    const k = Math.min(chunk.length - pos, want - this.smallFill);
    chunk.copy(this.small, this.smallFill, pos, pos + k);
    this.smallFill += k;
    return pos + k;
  }

  /** one whole record body at buf[at, at+len) */
  private record(buf: Buffer, at: number, len: number): FrameRecord {
    const index = this.index;
    const idLen = buf[at];
    if (1 + idLen + 4 > len) return { index, id: '', error: `record ${index}: id length ${idLen} runs past the record (${len} bytes)` };
    const id = buf.toString('latin1', at + 1, at + 1 + idLen);
    const metaLen = buf.readUInt32BE(at + 1 + idLen);
    const metaStart = at + 1 + idLen + 4;
    const end = at + len;
    if (metaStart + metaLen > end) return { index, id, error: `meta length ${metaLen} runs past the record (${len} bytes)` };
    return { index, id, meta: buf.toString('utf8', metaStart, metaStart + metaLen), payload: buf.subarray(metaStart + metaLen, end) };
  }
}

/**
 * The records of a frames stream, as they arrive: one array per chunk, holding every record
 * that chunk completed (none: nothing is yielded). A record that is broken inside its own
 * length (bad id, meta length past the end) comes with `error`, and the reader goes on with the
 * next one; a stream that does not start with MAGIC or stops before END throws
 * FramesStreamError, after yielding the records that arrived intact before the break.
 * Memory: the records of the chunks the caller still holds (see FramesDecoder).
 */
export async function* readFrames(src: AsyncIterable<Buffer>, o: ReadFramesOptions): AsyncGenerator<FrameRecord[]> {
  const d = new FramesDecoder(o);
  // for await returns the source (request stream) when the caller stops early or this throws
  for await (const chunk of src) {
    const out: FrameRecord[] = [];
    let broken: unknown = null;
    try {
      d.push(chunk, out);
    } catch (e) {
      broken = e;
    }
    if (out.length) yield out;
    if (broken) throw broken;
  }
  d.end();
}
