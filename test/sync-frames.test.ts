// Binary push framing (format/sample-frames.ts, kb/sample-ingest.ts, sync/negotiate.ts):
//  - the reader in-process: any chunking, broken records skipped and named, oversized records
//    dropped without buffering, cut / foreign / trailing streams refused;
//  - a real `kb serve` reading frames: malformed records rejected in the ack while their
//    neighbours are stored, gzip, a cut stream keeps what arrived before the cut;
//  - negotiation both ways with real processes: a new edge and a new KB use frames; a KB that
//    does not announce them (kb serve --json-push-only, as an old KB) gets JSON; an edge that
//    sends JSON (--framing json, as an old edge) is served as before.
// Kill -9 / cut / restart cases for frames run in sync-reliability.test.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { FRAMES_CONTENT_TYPE, FRAMES_MAGIC, FramesDecoder, FramesStreamError, assembleFrames, encodeRecordHead, readFrames, type FrameRecord } from '../src/format/sample-frames.js';
import { sedna } from './helpers/cli.js';
import { startTestKb } from './helpers/kb-server.js';
import { edgeIds, kbSamples, makeEdge, sednaAsync, seedOutbox, suiteKb } from './helpers/sync-edge.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** the meta JSON of a valid sample with this payload (null: payload_kind none) */
function meta(payload: Buffer | null, over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    task: 'global',
    attrs: { site: 'a' },
    payload_kind: payload ? 'f32' : 'none',
    payload_sha: sha(payload ?? Buffer.alloc(0)),
    pred_label: '1',
    scores: [0.6, 0.4],
    hard: true,
    hard_reasons: ['margin'],
    unseen: false,
    unseen_reason: null,
    kb_version: null,
    created_at: 1_700_000_000_000,
    ...over,
  });
}

function record(id: string, metaText: string, payload: Buffer | null): Buffer[] {
  const p = payload ?? Buffer.alloc(0);
  return [encodeRecordHead(id, metaText, p.length), p];
}

function frames(records: Buffer[][]): Buffer {
  const parts = records.flat();
  return assembleFrames(parts, parts.reduce((a, b) => a + b.length, 0));
}

