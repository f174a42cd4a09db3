// Property/fuzz checks of every input decoder (fast-check, seeded): JSONL, CSV, .npy, PNG, JPEG,
// bundle tar, index JSON, push body. Each class states its documented outcome and counts:
//   crash  an outcome other than the documented one (an unexpected exception, a multi-line or
//          empty reason, a 5xx, leftovers after a refused bundle)
//   hang   a case that did not finish within the per-case time limit
//   lost   a well-formed sample of the input that did not come out as a sample (or, for the KB,
//          a stored sample that is gone or changed after a hostile push)
// test/fuzz.test.ts runs every class with a few cases (npm test); scripts/fuzz.ts with many
// more (npm run fuzz, nightly) and prints the figures the README's Reliability section quotes.
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { deflateSync, crc32 } from 'node:zlib';
import { PNG } from 'pngjs';
import { EXIT, ReportedError, UsageError } from '../../src/errors.js';
import { exitCodeFor } from '../../src/commands/action.js';
import { csvLayout, decodeCsvLine } from '../../src/runtime/decode-csv.js';
import { decodeJsonBytes } from '../../src/runtime/decode-jsonl.js';
import { npyItems } from '../../src/runtime/decode-npy.js';
import { decodeImage } from '../../src/onnx/image.js';
import { DEFAULT_MAX_PIXELS } from '../../src/format/image-header.js';
import { byteLineChunks, lineChunks, lineTooLongReason } from '../../src/streams/lines.js';
import { badRecord, type Item } from '../../src/runtime/sample.js';
import { parseIndex } from '../../src/format/validate-index.js';
import { openBundle } from '../../src/rollout/bundle.js';
import { generateSigningKeys } from '../../src/format/signature.js';
import { SqliteKbStore } from '../../src/kb/sqlite-store.js';
import { kbPaths } from '../../src/kb/paths.js';
import { startKbServer } from '../../src/kb/server.js';
import { addDevice } from '../../src/kb/devices.js';
import { goodEntries, makeVersion, rawTarGz, type RawEntry } from '../helpers/rollout-fixtures.js';

export interface ClassResult {
  name: string;
  cases: number;
  crashes: number;
  hangs: number;
  lost: number;
  /** the first counterexample, shrunk, when there was a crash or hang */
  example?: string;
}

export interface FuzzClass {
  name: string;
  /** runs cases; resolves with the figures (never throws for a failing case) */
  run(o: { numRuns: number; seed: number; tmp: string; caseTimeoutMs: number }): Promise<ClassResult>;
}

const oneLine = (s: string) => s.length > 0 && !s.includes('\n');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Run one async property through fc.check and turn its report into figures. */
async function check<T>(name: string, arb: fc.Arbitrary<T>, body: (v: T, tally: { lost: number }) => Promise<void>, o: { numRuns: number; seed: number; caseTimeoutMs: number }): Promise<ClassResult> {
  const tally = { lost: 0 };
  let hangs = 0;
  const r = await fc.check(
    fc.asyncProperty(arb, async (v) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'hang'>((res) => (timer = setTimeout(() => res('hang'), o.caseTimeoutMs)));
      try {
        const out = await Promise.race([body(v, tally).then(() => 'ok' as const), timeout]);
        if (out === 'hang') {
          hangs++;
          throw new Error(`no outcome within ${o.caseTimeoutMs} ms`);
        }
      } finally {
        clearTimeout(timer);
      }
    }),
    { numRuns: o.numRuns, seed: o.seed, endOnFailure: true },
  );
  const crashes = r.failed && hangs === 0 ? 1 : 0;
  return {
    name,
    cases: r.numRuns,
    crashes,
    hangs: Math.min(hangs, 1),
    lost: tally.lost,
    ...(r.failed ? { example: `${String(r.errorInstance ?? 'interrupted').split('\n')[0]} | counterexample ${fc.stringify(r.counterexample).slice(0, 400)}` } : {}),
  };
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

/** bytes cut into chunks at the given (sorted, deduplicated) offsets */
function chunked(b: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let s = 0;
  for (const c of at) {
    if (c > s) out.push(b.subarray(s, c));
    s = Math.max(s, c);
  }
  if (s < b.length) out.push(b.subarray(s));
  return out;
}

const outcome = (it: Item) => (it.bad ? `bad:${it.reason}` : `ok:${Array.from(it.vec!).join(',')}`);

