// Runtime logic on hand-computed cases: Sedna's hard-example filter formulas, probability
// validation, rate caps in a real SQLite file, task allocation, unseen-task detection, and the
// decoders' pure parts (npy header, CSV columns, bilinear resize).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mulberry32 } from '../src/random.js';
import type { TaskEntry, TaskIndex, UnseenConfig } from '../src/format/index-manifest.js';
import {
  crossEntropyConfidence,
  crossEntropyHard,
  filterFires,
  filterNames,
  ibtHard,
  invalidBoxes,
  invalidProbabilities,
  marginHard,
  meanBoxScore,
  normalisedEntropy,
  randomHard,
  softmaxInPlace,
} from '../src/runtime/filters.js';
import { RateCapCounter } from '../src/runtime/rate-caps.js';
import { TaskTable } from '../src/format/allocate.js';
import { detectUnseen } from '../src/runtime/unseen.js';
import { npyRowFile, parseNpyHeader } from '../src/runtime/decode-npy.js';
import { csvLayout, decodeCsvLine } from '../src/runtime/decode-csv.js';
import { splitCsvLine } from '../src/format/csv.js';
import { decodeJsonLine } from '../src/runtime/decode-jsonl.js';
import { resizeToHwc } from '../src/onnx/image.js';
import { openEdgeDb } from '../src/store/db.js';
import { tempDir } from './helpers/cli.js';

const near = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);
const noBoxes = (probs: number[], u = 0.5) => ({ probs, boxes: null, u });

test('cross_entropy: c = 1 + sum p ln p / ln K, hand-computed; K = 1 and p = 0 are finite', () => {
  near(crossEntropyConfidence([0.5, 0.5]), 0); // uniform: 1 + 2 * 0.5 ln 0.5 / ln 2 = 0
  near(crossEntropyConfidence([1, 0, 0]), 1); // one-hot (0 ln 0 = 0)
  // [0.7, 0.2, 0.1]: sum p ln p = -0.249672 - 0.321888 - 0.230259 = -0.801819; / ln 3 = -0.729847
  const c = 1 + (0.7 * Math.log(0.7) + 0.2 * Math.log(0.2) + 0.1 * Math.log(0.1)) / Math.log(3);
  near(c, 0.270153, 1e-6);
  near(crossEntropyConfidence([0.7, 0.2, 0.1]), c);
  assert.equal(crossEntropyHard([0.7, 0.2, 0.1], 0.5), true);
  assert.equal(crossEntropyHard([0.7, 0.2, 0.1], 0.27), false);
  assert.equal(crossEntropyConfidence([1]), 1); // K = 1: no division by ln 1 = 0
  assert.equal(crossEntropyHard([1], 0.5), false);
  near(normalisedEntropy([0.25, 0.25, 0.25, 0.25]), 1);
  assert.equal(filterFires({ type: 'cross_entropy', threshold: 0.5 }, noBoxes([0.7, 0.2, 0.1])), true);
});

test('threshold: mean box score < t (Sedna, detection); top-1 probability < t for a classifier', () => {
  const boxes = [
    [0, 0, 1, 1, 0.9, 1],
    [0, 0, 1, 1, 0.3, 2],
  ];
  near(meanBoxScore(boxes)!, 0.6);
  assert.equal(filterFires({ type: 'threshold', threshold: 0.7 }, { probs: [], boxes, u: 0 }), true);
  assert.equal(filterFires({ type: 'threshold', threshold: 0.5 }, { probs: [], boxes, u: 0 }), false);
  assert.equal(filterFires({ type: 'threshold', threshold: 0.5 }, { probs: [], boxes: [], u: 0 }), false); // no boxes: not hard (Sedna)
  assert.equal(filterFires({ type: 'threshold', threshold: 0.5 }, noBoxes([0.4, 0.35, 0.25])), true);
  assert.equal(filterFires({ type: 'threshold', threshold: 0.4 }, noBoxes([0.4, 0.35, 0.25])), false); // strict <
});