async function* chunked(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function readAll(buf: Buffer, size: number, maxRecordBytes = 1 << 20): Promise<FrameRecord[]> {
  const out: FrameRecord[] = [];
  for await (const recs of readFrames(chunked(buf, size), { maxRecordBytes })) for (const r of recs) out.push({ ...r, payload: r.payload ? Buffer.from(r.payload) : undefined });
  return out;
}

describe('sample frames reader', () => {
  const p1 = Buffer.from(Float32Array.from([1, 2, 3]).buffer);
  const p2 = Buffer.alloc(5000, 7);

  it('reads the same records whatever the chunking (1 byte, 7 bytes, whole)', async () => {
    const body = frames([record('id-000001', meta(p1), p1), record('id-000002', meta(null), null), record('id-000003', meta(p2), p2)]);
    for (const size of [1, 7, 4096, body.length]) {
      const got = await readAll(body, size);
      assert.deepEqual(
        got.map((r) => [r.id, r.error, r.payload?.length]),
        [
          ['id-000001', undefined, 12],
          ['id-000002', undefined, 0],
          ['id-000003', undefined, 5000],
        ],
        `chunks of ${size}`,
      );
      assert.ok(got[2].payload!.equals(p2));
      assert.equal(JSON.parse(got[0].meta!).payload_sha, sha(p1));
    }
  });

  it('a record broken inside its own length is named and skipped; its neighbours are read', async () => {
    // meta length past the end of the record
    const broken = Buffer.alloc(4 + 1 + 9 + 4 + 3);
    broken.writeUInt32BE(1 + 9 + 4 + 3, 0);
    broken[4] = 9;
    broken.write('id-broken', 5, 'latin1');
    broken.writeUInt32BE(1000, 14);
    // id length past the end of the record
    const noId = Buffer.alloc(4 + 3);
    noId.writeUInt32BE(3, 0);
    noId[4] = 200;
    const body = frames([record('id-000001', meta(p1), p1), [broken], [noId], record('id-000003', meta(p2), p2)]);
    const got = await readAll(body, 3);
    assert.deepEqual(
      got.map((r) => [r.id, !!r.error]),
      [
        ['id-000001', false],
        ['id-broken', true],
        ['', true],
        ['id-000003', false],
      ],
    );
    assert.match(got[1].error!, /meta length 1000 runs past the record/);
  });

  it('an oversized record is dropped as it streams by and named; the next one is read', async () => {
    const big = Buffer.alloc(64 * 1024, 1);
    const body = frames([record('id-big-0001', meta(big), big), record('id-000002', meta(p1), p1)]);
    const got = await readAll(body, 1000, 16 * 1024);
    assert.equal(got.length, 2);
    assert.equal(got[0].id, 'id-big-0001');
    assert.match(got[0].error!, /larger than the limit of 16384/);
    assert.equal(got[1].id, 'id-000002');
    assert.ok(got[1].payload!.equals(p1));
  });

  it('refuses a stream without the magic, one cut before its end marker, and bytes after it', async () => {
    const good = frames([record('id-000001', meta(p1), p1)]);
    await assert.rejects(readAll(Buffer.from('{"samples":[]}'), 64), (e: Error) => e instanceof FramesStreamError && /must start with "SLF1"/.test(e.message));
    // cut: the records before the cut are yielded, then the error
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const recs of readFrames(chunked(good.subarray(0, good.length - 4), 5), { maxRecordBytes: 1 << 20 })) for (const r of recs) seen.push(r.id);
      })(),
      (e: Error) => e instanceof FramesStreamError && /no end marker/.test(e.message),
    );
    assert.deepEqual(seen, ['id-000001']);
    await assert.rejects(readAll(good.subarray(0, good.length - 8), 5), /stream cut inside record 0/);
    await assert.rejects(readAll(Buffer.concat([good, Buffer.from('x')]), 5), /bytes after the end marker/);
    assert.ok(good.subarray(0, 4).equals(FRAMES_MAGIC));
  });
});