// ---- line-oriented text: JSONL and CSV ----------------------------------------------------------

const finite = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e30, max: 1e30 });
const junkLine = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.uint8Array({ maxLength: 60 }).map((a) => Buffer.from(a).toString('latin1')),
  fc.constantFrom('{', '{"x":', '{"x":[1,2', '{"x":"a"}', '{"x":[1e999]}', '[1,2]', 'null', '{"x":[1],"attrs":[1]}', '{"x":[1],"id":{}}', '\u0000', '"\\ud800"'),
);
const LINE_CAP = 4096; // a small cap, so cases reach it

export const jsonlClass: FuzzClass = {
  name: 'jsonl',
  run: (o) =>
    check(
      'jsonl',
      fc.record({
        lines: fc.array(fc.oneof(fc.array(finite, { minLength: 1, maxLength: 8 }).map((x) => ({ x })), junkLine, fc.constant(`{"x":[${'1,'.repeat(LINE_CAP)}1]}`)), { maxLength: 30 }),
        bom: fc.boolean(),
        crlf: fc.boolean(),
        cuts: fc.array(fc.nat(), { maxLength: 12 }),
      }),
      async (v, tally) => {
        const text = v.lines.map((l) => (typeof l === 'string' ? l.replace(/\r?\n/g, ' ') : JSON.stringify(l))).join(v.crlf ? '\r\n' : '\n');
        const bytes = Buffer.concat([v.bom ? Buffer.from([0xef, 0xbb, 0xbf]) : Buffer.alloc(0), Buffer.from(text, 'utf8')]);
        const decode = async (chunks: Buffer[]) => {
          const out: Item[] = [];
          let n = 0;
          for await (const { buf, starts, ends, tooLong } of byteLineChunks(Readable.from(chunks), LINE_CAP)) {
            for (let k = 0; k < starts.length; k++) {
              n++;
              const it = tooLong?.includes(k) ? badRecord(`line ${n}`, null, lineTooLongReason(LINE_CAP)) : decodeJsonBytes(buf, starts[k], ends[k], n, null, null);
              if (it) out.push(it);
            }
          }
          return out;
        };
        const whole = await decode([bytes]);
        const cut = await decode(chunked(bytes, v.cuts));
        const a = whole.map(outcome);
        const b = cut.map(outcome);
        const at = a.findIndex((x, i) => x !== b[i]);
        assert(a.length === b.length && at < 0, `outcome depends on how the input is chunked: record ${at}: ${a[at]?.slice(0, 200)} vs ${b[at]?.slice(0, 200)} (${a.length} vs ${b.length} records)`);
        for (const it of cut) if (it.bad) assert(oneLine(it.reason), `reason not one line: ${JSON.stringify(it.reason)}`);
        // every well-formed record comes out as a sample with its values
        const wanted = v.lines.filter((l): l is { x: number[] } => typeof l !== 'string' && JSON.stringify(l).length <= LINE_CAP);
        const got = new Set(cut.filter((i) => !i.bad).map(outcome));
        for (const w of wanted) if (!got.has(`ok:${w.x.map((x) => Math.fround(x)).join(',')}`)) tally.lost++;
      },
      o,
    ),
};

export const csvClass: FuzzClass = {
  name: 'csv',
  run: (o) =>
    check(
      'csv',
      fc.record({
        width: fc.integer({ min: 1, max: 5 }),
        rows: fc.array(fc.oneof(fc.array(finite, { minLength: 1, maxLength: 6 }), junkLine), { maxLength: 30 }),
        cuts: fc.array(fc.nat(), { maxLength: 12 }),
        bom: fc.boolean(),
      }),
      async (v, tally) => {
        const header = ['id', ...Array.from({ length: v.width }, (_, i) => `f${i}`)].join(',');
        const lines = v.rows.map((r, i) => (typeof r === 'string' ? r.replace(/\r?\n/g, ' ') : [`r${i}`, ...r].join(',')));
        const bytes = Buffer.concat([v.bom ? Buffer.from([0xef, 0xbb, 0xbf]) : Buffer.alloc(0), Buffer.from([header, ...lines].join('\n'))]);
        let layout: ReturnType<typeof csvLayout> | null = null;
        const out: Item[] = [];
        let n = 0;
        for await (const chunk of lineChunks(Readable.from(chunked(bytes, v.cuts)), LINE_CAP)) {
          for (const l of chunk) {
            n++;
            if (l === null) {
              out.push(badRecord(`line ${n}`, null, lineTooLongReason(LINE_CAP)));
              continue;
            }
            if (!layout) {
              layout = csvLayout(l, undefined, undefined);
              assert(layout.features.length === v.width, `header "${l}" read as ${layout.features.length} feature columns`);
              continue;
            }
            const it = decodeCsvLine(l, n, layout, null);
            if (it) out.push(it);
          }
        }
        for (const it of out) if (it.bad) assert(oneLine(it.reason), `reason not one line: ${JSON.stringify(it.reason)}`);
        const got = new Set(out.filter((i) => !i.bad).map(outcome));
        v.rows.forEach((r) => {
          if (typeof r !== 'string' && r.length === v.width && !got.has(`ok:${r.map((x) => Math.fround(x)).join(',')}`)) tally.lost++;
        });
      },
      o,
    ),
};