test('ibt: share of boxes with score <= t_box >= 1 - t_img', () => {
  // scores 0.2, 0.5, 0.9, 0.95 with t_box 0.5: two boxes <= 0.5 -> share 0.5
  const s = [0.2, 0.5, 0.9, 0.95];
  assert.equal(ibtHard(s, 0.5, 0.5), true); // 0.5 >= 1 - 0.5
  assert.equal(ibtHard(s, 0.5, 0.4), false); // 0.5 >= 0.6 ? no
  assert.equal(ibtHard(s, 0.49, 0.75), true); // one box -> 0.25 >= 0.25
  assert.equal(ibtHard([], 0.5, 0.5), false);
  const boxes = s.map((v) => [0, 0, 1, 1, v]);
  assert.equal(filterFires({ type: 'ibt', threshold_box: 0.5, threshold_img: 0.5 }, { probs: [], boxes, u: 0 }), true);
  // classifier = one box with score max p
  assert.equal(filterFires({ type: 'ibt', threshold_box: 0.6, threshold_img: 0.1 }, noBoxes([0.55, 0.45])), true);
  assert.equal(filterFires({ type: 'ibt', threshold_box: 0.5, threshold_img: 0.1 }, noBoxes([0.55, 0.45])), false);
  assert.equal(invalidBoxes([[0, 0, 1, 1, 1.2]]), 'box 0 score 1.2 is outside [0, 1]');
  assert.match(invalidBoxes([[0, 0, 1, 1]])!, /4 fields/);
});

test('margin: top1 - top2 < t; random: u < ratio, seeded and near the ratio', () => {
  assert.equal(marginHard([0.45, 0.4, 0.15], 0.1), true); // 0.05
  assert.equal(marginHard([0.6, 0.3, 0.1], 0.1), false); // 0.3
  assert.equal(marginHard([1], 0.5), false); // K = 1: top2 = 0, margin 1
  assert.equal(randomHard(0.29, 0.3), true);
  assert.equal(randomHard(0.3, 0.3), false);
  const rng = mulberry32(7);
  let n = 0;
  for (let i = 0; i < 20000; i++) if (filterFires({ type: 'random', ratio: 0.3 }, noBoxes([1], rng()))) n++;
  assert.ok(Math.abs(n / 20000 - 0.3) < 0.02, `random picked ${n / 20000}`);
});

test('probabilities: NaN, negatives, >1 and bad sums are errors; softmax of logits is valid', () => {
  assert.match(invalidProbabilities([0.5, NaN])!, /NaN/);
  assert.match(invalidProbabilities([-0.1, 1.1])!, /outside/);
  assert.match(invalidProbabilities([0.3, 0.3])!, /sum to 0.6000/);
  assert.equal(invalidProbabilities([0.2, 0.8]), null);
  assert.match(invalidProbabilities([])!, /empty/);
  const z = Float32Array.from([1, 2, 3]);
  softmaxInPlace(z);
  const e = [1, 2, 3].map(Math.exp);
  const s = e[0] + e[1] + e[2];
  e.forEach((v, i) => near(z[i], v / s, 1e-6));
  assert.equal(invalidProbabilities(z), null);
  assert.deepEqual(filterNames([{ type: 'margin' }, { type: 'random' }, { type: 'margin' }]), ['margin', 'random', 'margin#2']);
});