describe('sample frames decoder (one synchronous pass per chunk)', () => {
  const p1 = Buffer.from(Float32Array.from([1, 2, 3]).buffer);
  const p2 = Buffer.alloc(700, 7);
  const big = Buffer.alloc(300, 5);
  // meta length past the end of the record: malformed, between two good records
  const broken = Buffer.alloc(4 + 1 + 9 + 4 + 3);
  broken.writeUInt32BE(1 + 9 + 4 + 3, 0);
  broken[4] = 9;
  broken.write('id-broken', 5, 'latin1');
  broken.writeUInt32BE(1000, 14);
  const body = frames([record('id-000001', meta(p1), p1), [broken], record('id-000002', meta(null), null), record('id-big-0001', meta(big), big), record('id-000003', meta(p2), p2)]);
  // every record fits in `limit`; with 600, id-big-0001 (~650 bytes) and id-000003 (~1 KB) do not
  const limit = 1500;
  const summary = (rs: FrameRecord[]) => rs.map((r) => [r.index, r.id, r.error ? r.error.replace(/\d+ bytes/g, 'N bytes') : null, r.meta ?? null, r.payload ? r.payload.toString('hex') : null]);

  /** decode `chunks` with a fresh decoder: the records, in order, and the error at the end (if any) */
  function decode(chunks: Buffer[], maxRecordBytes = limit): { recs: FrameRecord[]; err: Error | null } {
    const d = new FramesDecoder({ maxRecordBytes });
    const recs: FrameRecord[] = [];
    try {
      for (const c of chunks) d.push(c, recs);
      d.end();
    } catch (e) {
      return { recs, err: e as Error };
    }
    return { recs, err: null };
  }

  const whole = decode([body]);

  it('parses every record of a chunk in one pass; the malformed one is named between its good neighbours', () => {
    assert.equal(whole.err, null);
    assert.deepEqual(
      whole.recs.map((r) => [r.index, r.id, !!r.error]),
      [
        [0, 'id-000001', false],
        [1, 'id-broken', true],
        [2, 'id-000002', false],
        [3, 'id-big-0001', false],
        [4, 'id-000003', false],
      ],
    );
    assert.match(whole.recs[1].error!, /meta length 1000 runs past the record/);
    // a record inside the chunk is a view into it: no copy of the payload
    assert.equal(whole.recs[4].payload!.buffer, body.buffer);
    assert.ok(whole.recs[4].payload!.equals(p2));
    // and with a lower limit the oversized records are named and dropped, the others still read
    const small = decode([body], 600);
    assert.deepEqual(
      small.recs.map((r) => [r.id, r.error?.replace(/\d+ bytes/, 'N bytes') ?? null]),
      [
        ['id-000001', null],
        ['id-broken', 'meta length 1000 runs past the record (N bytes)'],
        ['id-000002', null],
        ['id-big-0001', 'record of N bytes is larger than the limit of 600'],
        ['id-000003', 'record of N bytes is larger than the limit of 600'],
      ],
    );
  });

  it('gives the same records when the stream is split at every byte boundary (two and three pieces)', () => {
    const want = summary(whole.recs);
    const wantSmall = summary(decode([body], 600).recs);
    for (let i = 0; i <= body.length; i++) {
      const two = [body.subarray(0, i), body.subarray(i)];
      const a = decode(two);
      assert.equal(a.err, null, `split at ${i}`);
      assert.deepEqual(summary(a.recs), want, `split at ${i}`);
      assert.deepEqual(summary(decode(two, 600).recs), wantSmall, `split at ${i}, limit 600`);
      // a piece of 1..13 bytes around every boundary: records spread over three chunks
      const j = Math.min(body.length, i + 1 + (i % 13));
      const three = decode([body.subarray(0, i), body.subarray(i, j), body.subarray(j)]);
      assert.equal(three.err, null, `split at ${i} and ${j}`);
      assert.deepEqual(summary(three.recs), want, `split at ${i} and ${j}`);
    }
    // one byte at a time
    const bytes = decode([...body].map((b) => Buffer.from([b])));
    assert.deepEqual(summary(bytes.recs), want);
  });

  it('a stream cut at any byte: the records before the cut, then a FramesStreamError naming it', () => {
    // where each record ends in the body: the records complete at a cut are exactly those ending before it
    const ends: number[] = [];
    let at = FRAMES_MAGIC.length;
    for (let k = 0; k < whole.recs.length; k++) {
      at += 4 + body.readUInt32BE(at);
      ends.push(at);
    }
    for (let cut = 0; cut < body.length; cut++) {
      const r = decode([body.subarray(0, Math.floor(cut / 2)), body.subarray(Math.floor(cut / 2), cut)]);
      assert.ok(r.err instanceof FramesStreamError, `cut at ${cut}: ${r.err}`);
      const complete = ends.filter((e) => e <= cut).length;
      assert.equal(r.recs.length, complete, `cut at ${cut}`);
      if (cut < FRAMES_MAGIC.length) assert.match(r.err.message, /must start with "SLF1"/);
      else if (ends.includes(cut) || cut === FRAMES_MAGIC.length) assert.match(r.err.message, new RegExp(`stream cut before record ${complete} \\(no end marker\\)`));
      else assert.match(r.err.message, /stream cut (inside|before) record/);
    }
    // bytes after the end marker, in the same chunk or the next
    assert.match(decode([Buffer.concat([body, Buffer.from('x')])]).err!.message, /bytes after the end marker/);
    assert.match(decode([body, Buffer.from('x')]).err!.message, /bytes after the end marker/);
    // and the records before the trailing bytes were delivered
    assert.equal(decode([Buffer.concat([body, Buffer.from('x')])]).recs.length, whole.recs.length);
  });

  it('readFrames yields one array per chunk; a record spread over chunks is copied once, whole', async () => {
    const arrays: FrameRecord[][] = [];
    const split = 4 + 30; // inside record 0
    async function* two() {
      yield body.subarray(0, split);
      yield body.subarray(split);
    }
    for await (const recs of readFrames(two(), { maxRecordBytes: limit })) arrays.push(recs);
    assert.deepEqual(arrays.map((a) => a.length), [5]);
    assert.notEqual(arrays[0][0].payload!.buffer, body.buffer);
    assert.ok(arrays[0][0].payload!.equals(p1));
  });
});