// ---- .npy --------------------------------------------------------------------------------------

function npyBytes(descr: string, shape: string, data: Buffer, version = 1): Buffer {
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  dict += ' '.repeat((64 - ((10 + dict.length + 1) % 64)) % 64) + '\n';
  const head = Buffer.alloc(version === 1 ? 10 : 12);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]).copy(head);
  head[6] = version;
  if (version === 1) head.writeUInt16LE(dict.length, 8);
  else head.writeUInt32LE(dict.length, 8);
  return Buffer.concat([head, Buffer.from(dict, 'latin1'), data]);
}

export const npyClass: FuzzClass = {
  name: 'npy',
  run: (o) =>
    check(
      'npy',
      fc.record({
        descr: fc.constantFrom('<f4', '>f4', '<f8', '|u1', '<i4', 'f4', '<f2'),
        dims: fc.array(fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constantFrom(0, 1e11, 65536, 2 ** 40, -1)), { minLength: 0, maxLength: 4 }),
        rows: fc.integer({ min: 0, max: 8 }),
        extra: fc.integer({ min: -12, max: 12 }),
        version: fc.constantFrom(1, 2),
        flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        cuts: fc.array(fc.nat(), { maxLength: 6 }),
      }),
      async (v, tally) => {
        const shape = `(${v.dims.map((d) => `${d},`).join(' ')})`;
        const feats = v.dims.slice(1).reduce((a, b) => a * b, 1);
        const item = v.descr.endsWith('8') ? 8 : 4;
        const n = Math.max(0, Math.min(v.rows * feats * item + v.extra, 1 << 16));
        const data = Buffer.alloc(n);
        for (let i = 0; i < n; i++) data[i] = (i * 31) & 0x3f; // small positive floats, mostly
        const bytes = npyBytes(v.descr, shape, data, v.version);
        const clean = v.flips.length === 0;
        for (const [at, b] of v.flips) bytes[at % bytes.length] = b;
        let items = 0;
        let good = 0;
        try {
          for await (const batch of npyItems(Readable.from(chunked(bytes, v.cuts)), 'x.npy', null, {})) {
            for (const it of batch) {
              items++;
              if (it.bad) assert(oneLine(it.reason), `reason not one line: ${it.reason}`);
              else good++;
            }
            // a bound on the work: never more items than rows the bytes can hold, plus one tail record
            assert(items <= bytes.length + 1, `${items} items out of ${bytes.length} bytes`);
          }
        } catch (e) {
          assert(e instanceof UsageError && oneLine(e.message), `unexpected error: ${(e as Error).stack}`);
          return;
        }
        // a well-formed float file yields one sample per complete row
        const wellFormed = clean && v.extra === 0 && ['<f4', '>f4', '<f8'].includes(v.descr) && v.dims.length >= 1 && v.dims.every((d) => Number.isInteger(d) && d >= 1 && d <= 6) && v.dims[0] === v.rows;
        if (wellFormed && good < v.rows) tally.lost += v.rows - good;
      },
      o,
    ),
};

// ---- images ------------------------------------------------------------------------------------

function pngChunk(type: string, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(data.length, 0);
  h.write(type, 4, 'latin1');
  const c = Buffer.alloc(4);
  c.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'latin1'), data])) >>> 0);
  return Buffer.concat([h, data, c]);
}

/** A PNG whose header declares w x h and whose (valid zlib) data is `raw`. */
export function pngDeclaring(w: number, h: number, raw: Buffer, colour = 6): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = colour;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))]);
}

