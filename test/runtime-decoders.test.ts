// runtime/decode-*.ts in process: the .npy stream decoder gives the same samples however the
// bytes are chunked, reports truncation and trailing bytes as bad records, converts big-endian
// float64; JSON records take defaults and refuse wrong types by field; CSV column specs resolve
// names, numbers and ranges and name a bad item.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { ReportedError, UsageError } from '../src/errors.js';
import { resolveColumns } from '../src/runtime/decode-csv.js';
import { decodeJsonRecord } from '../src/runtime/decode-jsonl.js';
import { type NpyHeader, npyItems, npyRowFile, parseNpyHeader } from '../src/runtime/decode-npy.js';
import type { Item } from '../src/runtime/sample.js';

/** A whole .npy file: npyRowFile writes the header for shape (1, ...rest); patch the leading dim. */
function npyFile(h: Omit<NpyHeader, 'dataOffset'>, data: Buffer): Buffer {
  const one = npyRowFile({ ...h, shape: [1, ...h.shape.slice(1)], dataOffset: 0 }, Buffer.alloc(0));
  const text = one.subarray(10).toString('latin1').replace("'shape': (1,", `'shape': (${h.shape[0]},`);
  const head = Buffer.alloc(10);
  one.copy(head, 0, 0, 10);
  head.writeUInt16LE(text.length, 8);
  return Buffer.concat([head, Buffer.from(text, 'latin1'), data]);
}

function f32le(values: number[]): Buffer {
  return Buffer.from(Float32Array.from(values).buffer);
}

async function decodeNpy(file: Buffer, chunk: number): Promise<Item[]> {
  const parts: Buffer[] = [];
  for (let o = 0; o < file.length; o += chunk) parts.push(file.subarray(o, o + chunk));
  const out: Item[] = [];
  for await (const items of npyItems(Readable.from(parts), 'x.npy', 'global', { site: 'a' })) out.push(...items);
  return out;
}

const vecs = (items: Item[]) => items.map((i) => (i.bad ? `bad: ${i.reason}` : Array.from(i.vec!)));

test('npy: every chunking of the same file gives the same samples, in row order, with their ids and payloads', async () => {
  const rows = [
    [1, 2, 3, 4, 5, 6],
    [-1, 0.5, 0.25, 8, 9, 10],
    [7, 7, 7, 7, 7, 7],
  ];
  const file = npyFile({ dtype: 'f4', littleEndian: true, shape: [3, 2, 3] }, f32le(rows.flat()));
  const whole = await decodeNpy(file, file.length);
  assert.deepEqual(vecs(whole), rows);
  for (const chunk of [1, 3, 7, 24, 64, 100]) assert.deepEqual(vecs(await decodeNpy(file, chunk)), rows, `chunks of ${chunk} bytes`);
  const first = whole[0];
  assert.ok(!('bad' in first));
  assert.equal(first.id, 1);
  assert.deepEqual([first.task, first.attrs, first.payloadKind], ['global', { site: 'a' }, 'npy']);
  // the payload is a one-row .npy of the source dtype that parses back to the row
  const p = first.payload();
  const h = parseNpyHeader(p, 'row')!;
  assert.deepEqual([h.dtype, h.shape], ['f4', [1, 2, 3]]);
  assert.deepEqual(Array.from(new Float32Array(p.buffer.slice(p.byteOffset + h.dataOffset, p.byteOffset + p.length))), rows[0]);
});

test('npy: big-endian float64 rows are converted; a NaN row is a bad record; truncation and trailing bytes are reported', async () => {
  const data = Buffer.alloc(4 * 8);
  [1.5, -2.25, Number.NaN, 4].forEach((v, i) => data.writeDoubleBE(v, i * 8));
  const items = await decodeNpy(npyFile({ dtype: 'f8', littleEndian: false, shape: [2, 2] }, data), 5);
  assert.deepEqual(vecs(items), [[1.5, -2.25], 'bad: value 0 is NaN (not a finite float32)']);

  const short = npyFile({ dtype: 'f4', littleEndian: true, shape: [3, 2] }, f32le([1, 2, 3, 4, 5]));
  assert.deepEqual(vecs(await decodeNpy(short, 4)), [[1, 2], [3, 4], 'bad: file ends after 2 of 3 rows (truncated)']);

  const long = npyFile({ dtype: 'f4', littleEndian: true, shape: [1, 2] }, f32le([1, 2, 3]));
  assert.deepEqual(vecs(await decodeNpy(long, 3)), [[1, 2], 'bad: 4 bytes after the last row']);

  await assert.rejects(decodeNpy(long.subarray(0, 30), 7), (e: unknown) => e instanceof ReportedError && /truncated \.npy header/.test(e.message));
});