test('rate caps: counted in filter_counts of a real edge DB, survive reopening, per filter', () => {
  const t = tempDir();
  try {
    const path = join(t.dir, 'edge.db');
    const filters = [{ type: 'margin' as const, threshold: 0.1, caps: { per_minute: 2, per_day: 3 } }, { type: 'random' as const, ratio: 1 }];
    const names = filterNames(filters);
    assert.equal(RateCapCounter.needed(filters), true);
    assert.equal(RateCapCounter.needed([{ type: 'random' }]), false);
    const now = Date.UTC(2026, 0, 1, 12, 0, 30);
    let db = openEdgeDb(path);
    let c = new RateCapCounter(db, filters, names);
    db.transaction(() => {
      c.begin(now);
      assert.deepEqual([c.admit(0), c.admit(0), c.admit(0), c.admit(1), c.admit(1)], [true, true, false, true, true]);
      c.flush();
    })();
    db.close();
    // a restart in the same minute: the minute cap is used up
    db = openEdgeDb(path);
    c = new RateCapCounter(db, filters, names);
    db.transaction(() => {
      c.begin(now + 10_000);
      assert.equal(c.admit(0), false);
      c.flush();
    })();
    // next minute: one more fits under the day cap of 3, then the day cap stops it
    db.transaction(() => {
      c.begin(now + 60_000);
      assert.deepEqual([c.admit(0), c.admit(0)], [true, false]);
      c.flush();
    })();
    const rows = db.prepare('SELECT filter, bucket, n FROM filter_counts ORDER BY bucket').all() as { filter: string; bucket: string; n: number }[];
    assert.deepEqual(
      rows.map((r) => `${r.filter} ${r.bucket[0]} ${r.n}`),
      ['margin d 3', 'margin m 1'], // the closed minute bucket was pruned
    );
    db.close();
  } finally {
    t.cleanup();
  }
});

function task(id: string, attrs: Record<string, string>, extra: Partial<TaskEntry> = {}): TaskEntry {
  return {
    id,
    attrs,
    model: {
      sha256: 'a'.repeat(64),
      file: `models/${'a'.repeat(64)}.onnx`,
      size: 1,
      inputs: [{ name: 'input', shape: ['N', 2], dtype: 'float32' }],
      outputs: [{ name: 'probabilities', shape: ['N', 2], dtype: 'float32' }],
      labels: [],
      preprocessing: { kind: 'vector' },
      output_kind: 'probabilities',
    },
    ...extra,
  };
}

function index(tasks: TaskEntry[], allocation: Partial<TaskIndex['allocation']> = {}): TaskIndex {
  return {
    format: 'sedna-ll/index@1',
    version: 1,
    created_at: '',
    parent: null,
    origin: 'local',
    tasks,
    allocation: { method: 'attr+centroid', attr_keys: ['site', 'cam'], space: 'input', fallback: 'global', ...allocation },
    unseen: { methods: ['attr'], combine: 'any' },
    hard_examples: [],
  };
}

test('allocation: attribute key (Sedna join), unknown value -> fallback + unseen, centroid, explicit, errors', () => {
  const a = task('berlin-1', { site: 'berlin', cam: '1' }, { centroid: [0, 0] });
  const b = task('paris-2', { site: 'paris', cam: '2' }, { centroid: [10, 10] });
  const g = task('global', {});
  const x = (v: number[]) => () => Float32Array.from(v);
  let tt = new TaskTable(index([a, b, g]));
  assert.equal(tt.allocate({ site: 'paris', cam: '2' }, null, x([0, 0])).task.id, 'paris-2');
  let r = tt.allocate({ site: 'rome', cam: '1' }, null, x([0, 0]));
  assert.deepEqual([r.task.id, r.unknownAttr, r.by], ['global', true, 'fallback']); // never silently task 0
  r = tt.allocate({}, null, x([9, 8]));
  assert.deepEqual([r.task.id, r.unknownAttr, r.by], ['paris-2', false, 'centroid']);
  assert.equal(tt.allocate({ site: 'paris', cam: '2' }, 'berlin-1', x([0, 0])).task.id, 'berlin-1');
  assert.throws(() => tt.allocate({}, 'nope', x([0, 0])), /unknown task "nope"/);
  // no fallback task: unknown value goes to the nearest centroid, still flagged unseen
  tt = new TaskTable(index([a, b]));
  r = tt.allocate({ site: 'rome', cam: '1' }, null, x([1, 1]));
  assert.deepEqual([r.task.id, r.unknownAttr], ['berlin-1', true]);
  // attr only, no fallback: unknown value and missing attrs are errors
  tt = new TaskTable(index([a, b], { method: 'attr', fallback: null }));
  assert.throws(() => tt.allocate({ site: 'rome', cam: '1' }, null, x([0, 0])), /no task for site=rome,cam=1/);
  assert.throws(() => tt.allocate({}, null, x([0, 0])), /no task/);
  // centroid dimension mismatch is an error, not distance 0
  tt = new TaskTable(index([a, b], { method: 'centroid' }));
  assert.throws(() => tt.allocate({}, null, x([1, 2, 3])), /centroid has 2 dims/);
  // a task whose model cannot take the sample is skipped, not fatal for the sample
  const c3 = task('three', {}, { centroid: [100, 100, 100] });
  tt = new TaskTable(index([a, c3], { method: 'centroid' }));
  const sized = (t: TaskEntry) => {
    if (t.id !== 'three') throw new Error('x has 3 values, task takes 2');
    return Float32Array.from([0, 0, 0]);
  };
  assert.equal(tt.allocate({}, null, sized).task.id, 'three');
});

