// Push body encoding: the auto policy's decisions (fed measured rates directly), and
// `sync --compress gzip|none|auto` / config upload.compress against a real `kb serve`: every
// mode stores exactly the edge's samples; the wire bytes show which encoding travelled.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sedna } from './helpers/cli.js';
import { edgeIds, editConfig, kbSamples, makeEdge, seedOutbox, suiteKb } from './helpers/sync-edge.js';
import { CompressPolicy } from '../src/sync/compress-policy.js';

/** a JSON-ish body that gzip halves (numbers), and one it cannot shrink (random base64) */
const compressible = Buffer.from(JSON.stringify(Array.from({ length: 40_000 }, (_, i) => (i % 997) / 1000)));
const incompressible = Buffer.from(randomBytes(200_000).toString('latin1'), 'latin1');

describe('compress policy', () => {
  it('gzip and none are fixed', () => {
    const g = new CompressPolicy('gzip');
    const n = new CompressPolicy('none');
    for (let i = 0; i < 10; i++) {
      assert.equal(g.useGzip(incompressible), true);
      assert.equal(n.useGzip(compressible), false);
    }
  });

  it('auto sends a body that does not compress as is', () => {
    const p = new CompressPolicy('auto');
    for (let i = 0; i < 10; i++) assert.equal(p.useGzip(incompressible), false);
  });

  /** run the auto policy over n batches where each mode pushes at the given MB/s (per batch i) */
  const simulate = (gzipMbS: number | ((i: number) => number), plainMbS: number | ((i: number) => number), n = 200) => {
    const at = (x: number | ((i: number) => number), i: number) => (typeof x === 'number' ? x : x(i));
    const p = new CompressPolicy('auto');
    const picks: boolean[] = [];
    let prev: boolean | null = null;
    for (let i = 0; i < n; i++) {
      const gz = p.useGzip(compressible);
      picks.push(gz);
      const ms = compressible.length / ((gz ? at(gzipMbS, i) : at(plainMbS, i)) * 1000);
      p.observeAck(gz, compressible.length, ms, gz !== prev);
      prev = gz;
    }
    return picks;
  };

  it('auto: starts with gzip, tries uncompressed, keeps the faster mode and re-tries the other now and then', () => {
    // fast link: uncompressed pushes 3x faster
    const fast = simulate(30, 90);
    assert.deepEqual(fast.slice(0, 8), [true, true, true, true, false, false, false, false]);
    const gz = fast.slice(8).filter(Boolean).length;
    assert.ok(gz > 0 && gz <= 16, `re-exploration only: ${gz} gzip batches of 192`);
    // slow link: gzip (half the bytes) wins
    const slow = simulate(2, 1.1);
    const plain = slow.slice(8).filter((x) => !x).length;
    assert.ok(plain > 0 && plain <= 16, `re-exploration only: ${plain} plain batches of 192`);
    // a tie keeps gzip (fewer bytes on a possibly metered link)
    assert.ok(simulate(50, 52).slice(8).filter(Boolean).length > 150);
  });

  it('auto: a long steady push re-tries the losing mode less and less; a link that slows down flips to gzip at once', () => {
    const long = simulate(30, 90, 3000);
    const gz = long.slice(8).filter(Boolean).length;
    assert.ok(gz > 0 && gz <= 0.015 * 3000, `${gz} gzip batches of 3000 on a fast link`);
    // uncompressed wins until batch 1000, then the link drops to a tenth: plain is measured on
    // every batch, so the switch to gzip comes within a few batches, not at the next exploration
    const flip = simulate(30, (i) => (i < 1000 ? 90 : 9), 1100);
    assert.equal(flip[990], false);
    const firstGzip = flip.findIndex((g, i) => i >= 1000 && g);
    assert.ok(firstGzip >= 1000 && firstGzip < 1010, `switched at ${firstGzip}`);
    assert.ok(flip.slice(1010).every(Boolean), 'and stays on gzip');
  });
});

describe('sync --compress', () => {
  const kb = suiteKb();

  const N = 300;
  const SIZE = 3072;
  const push = (home: string, args: string[]) => {
    const r = sedna(['sync', '--push-only', '--batch-size', '50', '--json', ...args], { home });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { acked: number; pending: number; bytes_up: number; batches_gzip: number; batches_plain: number };
  };

  for (const [mode, check] of [
    ['gzip', (s: { bytes_up: number; batches_gzip: number; batches_plain: number }) => {
      assert.equal(s.batches_gzip, 6);
      assert.equal(s.batches_plain, 0);
      assert.ok(s.bytes_up < N * SIZE, `gzip bodies are smaller than the payload: ${s.bytes_up}`);
    }],
    ['none', (s: { bytes_up: number; batches_gzip: number; batches_plain: number }) => {
      assert.equal(s.batches_gzip, 0);
      assert.equal(s.batches_plain, 6);
      // binary frames (the default framing) carry the payload bytes as they are, uncompressed
      assert.ok(s.bytes_up >= N * SIZE, `plain frames carry every payload byte: ${s.bytes_up}`);
    }],
    ['auto', (s: { bytes_up: number; batches_gzip: number; batches_plain: number }) => {
      assert.equal(s.batches_gzip + s.batches_plain, 6);
      assert.ok(s.batches_gzip >= 4, 'the first batches are gzipped (unknown link)');
    }],
  ] as const) {
    it(`--compress ${mode}: the KB stores exactly the edge's samples`, async () => {
      const e = makeEdge(kb(), { deviceId: `edge-${mode}` });
      try {
        const ids = seedOutbox(e.home, N, SIZE, { seed: 5 });
        const s = push(e.home, ['--compress', mode]);
        assert.equal(s.acked, N);
        assert.equal(s.pending, 0);
        check(s);
        assert.deepEqual(edgeIds(e.home).pending, []);
        const onKb = new Set((await kbSamples(kb())).map((x) => x.id));
        assert.deepEqual(ids.filter((id) => !onKb.has(id)), [], 'every acked sample is on the KB');
        assert.equal(push(e.home, ['--compress', mode]).acked, 0, 'a re-run sends nothing');
      } finally {
        e.cleanup();
      }
    });
  }

  it('config upload.compress is the default; a bad mode is a usage error (exit 2) naming it', () => {
    const e = makeEdge(kb(), { deviceId: 'edge-cfg' });
    try {
      seedOutbox(e.home, 100, SIZE, { seed: 6 });
      const bad = sedna(['sync', '--push-only', '--compress', 'zip'], { home: e.home });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--compress "zip"/);
      editConfig(e.home, (c) => {
        c.upload.compress = 'bogus' as 'none';
      });
      const badCfg = sedna(['sync', '--push-only'], { home: e.home });
      assert.equal(badCfg.code, 2);
      assert.match(badCfg.stderr, /upload\.compress "bogus"/);
      editConfig(e.home, (c) => {
        c.upload.compress = 'none';
      });
      const s = push(e.home, []);
      assert.equal(s.acked, 100);
      assert.equal(s.batches_gzip, 0);
      assert.equal(s.batches_plain, 2);
      assert.equal(edgeIds(e.home).pending.length, 0, 'nothing pending after the push');
    } finally {
      e.cleanup();
    }
  });
});
