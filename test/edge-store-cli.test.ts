// The storage/admin commands through the real CLI: init, task add, feedback, samples, status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths, loadConfig } from '../src/store/home.js';
import { Outbox, type LogRecord } from '../src/store/outbox.js';
import { asStorageError } from '../src/store/open-home.js';
import { generateSigningKeys } from '../src/format/signature.js';
import { jsonLines, recordFields, sedna, tempDir } from './helpers/cli.js';
import { writeIdentityModel, writeRandomMlp } from './helpers/models.js';

const json = <T = Record<string, any>>(s: string): T => {
  try {
    return JSON.parse(s) as T;
  } catch {
    throw new Error(`not JSON: ${s.slice(0, 200)}`);
  }
};

function sample(i: number, over: Partial<LogRecord> = {}): LogRecord {
  return {
    task: i % 2 ? 'site-a' : 'global',
    attrs: { site: 'a' },
    payloadKind: 'f32',
    payload: Buffer.from(Float32Array.from([i, i + 0.5, -i]).buffer),
    predLabel: 'b',
    scores: [0.3, 0.4, 0.3],
    hard: true,
    hardReasons: ['cross_entropy'],
    unseen: i % 3 === 0,
    unseenReason: i % 3 === 0 ? 'confidence' : null,
    hardness: 0.5,
    kbVersion: 'local-1',
    ...over,
  };
}

/** Log samples the way infer does (in-process Outbox on the home's config). */
function logSamples(home: string, recs: LogRecord[]) {
  const p = homePaths(home);
  const db = openEdgeDb(p.db);
  try {
    return new Outbox(db, p, loadConfig(home)).logBatch(recs);
  } finally {
    db.close();
  }
}