test('npy header: refusals name the file and the reason', () => {
  const ok = npyFile({ dtype: 'f4', littleEndian: true, shape: [2, 3] }, Buffer.alloc(0));
  const edit = (from: string, to: string) => {
    const b = Buffer.from(ok);
    const i = b.indexOf(from, 10, 'latin1');
    b.write(to.padEnd(from.length, ' '), i, 'latin1');
    return b;
  };
  assert.throws(() => parseNpyHeader(edit("'<f4'", "'<i4'"), 'a.npy'), /a\.npy: dtype "<i4" not supported/);
  assert.throws(() => parseNpyHeader(edit('False', 'True'), 'a.npy'), /Fortran-order/);
  assert.throws(() => parseNpyHeader(edit('(2, 3,)', '(2, 0,)'), 'a.npy'), /zero-size feature dimension/);
  assert.throws(() => parseNpyHeader(edit('(2, 3,)', '()'), 'a.npy'), /needs a leading sample dimension/);
  const v9 = Buffer.from(ok);
  v9[6] = 9;
  assert.throws(() => parseNpyHeader(v9, 'a.npy'), /unsupported \.npy version 9/);
  assert.equal(parseNpyHeader(ok.subarray(0, 9), 'a.npy'), null, 'too short yet: wait for more bytes');
});

test('JSON records: defaults for id, task and attrs; record attrs are normalised (keys trimmed and lower-cased, values without spaces, _ as -) and win over the defaults; wrong types are refused by field', () => {
  const s = decodeJsonRecord({ x: [1, 2] }, 'line 3', 3, 'global', { site: 'a' });
  assert.ok(!('bad' in s));
  assert.deepEqual([s.id, s.task, s.attrs, Array.from(s.vec!)], [3, 'global', { site: 'a' }, [1, 2]]);
  assert.deepEqual(Array.from(s.payload()), Array.from(f32le([1, 2])));

  const t = decodeJsonRecord({ id: 'r-1', x: [0], attrs: { ' Site': 'New York', Floor: 2, lane_id: 'a_b' }, task: 'lobby' }, 'line 4', 4, 'global', { site: 'a', cam: '1' });
  assert.ok(!('bad' in t));
  assert.deepEqual([t.id, t.task, t.attrs], ['r-1', 'lobby', { site: 'NewYork', cam: '1', floor: '2', lane_id: 'a-b' }]);

  const bad = (o: unknown) => {
    const r = decodeJsonRecord(o, 'line 9', 9, null, null);
    return r.bad ? r.reason : 'ok';
  };
  assert.equal(bad([1, 2]), 'expected a JSON object {"x": [...]}');
  assert.equal(bad({ x: [1], id: { a: 1 } }), '"id" must be a string or a number');
  assert.equal(bad({ y: [1] }), 'missing "x" (an array of numbers)');
  assert.equal(bad({ x: [1], attrs: [1] }), '"attrs" must be an object');
  assert.equal(bad({ x: [1], attrs: { a: { b: 1 } } }), 'attrs.a must be a string or a number');
  assert.equal(bad({ x: [1], task: 5 }), '"task" must be a string');
  assert.equal(bad({ x: [1, true] }), 'x[1] is not a number');
  assert.equal(bad({ x: [], task: null, id: null, attrs: null }), 'ok', 'null fields take the defaults; an empty x is the model shape check’s business');
});

test('CSV columns: names, 1-based numbers and ranges, name ranges in header order, blanks skipped; a bad item is named', () => {
  const header = ['id', 'site', 'px0', 'px1', 'px2', 'label'];
  assert.deepEqual(resolveColumns('px0..px2', header, '--features'), [2, 3, 4]);
  assert.deepEqual(resolveColumns('3-5, 2', header, '--features'), [2, 3, 4, 1]);
  assert.deepEqual(resolveColumns('site,,label', header, '--attrs'), [1, 5]);
  assert.deepEqual(resolveColumns('6', header, '--features'), [5]);
  const usage = (spec: string, re: RegExp) => assert.throws(() => resolveColumns(spec, header, '--features'), (e: unknown) => e instanceof UsageError && re.test(e.message));
  usage('0', /--features "0": columns are 1\.\.6/);
  usage('5-3', /columns are 1\.\.6/);
  usage('7', /columns are 1\.\.6/);
  usage('px2..px0', /"px2\.\.px0": not a column range of the header/);
  usage('nope', /"nope": no such column in the CSV header/);
});