const imageMutation = fc.record({
  w: fc.integer({ min: 1, max: 12 }),
  h: fc.integer({ min: 1, max: 12 }),
  seed: fc.nat(),
  flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
  truncate: fc.option(fc.nat(), { nil: undefined }),
  // header sizes: zero, just over the cap, the campaign's 16000x16000, the format maximum, small
  declare: fc.option(fc.constantFrom<[number, number]>([0, 0], [0, 5], [1200, 900], [7000, 7000], [16000, 16000], [65535, 65535], [40, 30]), { nil: undefined }),
});

/**
 * The pixel cap the image cases decode under: 1 MP instead of DEFAULT_MAX_PIXELS keeps each case
 * in milliseconds (jpeg-js spends seconds on a 600-byte file declaring 36 MP of empty blocks);
 * the cap logic is the same, and the full cap is exercised by the child-process tests.
 */
const FUZZ_MAX_PIXELS = 1_000_000;

function checkImageOutcome(kind: 'png' | 'jpeg', bytes: Buffer, intact: boolean, tally: { lost: number }): void {
  try {
    const img = decodeImage(kind, bytes, FUZZ_MAX_PIXELS);
    assert(img.width * img.height <= FUZZ_MAX_PIXELS && FUZZ_MAX_PIXELS <= DEFAULT_MAX_PIXELS, `decoded ${img.width}x${img.height}, over the cap`);
    assert(img.data.length >= img.width * img.height * 4, 'pixel buffer shorter than the image');
  } catch (e) {
    const m = (e as Error).message;
    assert(e instanceof Error && oneLine(m) && /^(undecodable (PNG|JPEG)|(PNG|JPEG) (of \d+x\d+|with|without)|not a PNG or JPEG)/.test(m), `unexpected error: ${(e as Error).stack}`);
    if (intact) tally.lost++;
  }
}

export const pngClass: FuzzClass = {
  name: 'png',
  run: (o) =>
    check(
      'png',
      imageMutation,
      async (v, tally) => {
        const p = new PNG({ width: v.w, height: v.h });
        for (let i = 0; i < p.data.length; i++) p.data[i] = (v.seed + i * 97) & 0xff;
        let bytes: Buffer = PNG.sync.write(p);
        if (v.declare) bytes = pngDeclaring(v.declare[0], v.declare[1], Buffer.alloc(Math.min(4096, v.w * v.h * 4)));
        bytes = Buffer.from(bytes);
        for (const [at, b] of v.flips) bytes[at % bytes.length] = b;
        if (v.truncate !== undefined) bytes = bytes.subarray(0, v.truncate % (bytes.length + 1));
        checkImageOutcome('png', bytes, !v.declare && v.flips.length === 0 && v.truncate === undefined, tally);
      },
      o,
    ),
};

export const jpegClass: FuzzClass = {
  name: 'jpeg',
  run: async (o) => {
    // jpeg-js's encoder builds large tables per call: a few base images made once, mutated per case
    const { createRequire } = await import('node:module');
    const jpeg = createRequire(import.meta.url)('jpeg-js') as { encode: (img: { width: number; height: number; data: Buffer }, q: number) => { data: Buffer } };
    const bases = [
      [1, 1],
      [3, 7],
      [8, 8],
      [12, 5],
      [16, 16],
    ].map(([w, h], k) => {
      const data = Buffer.alloc(w * h * 4);
      for (let i = 0; i < data.length; i++) data[i] = (k * 31 + i * 57) & 0xff;
      return Buffer.from(jpeg.encode({ width: w, height: h, data }, 80).data);
    });
    return check(
      'jpeg',
      imageMutation,
      async (v, tally) => {
        let bytes = Buffer.from(bases[v.seed % bases.length]);
        if (v.declare) {
          // rewrite the SOF0 frame size: a small file declaring another frame
          const at = bytes.indexOf(Buffer.from([0xff, 0xc0]));
          if (at > 0) {
            bytes.writeUInt16BE(v.declare[1], at + 5);
            bytes.writeUInt16BE(v.declare[0], at + 7);
          }
        }
        for (const [at, b] of v.flips) bytes[at % bytes.length] = b;
        if (v.truncate !== undefined) bytes = bytes.subarray(0, v.truncate % (bytes.length + 1));
        checkImageOutcome('jpeg', bytes, !v.declare && v.flips.length === 0 && v.truncate === undefined, tally);
      },
      o,
    );
  },
};