test('init creates the home, is idempotent, never changes the device id, validates KB settings', () => {
  const t = tempDir();
  try {
    const home = join(t.dir, 'edge');
    let r = sedna(['init', '--device-id', 'gw-1', '--home', home]);
    assert.equal(r.code, 0, r.stderr);
    for (const d of ['blobs', 'models', 'kb', 'locks', 'tmp', 'config.json', 'edge.db']) assert.ok(existsSync(join(home, d)), d);
    r = sedna(['init', '--json'], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual({ ...json<Record<string, any>>(r.stdout), home: null, time: null }, { time: null, device: 'gw-1', command: 'init', exit: 0, home: null, created: false, updated: [], outbox_max_bytes: 512 * 1024 * 1024, kb_url: null, token: false });
    assert.match(sedna(['init', '--device-id', 'gw-1'], { home }).stdout, /already initialised/);

    const before = readFileSync(join(home, 'config.json'), 'utf8');
    r = sedna(['init', '--device-id', 'gw-2'], { home });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /already initialised as device "gw-1"/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one-line error');

    const keys = generateSigningKeys();
    writeFileSync(join(t.dir, 'kb.pub'), keys.publicKey);
    writeFileSync(join(t.dir, 'rsa.pub'), generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(t.dir, 'token'), 'devtok-123\n');
    const bad: [string[], RegExp][] = [
      [['--kb-url', 'ftp://x', '--kb-key', join(t.dir, 'kb.pub')], /expected http/],
      [['--kb-url', 'not a url', '--kb-key', join(t.dir, 'kb.pub')], /not a valid URL/],
      [['--kb-url', 'http://127.0.0.1:1'], /needs --kb-key/],
      [['--kb-url', 'http://127.0.0.1:1', '--kb-key', join(t.dir, 'rsa.pub')], /rsa key/],
      [['--kb-url', 'http://127.0.0.1:1', '--kb-key', join(t.dir, 'token')], /not a PEM public key/],
      [['--token-file', join(t.dir, 'missing')], /cannot read/],
      [['--max-outbox-mb', '-1'], /--max-outbox-mb/],
      [['--device-id', 'bad id!'], /--device-id/],
    ];
    for (const [args, re] of bad) {
      r = sedna(['init', ...args], { home });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    assert.equal(readFileSync(join(home, 'config.json'), 'utf8'), before, 'refused runs change nothing');

    r = sedna(['init', '--kb-url', 'http://127.0.0.1:8080/', '--kb-key', join(t.dir, 'kb.pub'), '--token-file', join(t.dir, 'token'), '--max-outbox-mb', '64', '--json'], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(json(r.stdout).updated.sort(), ['kb.public_key', 'kb.url', 'outbox.max_mb', 'token']);
    const cfg = loadConfig(home);
    assert.equal(cfg.kb?.url, 'http://127.0.0.1:8080');
    assert.equal(cfg.kb?.public_key.trim(), keys.publicKey.trim());
    assert.equal(cfg.outbox.max_mb, 64);
    assert.equal(cfg.device_id, 'gw-1');
    assert.equal(readFileSync(join(home, 'token'), 'utf8').trim(), 'devtok-123');
    assert.equal(statSync(join(home, 'token')).mode & 0o777, 0o600);
  } finally {
    t.cleanup();
  }
});

test('task add stores the model content-addressed as a new local version and activates it; a corrupt model changes nothing', () => {
  const t = tempDir();
  try {
    const home = join(t.dir, 'edge');
    assert.equal(sedna(['init', '--device-id', 'gw-1'], { home }).code, 0, 'init');
    const mlp = writeRandomMlp(t.dir, 'mlp', [6, 5, 3], 7);
    const ident = writeIdentityModel(t.dir, 'ident', 3, { softmax: false });

    let r = sedna(['task', 'add', mlp, '--task', 'site-a', '--attr', 'Site=A_1', '--labels', 'a,b,c', '--json'], { home });
    assert.equal(r.code, 0, r.stderr);
    const add = json(r.stdout);
    assert.equal(add.version, 'local-1');
    assert.equal(add.model.output_kind, 'probabilities');
    assert.ok(existsSync(join(home, 'models', `${add.model.sha256}.onnx`)));
    assert.ok(readFileSync(join(home, 'models', `${add.model.sha256}.onnx`)).equals(readFileSync(mlp)));
    const idx1 = json(readFileSync(join(home, 'kb', 'local-1', 'index.json'), 'utf8'));
    assert.deepEqual(idx1.tasks[0].attrs, { site: 'A-1' }, 'attributes normalised the Sedna way');
    assert.deepEqual(idx1.allocation.attr_keys, ['site']);
    assert.deepEqual(idx1.tasks[0].model.inputs, [{ name: 'input', shape: ['N', 6], dtype: 'float32' }]);

    r = sedna(['task', 'add', ident, '--task', 'global'], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /added task global .*logits.*active version local-2 \(previous local-1\)/);
    let st = json(sedna(['status', '--json'], { home }).stdout);
    assert.equal(st.active_version, 'local-2');
    assert.equal(st.previous_version, 'local-1');
    assert.deepEqual(st.tasks.map((x: any) => [x.id, x.classes, x.fallback]), [['site-a', 3, false], ['global', 3, true]]);

    // the same model again: no new version
    r = sedna(['task', 'add', ident, '--task', 'global'], { home });
    assert.match(r.stdout, /unchanged/);

    const snapshot = () => ({ kb: readdirSync(join(home, 'kb')).sort(), models: readdirSync(join(home, 'models')).sort(), status: { ...json<any>(sedna(['status', '--json'], { home }).stdout), db_bytes: 0, time: null } });
    const before = snapshot();
    writeFileSync(join(t.dir, 'corrupt.onnx'), readFileSync(mlp).subarray(0, 100));
    for (const [args, code, re] of [
      [[join(t.dir, 'corrupt.onnx'), '--task', 'x'], 1, /corrupt\.onnx: not a loadable ONNX model/],
      [[join(t.dir, 'missing.onnx'), '--task', 'x'], 2, /missing\.onnx: cannot read/],
      [[mlp, '--task', 'x', '--labels', 'a,b'], 2, /2 labels but the model has 3 outputs/],
      [[mlp, '--task', 'x', '--attr', 'zone=1'], 2, /attribute keys zone differ/],
      [[mlp, '--task', 'bad id'], 2, /--task "bad id"/],
      [[mlp, '--task', 'x', '--attr', 'novalue'], 2, /expected key=value/],
    ] as [string[], number, RegExp][]) {
      r = sedna(['task', 'add', ...args], { home });
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one-line error');
    }
    assert.deepEqual(snapshot(), before, 'refused task adds leave models, versions and the pointer as they were');
    // a bundle path that is not a readable file is a usage error like a missing model (2), not a refused bundle (5)
    for (const [f, re] of [
      [join(t.dir, 'missing.tar.gz'), /missing\.tar\.gz: cannot read bundle: ENOENT/],
      [t.dir, /not a regular file/],
    ] as const) {
      r = sedna(['model', 'install', f], { home });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
    }
    assert.equal(before.status.versions.length, 2);
  } finally {
    t.cleanup();
  }
});

test('feedback, samples ls|stats|export and status on a real outbox; quota evictions are visible', () => {
  const t = tempDir();
  try {
    const home = join(t.dir, 'edge');
    assert.equal(sedna(['init', '--device-id', 'gw-1'], { home }).code, 0, 'init');
    const ids = logSamples(home, [0, 1, 2, 3, 4, 5].map((i) => sample(i))).map((r) => r.sampleId);
    logSamples(home, [{ ...sample(6), payloadKind: 'png', payload: Buffer.from('not-really-a-png') }]);

    let r = sedna(['feedback', '--sample', ids[0], '--label', 'c'], { home });
    assert.equal(r.code, 0, r.stderr);
    r = sedna(['feedback', '--sample', '0190aaaa-0000-7000-8000-000000000000', '--label', 'c'], { home });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown sample id 0190aaaa-0000-7000-8000-000000000000/);
    const lf = join(t.dir, 'labels.jsonl');
    writeFileSync(lf, [JSON.stringify({ id: ids[1], label: 'a' }), '{broken', JSON.stringify({ id: ids[2] }), JSON.stringify({ id: 'ffffffff-0000', label: 'x' }), JSON.stringify({ id: ids[3], label: 7 })].join('\n') + '\n');
    r = sedna(['feedback', '--file', lf, '--strict'], { home });
    assert.equal(r.code, 2, 'strict: a bad line fails the run');
    assert.match(r.stderr, /labels\.jsonl:2: not valid JSON/);
    r = sedna(['feedback', '--file', lf, '--json'], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual({ ...recordFields<Record<string, unknown>>(r.stdout), errors: undefined }, { labelled: 2, unchanged: 0, unknown: ['ffffffff-0000'], skipped: 3, errors: undefined });
    assert.match(r.stderr, /labels\.jsonl:3: .*label/);
    assert.match(r.stderr, /labels\.jsonl:4: unknown sample id ffffffff-0000/);

    r = sedna(['samples', 'ls', '--json', '--task', 'global'], { home });
    const ls = json<{ samples: any[] }>(r.stdout).samples;
    assert.deepEqual(ls.map((x) => x.id).sort(), [ids[0], ids[2], ids[4]].concat(ls.filter((x) => x.payload_kind === 'png').map((x) => x.id)).sort());
    assert.equal(ls.find((x) => x.id === ids[0]).label, 'c');
    assert.equal(ls.find((x) => x.id === ids[0]).label_state, 'pending');
    assert.equal(json<{ samples: any[] }>(sedna(['samples', 'ls', '--json', '--limit', '2'], { home }).stdout).samples.length, 2);
    assert.equal(json<{ samples: any[] }>(sedna(['samples', 'ls', '--json', '--state', 'uploaded'], { home }).stdout).samples.length, 0);
    assert.equal(sedna(['samples', 'ls', '--state', 'gone'], { home }).code, 2);
    assert.match(sedna(['samples', 'ls'], { home }).stdout, /^ID\s+TASK\s+CREATED/);

    const stats = json(sedna(['samples', 'stats', '--json'], { home }).stdout);
    const g = stats.tasks.find((x: any) => x.task === 'global');
    assert.equal(g.samples, 4);
    assert.equal(g.labelled, 1);
    assert.ok(stats.reasons.some((x: any) => x.task === 'global' && x.kind === 'unseen' && x.reason === 'confidence' && x.samples === 2));
    assert.ok(stats.reasons.some((x: any) => x.task === 'site-a' && x.kind === 'hard' && x.reason === 'cross_entropy' && x.samples === 3));

    const out = join(t.dir, 'export.jsonl');
    r = sedna(['samples', 'export', '-o', out], { home });
    assert.equal(r.code, 0, r.stderr);
    const rows = jsonLines<any>(readFileSync(out, 'utf8'));
    assert.equal(rows.length, 7);
    assert.deepEqual(rows.find((x) => x.id === ids[3]).x, [3, 3.5, -3], 'f32 payloads exported as x');
    assert.equal(Buffer.from(rows.find((x) => x.payload_kind === 'png').payload_b64, 'base64').toString(), 'not-really-a-png');
    assert.equal(jsonLines(sedna(['samples', 'export', '--task', 'site-a'], { home }).stdout).length, 3);

    // a quota of ~8 rows: logging 20 more evicts the least valuable, never the labelled ones
    assert.equal(sedna(['init', '--max-outbox-mb', String(1400 / (1024 * 1024))], { home }).code, 0);
    logSamples(home, Array.from({ length: 20 }, (_, i) => sample(100 + i, { hardness: 0.1 + i / 40 })));
    const st = json(sedna(['status', '--json'], { home }).stdout);
    assert.equal(st.device, 'gw-1');
    assert.ok(st.evictions.count >= 15, JSON.stringify(st.evictions));
    assert.equal(st.evictions.labelled, 0);
    assert.equal(st.evictions.count, st.evictions.pending + st.evictions.uploaded);
    assert.ok(st.outbox.bytes <= st.outbox.max_bytes);
    assert.equal(st.outbox.pending + st.evictions.count, 7 + 20);
    assert.equal(st.outbox.labels_pending, 3);
    const left = new Set(json<{ samples: any[] }>(sedna(['samples', 'ls', '--json', '--limit', '100'], { home }).stdout).samples.map((x) => x.id));
    for (const id of [ids[0], ids[1], ids[3]]) assert.ok(left.has(id), 'labelled samples are kept');
    assert.match(sedna(['status'], { home }).stdout, /evicted\s+\d+ .*pending \(0 labelled\)/);
  } finally {
    t.cleanup();
  }
});

test('a locked database and a read-only one fail with one line naming the file', () => {
  const t = tempDir();
  try {
    const home = join(t.dir, 'edge');
    assert.equal(sedna(['init', '--device-id', 'gw-1'], { home }).code, 0, 'init');
    const [id] = logSamples(home, [sample(1)]);
    const p = homePaths(home);
    const db = openEdgeDb(p.db);
    db.exec('BEGIN IMMEDIATE'); // another writer holds the lock for longer than the busy timeout
    try {
      const r = sedna(['feedback', '--sample', id.sampleId, '--label', 'x'], { home });
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.match(r.stderr, /edge\.db: database is locked by another process/);
    } finally {
      db.exec('ROLLBACK');
      db.close();
    }
    // SQLITE_READONLY from a real read-only connection maps to a line naming the file
    const Database = createRequire(import.meta.url)('better-sqlite3');
    const ro = new Database(p.db, { readonly: true });
    try {
      let err: unknown;
      try {
        ro.prepare(`UPDATE samples SET label = 'x'`).run();
      } catch (e) {
        err = e;
      }
      assert.match((asStorageError(err, p.db) as Error).message, new RegExp(`${p.db.replace(/[.]/g, '\\.')}: read-only`));
    } finally {
      ro.close();
    }
    mkdirSync(join(t.dir, 'empty'));
    const r = sedna(['status'], { home: join(t.dir, 'empty') });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not an edge home .*sedna-ll init/);
  } finally {
    t.cleanup();
  }
});