test('allocation without attributes refuses a task beyond its extent: fallback, farDistance for the "distance" method', () => {
  const a = task('a', { site: 'a', cam: '1' }, { centroid: [0, 0], radius: 1, thresholds: { distance: 1.5 } });
  const b = task('b', { site: 'b', cam: '1' }, { centroid: [10, 0], radius: 2 });
  const g = task('global', {});
  const x = (v: number[]) => () => Float32Array.from(v);
  let tt = new TaskTable(index([a, b, g]));
  // inside a's extent (max of radius 1 and distance threshold 1.5)
  assert.deepEqual(((r) => [r.task.id, r.by, r.farDistance])(tt.allocate({}, null, x([1.4, 0]))), ['a', 'centroid', undefined]);
  // nearest is a, but 3 > 1.5: refused, served by the fallback, distance 3 travels along
  assert.deepEqual(((r) => [r.task.id, r.by, r.farDistance])(tt.allocate({}, null, x([-3, 0]))), ['global', 'fallback', 3]);
  // no fallback: the nearest task still serves, the sample is still far
  tt = new TaskTable(index([a, b]));
  assert.deepEqual(((r) => [r.task.id, r.by, r.farDistance])(tt.allocate({}, null, x([14, 0]))), ['b', 'centroid', 4]);
  // an attribute that names a task is never refused
  assert.equal(tt.allocate({ site: 'a', cam: '1' }, null, x([50, 50])).farDistance, undefined);
});

test('unseen: attr / confidence / entropy / distance, any vs all, per-task thresholds win', () => {
  const t = task('t', {}, { centroid: [0, 0], radius: 1 });
  const strictT = task('s', {}, { thresholds: { confidence: 0.9 } });
  const cfg: UnseenConfig = { methods: ['confidence', 'entropy', 'distance'], combine: 'any', confidence: 0.6, entropy: 0.9 };
  const inp = (probs: number[], xy: number[], unknownAttr = false) => ({ unknownAttr, probs, x: () => Float32Array.from(xy) });
  const verdict = (...a: Parameters<typeof detectUnseen>) => {
    const { unseen, reason } = detectUnseen(...a);
    return { unseen, reason };
  };
  // every applicable method's score travels with the verdict (infer's unseen_scores)
  assert.deepEqual(detectUnseen(cfg, t, inp([0.9, 0.1], [0.5, 0.5])).scores, { confidence: 0.9, entropy: 0.468996, distance: 0.707107 });
  assert.deepEqual(verdict(cfg, t, inp([0.9, 0.1], [0.5, 0.5])), { unseen: false, reason: null });
  assert.deepEqual(verdict(cfg, t, inp([0.55, 0.45], [0.5, 0.5])), { unseen: true, reason: 'confidence+entropy' }); // H = 0.9928 > 0.9
  assert.deepEqual(verdict(cfg, t, inp([0.9, 0.1], [1, 1])), { unseen: true, reason: 'distance' }); // sqrt 2 > 1
  assert.deepEqual(verdict({ ...cfg, combine: 'all' }, t, inp([0.55, 0.45], [0.5, 0.5])), { unseen: false, reason: null });
  assert.deepEqual(verdict({ ...cfg, combine: 'all' }, t, inp([0.55, 0.45], [2, 0])), { unseen: true, reason: 'confidence+entropy+distance' });
  // per-task confidence 0.9 overrides the index's 0.6; distance does not apply (no centroid)
  assert.deepEqual(verdict({ methods: ['confidence', 'distance'], combine: 'all', confidence: 0.6 }, strictT, inp([0.8, 0.2], [5, 5])), {
    unseen: true,
    reason: 'confidence',
  });
  assert.deepEqual(verdict({ methods: ['attr'], combine: 'any' }, t, inp([1, 0], [0, 0], true)), { unseen: true, reason: 'attr' });
  // a sample nearest-centroid allocation refused fires "distance" with its distance, whatever the task
  assert.deepEqual(detectUnseen({ methods: ['distance'], combine: 'any' }, strictT, { ...inp([1, 0], [0, 0]), farDistance: 7.5 }), { unseen: true, reason: 'distance', scores: { distance: 7.5 } });
});