// ---- bundle tar --------------------------------------------------------------------------------

export const bundleClass: FuzzClass = {
  name: 'bundle tar',
  run: async (o) => {
    const keys = generateSigningKeys();
    const other = generateSigningKeys();
    const v = makeVersion(keys, 3, [{ id: 'global', seed: 1 }, { id: 'berlin', seed: 2, site: 'berlin' }]);
    const good = goodEntries(v);
    const evil = makeVersion(other, 3, [{ id: 'global', seed: 5 }]);
    let n = 0;
    return check(
      'bundle tar',
      fc.record({
        order: fc.array(fc.nat(), { maxLength: 6 }),
        drop: fc.array(fc.nat(), { maxLength: 2 }),
        add: fc.array(
          fc.oneof(
            fc.constantFrom<RawEntry>(
              { path: '../escape.onnx', data: Buffer.from('x') },
              { path: '/etc/passwd', data: Buffer.from('x') },
              { path: 'models/link.onnx', type: 'SymbolicLink', linkpath: '/etc/passwd' },
              { path: 'fifo', type: 'FIFO' },
              { path: 'canary.jsonl', data: Buffer.from('{"task":"global","x":[1],"expected":[1]}\n') },
              { path: 'index.json', data: evil.indexBytes },
              { path: 'index.json.sig', data: Buffer.from(evil.sig) },
              { path: `models/${'0'.repeat(64)}.onnx`, data: Buffer.alloc(10) },
            ),
            fc.record({ path: fc.string({ maxLength: 20 }), data: fc.uint8Array({ maxLength: 32 }).map((a) => Buffer.from(a)) }),
          ),
          { maxLength: 2 },
        ),
        gzFlips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
        truncate: fc.option(fc.nat(), { nil: undefined }),
      }),
      async (c, tally) => {
        let entries = good.map((e) => ({ ...e }));
        for (const d of c.drop) entries.splice(d % entries.length, 1);
        for (const k of c.order) if (entries.length > 1) entries.push(entries.splice(k % entries.length, 1)[0]);
        entries = [...entries, ...c.add];
        let gz: Buffer;
        try {
          gz = rawTarGz(entries);
        } catch {
          return; // the tar writer itself refuses the entry (e.g. an empty path): not a case
        }
        for (const [at, b] of c.gzFlips) gz[at % gz.length] = b;
        if (c.truncate !== undefined) gz = gz.subarray(0, c.truncate % (gz.length + 1));
        const file = join(o.tmp, `b${n}.tar.gz`);
        const root = join(o.tmp, `t${n++}`);
        writeFileSync(file, gz);
        const intact = c.drop.length === 0 && c.add.length === 0 && c.gzFlips.length === 0 && c.truncate === undefined;
        try {
          const b = await openBundle(file, { tmpRoot: root, publicKeyPem: keys.publicKey });
          // accepted: only ever the signed index with its own verified models
          assert(b.indexBytes.equals(v.indexBytes), 'accepted an index other than the signed one');
          for (const [s, p] of b.models) assert(existsSync(p) && v.models.has(s), `model ${s} accepted but not in the signed index`);
          b.dispose();
        } catch (e) {
          assert(e instanceof ReportedError && (exitCodeFor(e) === EXIT.VERIFY || exitCodeFor(e) === EXIT.FAILURE) && oneLine(e.message), `unexpected error: ${(e as Error).stack}`);
          assert(!existsSync(root) || readdirSync(root).length === 0, `a refused bundle left ${existsSync(root) ? readdirSync(root).join(',') : ''}`);
          if (intact) tally.lost++;
        }
      },
      o,
    );
  },
};

// ---- index JSON --------------------------------------------------------------------------------

/** Replace the value at a random path of a JSON value by another JSON value. */
function mutate(x: unknown, path: number[], repl: unknown): unknown {
  if (path.length === 0 || x === null || typeof x !== 'object') return repl;
  const keys = Object.keys(x as object);
  if (keys.length === 0) return repl;
  const k = keys[path[0] % keys.length];
  const copy: Record<string, unknown> | unknown[] = Array.isArray(x) ? [...x] : { ...(x as Record<string, unknown>) };
  (copy as Record<string, unknown>)[k] = mutate((x as Record<string, unknown>)[k], path.slice(1), repl);
  return copy;
}