describe('KB ingest of sample frames (real kb serve)', () => {
  const kb = suiteKb();
  const post = (body: Buffer, headers: Record<string, string> = {}) =>
    fetch(`${kb().url}/v1/sample-frames`, { method: 'POST', headers: { authorization: `Bearer ${kb().deviceToken}`, 'content-type': FRAMES_CONTENT_TYPE, ...headers }, body: new Uint8Array(body) });

  it('announces frames; stores the good records around malformed ones and names each malformed one in the ack', async () => {
    const info = await fetch(`${kb().url}/v1/protocol`, { headers: { authorization: `Bearer ${kb().deviceToken}` } });
    assert.equal(info.status, 200);
    assert.deepEqual(((await info.json()) as { push_framings: string[] }).push_framings, ['json', 'frames1']);

    const a = Buffer.from(Float32Array.from([0.1, 0.2]).buffer);
    const b = Buffer.alloc(3000, 9);
    const body = frames([
      record('fr-good-0001', meta(a), a),
      record('fr-badjson-01', '{"task":', a),
      record('fr-badsha-001', meta(a, { payload_sha: sha(b) }), a),
      record('fr-schema-001', meta(a, { scores: 'high' }), a),
      record('fr-extra-0001', meta(a, { id: 'someone-else' }), a),
      record('fr-good-0002', meta(b, { label: 'cat' }), b),
      record('fr-none-0003', meta(null), null),
    ]);
    const res = await post(body);
    assert.equal(res.status, 200);
    const ack = (await res.json()) as { stored: string[]; rejected: { id: string; reason: string }[] };
    assert.deepEqual(ack.stored.sort(), ['fr-good-0001', 'fr-good-0002', 'fr-none-0003']);
    const why = new Map(ack.rejected.map((r) => [r.id, r.reason]));
    assert.deepEqual([...why.keys()].sort(), ['fr-badjson-01', 'fr-badsha-001', 'fr-extra-0001', 'fr-schema-001']);
    assert.match(why.get('fr-badjson-01')!, /record 1: meta is not JSON/);
    assert.match(why.get('fr-badsha-001')!, /payload_sha does not match/);
    assert.match(why.get('fr-schema-001')!, /record 3: invalid sample: \/scores/);
    assert.match(why.get('fr-extra-0001')!, /must not carry id/);

    const onKb = new Map((await kbSamples(kb())).map((s) => [s.id, s]));
    assert.equal(onKb.get('fr-good-0002')?.payload_bytes, 3000);
    assert.equal(onKb.get('fr-good-0002')?.label, 'cat');
    assert.equal(onKb.get('fr-none-0003')?.payload_kind, 'none');
    assert.ok(!onKb.has('fr-badsha-001'));
    // the payload comes back byte for byte
    const p = await fetch(`${kb().url}/v1/admin/samples/fr-good-0002/payload`, { headers: { authorization: `Bearer ${kb().adminToken}` } });
    assert.ok(Buffer.from(await p.arrayBuffer()).equals(b));

    // the same stream gzipped: idempotent, the same ack
    const again = await post(gzipSync(body), { 'content-encoding': 'gzip' });
    assert.equal(again.status, 200);
    assert.deepEqual(((await again.json()) as { stored: string[] }).stored.sort(), ['fr-good-0001', 'fr-good-0002', 'fr-none-0003']);
  });

  it('a stream cut before its end marker: 400 naming the cut; the records that arrived are stored', async () => {
    const a = Buffer.alloc(100, 3);
    const body = frames([record('cut-good-0001', meta(a), a), record('cut-good-0002', meta(a), a)]);
    const res = await post(body.subarray(0, body.length - 4));
    assert.equal(res.status, 400);
    const j = (await res.json()) as { error: string; stored: string[] };
    assert.match(j.error, /sample frames: stream cut before record 2/);
    assert.deepEqual(j.stored.sort(), ['cut-good-0001', 'cut-good-0002']);
    // not a frames stream, wrong content type
    const foreign = await post(Buffer.from('{"samples":[]}'));
    assert.equal(foreign.status, 400);
    assert.match(((await foreign.json()) as { error: string }).error, /must start with "SLF1"/);
    const json = await fetch(`${kb().url}/v1/sample-frames`, { method: 'POST', headers: { authorization: `Bearer ${kb().deviceToken}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(json.status, 415);
    // no token: refused before the body is read
    const anon = await fetch(`${kb().url}/v1/sample-frames`, { method: 'POST', headers: { 'content-type': FRAMES_CONTENT_TYPE }, body: new Uint8Array(body) });
    assert.equal(anon.status, 401);
  });
});

describe('push framing negotiation (real edge and KB processes)', () => {
  interface Summary {
    acked: number;
    pending: number;
    push_framing: string | null;
    exit: number;
  }
  const push = async (home: string, extra: string[] = []) => {
    const r = await sednaAsync(['sync', '--push-only', '--json', ...extra], { home });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Summary;
  };

  for (const c of [
    { name: 'a new edge and a new KB push binary frames', serveArgs: [] as string[], edgeArgs: [] as string[], want: 'frames' },
    { name: 'a KB that does not announce frames (--json-push-only, as an old KB) gets JSON', serveArgs: ['--json-push-only'], edgeArgs: [], want: 'json' },
    { name: 'an edge that sends JSON (--framing json, as an old edge) is served as before', serveArgs: [], edgeArgs: ['--framing', 'json'], want: 'json' },
  ]) {
    it(c.name, async () => {
      const kb = await startTestKb({ serveArgs: c.serveArgs });
      const e = makeEdge(kb);
      try {
        const ids = seedOutbox(e.home, 700, 1024, { seed: 5, tasks: ['a', 'b'] });
        const s = await push(e.home, [...c.edgeArgs, '--batch-size', '300']);
        assert.equal(s.push_framing, c.want);
        assert.equal(s.acked, 700);
        assert.equal(s.pending, 0);
        const onKb = await kbSamples(kb, kb.deviceId);
        assert.deepEqual(onKb.map((x) => x.id).sort(), [...ids].sort());
        assert.ok(onKb.every((x) => x.payload_bytes === 1024 && x.payload_kind === 'f32'));
        assert.deepEqual(edgeIds(e.home).pending, []);
        const routes = kb.stderr();
        const framesSeen = /"route":"\/v1\/sample-frames"/.test(routes);
        assert.equal(framesSeen, c.want === 'frames', 'the KB log shows the format named in the summary');
        // nothing pending: the next run asks nothing and pushes nothing
        assert.equal((await push(e.home, c.edgeArgs)).push_framing, null);
      } finally {
        e.cleanup();
        await kb.stop();
      }
    });
  }

  it('--framing takes auto or json; anything else is a usage error naming it', () => {
    const r = sedna(['sync', '--framing', 'xml'], { home: '/nonexistent' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--framing "xml": expected auto or json/);
  });
});