test('decoders: npy header (v1, f4/f8, byte order), row files, CSV columns and quoting, JSONL checks', () => {
  const h = { dtype: 'f8' as const, littleEndian: true, shape: [5, 2, 3], dataOffset: 0 };
  const f = npyRowFile(h, Buffer.alloc(48));
  const back = parseNpyHeader(f, 'row.npy')!;
  assert.deepEqual([back.dtype, back.littleEndian, back.shape, back.dataOffset % 64, f.length - back.dataOffset], ['f8', true, [1, 2, 3], 0, 48]);
  assert.equal(parseNpyHeader(f.subarray(0, 20), 'x'), null); // incomplete: wait for more bytes
  assert.throws(() => parseNpyHeader(Buffer.from('PK\x03\x04xxxxxxxxxx'), 'a.npy'), /not a \.npy file/);
  assert.deepEqual(splitCsvLine('a,"b,c","d""e",'), ['a', 'b,c', 'd"e', '']);
  const L = csvLayout('id,site,f0,f1,f2', 'f0..f2', 'site');
  assert.deepEqual([L.features, L.attrs, L.idCol], [[2, 3, 4], [{ name: 'site', col: 1 }], 0]);
  assert.deepEqual(csvLayout('a,b,c,d', '2-4', undefined).features, [1, 2, 3]);
  assert.throws(() => csvLayout('a,b', 'zz', undefined), /--features "zz": no such column/);
  const s = decodeCsvLine('x7,new_york city,1,2,3', 2, L, null);
  assert.ok(s && !s.bad);
  assert.deepEqual([s.id, s.attrs, Array.from(s.vec!)], ['x7', { site: 'new-yorkcity' }, [1, 2, 3]]);
  const bad = decodeCsvLine('x8,a,1,,3', 3, L, null);
  assert.ok(bad?.bad && /column 4/.test(bad.reason));
  const j = decodeJsonLine('{"x":[1,1e39]}', 4, null, null);
  assert.ok(j?.bad && /x\[1\] = 1e\+39 is not a finite float32/.test(j.reason));
  const k = decodeJsonLine('{"x":[1,"2"]}', 5, null, null);
  assert.ok(k?.bad && /x\[1\] is not a number/.test(k.reason));
  assert.equal(decodeJsonLine('   ', 6, null, null), null);
});