export const indexClass: FuzzClass = {
  name: 'index JSON',
  run: async (o) => {
    const v = makeVersion(generateSigningKeys(), 2, [{ id: 'global', seed: 1 }, { id: 'b', seed: 2, site: 'b' }]);
    return check(
      'index JSON',
      fc.oneof(
        fc.record({ path: fc.array(fc.nat(), { maxLength: 6 }), repl: fc.jsonValue({ maxDepth: 3 }) }).map((m) => JSON.stringify(mutate(v.index, m.path, m.repl))),
        fc.string({ maxLength: 200 }),
        fc.constantFrom('null', '[]', '{}', '{"format":"sedna-ll/index@1"}', JSON.stringify(v.index).slice(0, 100)),
      ),
      async (text) => {
        try {
          const idx = parseIndex(Buffer.from(text), 'index.json');
          assert(idx && Array.isArray(idx.tasks) && idx.tasks.every((t) => /^[0-9a-f]{64}$/.test(t.model.sha256)), 'accepted an index without valid tasks');
        } catch (e) {
          assert(e instanceof Error && oneLine(e.message) && e.message.startsWith('index.json'), `unexpected error: ${(e as Error).stack}`);
        }
      },
      o,
    );
  },
};

// ---- push body (KB POST /v1/samples over loopback HTTP) ----------------------------------------

export const pushClass: FuzzClass = {
  name: 'push body',
  run: async (o) => {
    const dir = join(o.tmp, 'kb');
    mkdirSync(dir, { recursive: true });
    const store = new SqliteKbStore(kbPaths(dir));
    const { token } = await addDevice(store, 'gw-1');
    const srv = await startKbServer(store, { host: '127.0.0.1', port: 0, bodyLimit: 256 * 1024 });
    const f32 = (xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
    const sample = (id: string, p: Buffer) => ({ id, task: 't', attrs: {}, payload_kind: 'f32', payload_b64: p.toString('base64'), payload_sha: sha(p), pred_label: null, scores: [], hard: true, hard_reasons: [], unseen: false, unseen_reason: null, kb_version: null, created_at: 1 });
    // the samples every case must leave untouched
    const keep = Array.from({ length: 5 }, (_, i) => sample(`0190aaaa-0000-7000-8000-00000000000${i}`, f32([i, i + 1])));
    const first = await fetch(`${srv.url}/v1/samples`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ samples: keep }) });
    assert(first.status === 200, `seed push answered ${first.status}`);
    try {
      return await check(
        'push body',
        fc.oneof(
          fc.record({ path: fc.array(fc.nat(), { maxLength: 5 }), repl: fc.jsonValue({ maxDepth: 3 }), k: fc.nat() }).map((m) => ({ body: JSON.stringify(mutate({ samples: [keep[m.k % 5], sample(`0190bbbb-0000-7000-8000-${String(m.k % 1e12).padStart(12, '0')}`, f32([m.k]))] }, m.path, m.repl)), gzip: false })),
          fc.record({ body: fc.string({ maxLength: 300 }), gzip: fc.boolean() }),
          fc.constantFrom({ body: '{"samples":' + '['.repeat(5000), gzip: false }, { body: JSON.stringify({ samples: [sample(keep[0].id, f32([9, 9]))] }), gzip: false }, { body: JSON.stringify({ samples: [sample('imp-' + 'a'.repeat(40), f32([1]))] }), gzip: false }),
        ),
        async (c, tally) => {
          const res = await fetch(`${srv.url}/v1/samples`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(c.gzip ? { 'content-encoding': 'gzip' } : {}) }, body: c.body });
          const text = await res.text();
          assert([200, 400, 409, 413, 415].includes(res.status), `answered ${res.status}: ${text.slice(0, 200)}`);
          const j = JSON.parse(text) as { stored?: string[]; error?: string };
          if (res.status >= 400) assert(typeof j.error === 'string' && oneLine(j.error), `error answer without a one-line error: ${text.slice(0, 200)}`);
          for (const s of keep) {
            const got = await store.getSample(s.id);
            if (!got || got.payload_sha !== s.payload_sha) tally.lost++;
          }
        },
        o,
      );
    } finally {
      await srv.close();
      await store.close();
    }
  },
};

export const FUZZ_CLASSES: FuzzClass[] = [jsonlClass, csvClass, npyClass, pngClass, jpegClass, bundleClass, indexClass, pushClass];