test('bilinear resize: exact on constant quadrants, interpolates between pixel centres, luma for 1 channel', () => {
  // 4x4 RGBA, quadrants gray 0 / 100 / 200 / 40
  const q = [0, 100, 200, 40];
  const data = new Uint8Array(64);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) data.fill(q[(y < 2 ? 0 : 2) + (x < 2 ? 0 : 1)], (y * 4 + x) * 4, (y * 4 + x) * 4 + 3);
  assert.deepEqual(Array.from(resizeToHwc({ width: 4, height: 4, data }, 2, 2, 1)).map((v) => Math.round(v * 1000) / 1000), q);
  // 2x1 -> 4x1: centres at 0.25 ... -> [a, 0.75a+0.25b, 0.25a+0.75b, b]
  const two = new Uint8Array([0, 0, 0, 255, 200, 200, 200, 255]);
  assert.deepEqual(Array.from(resizeToHwc({ width: 2, height: 1, data: two }, 4, 1, 3).filter((_, i) => i % 3 === 0)), [0, 50, 150, 200]);
  const red = new Uint8Array([255, 0, 0, 255]);
  near(resizeToHwc({ width: 1, height: 1, data: red }, 1, 1, 1)[0], 0.299 * 255, 1e-4);
});

test('fast JSONL path: same floats and fields as JSON.parse, and falls back on everything unusual', async () => {
  const { fastRecord } = await import('../src/runtime/fast-json.js');
  const { decodeJsonBytes } = await import('../src/runtime/decode-jsonl.js');
  const fast = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    return fastRecord(b, 0, b.length);
  };
  const rng = mulberry32(3);
  const nums: string[] = ['0', '-0', '1', '-1', '0.1', '0.30000000000000004', '1e5', '1E-7', '-2.5e+3', '123456789012345678', '0.0000001', '3.4028234663852886e38', '9007199254740993', '0.12345678901234567890123'];
  for (let i = 0; i < 3000; i++) {
    const v = (rng() - 0.5) * 10 ** Math.floor(rng() * 12 - 6);
    nums.push(rng() < 0.5 ? String(v) : v.toFixed(Math.floor(rng() * 8)));
  }
  const line = `{ "id" : "é\\"x" , "x" : [ ${nums.join(' ,')} ] , "attrs": {"site": "a_b", "n": [1, {"k": "}"}]}, "task":"t1" }`;
  const r = fast(line);
  assert.ok(r, 'plain record takes the fast path');
  const want = JSON.parse(line);
  assert.deepEqual(Array.from(r.x), Array.from(Float32Array.from(want.x)));
  assert.ok(Object.is(r.x[1], -0));
  assert.deepEqual([JSON.parse(r.id!), JSON.parse(r.attrs!), JSON.parse(r.task!)], [want.id, want.attrs, want.task]);
  // not JSON, or not plain: null (the caller uses JSON.parse and its error)
  for (const bad of ['{"x":[01]}', '{"x":[1.]}', '{"x":[.5]}', '{"x":[+1]}', '{"x":[1,]}', '{"x":[NaN]}', '{"x":[1]} x', '{"x":[1],"x":[2]}', '{"x":[1],}', '{"x":[1e999]}', '{"x":[1e39]}', '{"x":["1"]}', '{"y":1,"x":[1]}', '{"x\\u0000":[1]}', '{"x":[1] "id":2}', '[1]', '{}']) {
    assert.equal(fast(bad), null, bad);
  }
  // and the decoder gives the same item either way
  const b = Buffer.from('{"x":[1,2],"attrs":{"Site":"new york"}}\n{"x":[1, 2], "attrs": {"Site": "new york"}, "zz": 1}');
  const nl = b.indexOf(10);
  const one = decodeJsonBytes(b, 0, nl, 1, null, null);
  const two = decodeJsonBytes(b, nl + 1, b.length, 2, null, null);
  assert.ok(one && !one.bad && two && !two.bad);
  assert.deepEqual([Array.from(one.vec!), one.attrs], [Array.from(two.vec!), two.attrs]);
  const e = decodeJsonBytes(Buffer.from('{"x":[1e999]}'), 0, 13, 7, null, null);
  assert.ok(e?.bad && /x\[0\] = Infinity/.test(e.reason));
});
