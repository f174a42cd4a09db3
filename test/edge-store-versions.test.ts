// Installed KB versions on a real edge home: verification, atomic pointer moves, tamper detection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { openEdgeDb, kvGet, type DB } from '../src/store/db.js';
import { homePaths, type HomePaths } from '../src/store/home.js';
import { activateVersion, activeVersion, installVersion, latestKbSeq, listVersions, nextLocalSeq } from '../src/store/versions.js';
import { DEFAULT_ALLOCATION, DEFAULT_HARD, DEFAULT_UNSEEN, INDEX_FORMAT, type TaskIndex } from '../src/format/index-manifest.js';
import { generateSigningKeys, signBytes } from '../src/format/signature.js';
import { EXIT, ReportedError } from '../src/errors.js';
import { exitCodeFor } from '../src/commands/action.js';
import { writeIdentityModel } from './helpers/models.js';
import { tempDir } from './helpers/cli.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function fixture(): { paths: HomePaths; db: DB; src: string; model: Buffer; cleanup: () => void } {
  const t = tempDir('sedna-versions-');
  const paths = homePaths(join(t.dir, 'home'));
  const src = join(t.dir, 'src');
  mkdirSync(src);
  mkdirSync(paths.home);
  const model = readFileSync(writeIdentityModel(src, 'm', 3));
  const db = openEdgeDb(paths.db);
  return { paths, db, src, model, cleanup: () => (db.close(), t.cleanup()) };
}

function index(version: number, origin: 'kb' | 'local', model: Buffer, extra: Partial<TaskIndex> = {}): Buffer {
  const s = sha(model);
  const idx: TaskIndex = {
    format: INDEX_FORMAT,
    version,
    created_at: '2026-01-01T00:00:00Z',
    parent: version > 1 ? version - 1 : null,
    origin,
    tasks: [
      {
        id: 'global',
        attrs: {},
        model: {
          sha256: s,
          file: `models/${s}.onnx`,
          size: model.length,
          inputs: [{ name: 'input', shape: ['N', 3], dtype: 'float32' }],
          outputs: [{ name: 'probabilities', shape: ['N', 3], dtype: 'float32' }],
          labels: ['a', 'b', 'c'],
          preprocessing: { kind: 'vector' },
          output_kind: 'probabilities',
        },
      },
    ],
    allocation: DEFAULT_ALLOCATION,
    unseen: DEFAULT_UNSEEN,
    hard_examples: DEFAULT_HARD,
    ...extra,
  };
  return Buffer.from(JSON.stringify(idx));
}

function rejects(fn: () => unknown, code: number, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ReportedError && exitCodeFor(e) === code && re.test(e.message));
}

test('installVersion: local versions need no signature; models are placed once, verified, content-addressed', () => {
  const f = fixture();
  try {
    const modelPath = () => join(f.src, 'm.onnx');
    assert.equal(nextLocalSeq(f.db), 1);
    const id = installVersion(f.paths, f.db, { indexBytes: index(1, 'local', f.model), sig: null, origin: 'local', modelPath });
    assert.equal(id, 'local-1');
    assert.ok(existsSync(join(f.paths.models, `${sha(f.model)}.onnx`)));
    assert.ok(existsSync(join(f.paths.kb, 'local-1', 'index.json')));
    assert.deepEqual(readdirSync(f.paths.kb), ['local-1'], 'no temp directory left behind');
    assert.equal(listVersions(f.db)[0].state, 'staged');
    assert.equal(activeVersion(f.paths, f.db), null, 'installing does not activate');
    // same bytes again: a no-op; the model source is not even read
    assert.equal(installVersion(f.paths, f.db, { indexBytes: index(1, 'local', f.model), sig: null, origin: 'local', modelPath: () => '/nonexistent' }), 'local-1');
    assert.equal(nextLocalSeq(f.db), 2);
  } finally {
    f.cleanup();
  }
});

test('installVersion refuses wrong model bytes, missing/bad signatures and a different index under an existing id', () => {
  const f = fixture();
  try {
    const keys = generateSigningKeys();
    const other = generateSigningKeys();
    const bytes = index(4, 'kb', f.model);
    const modelPath = () => join(f.src, 'm.onnx');
    writeFileSync(join(f.src, 'evil.onnx'), Buffer.concat([f.model, Buffer.from([0])]));
    rejects(() => installVersion(f.paths, f.db, { indexBytes: bytes, sig: signBytes(bytes, keys.privateKey), origin: 'kb', modelPath: () => join(f.src, 'evil.onnx'), publicKey: keys.publicKey }), EXIT.VERIFY, /sha256/);
    rejects(() => installVersion(f.paths, f.db, { indexBytes: bytes, sig: null, origin: 'kb', modelPath, publicKey: keys.publicKey }), EXIT.VERIFY, /no signature/);
    rejects(() => installVersion(f.paths, f.db, { indexBytes: bytes, sig: signBytes(bytes, other.privateKey), origin: 'kb', modelPath, publicKey: keys.publicKey }), EXIT.VERIFY, /signature does not verify/);
    rejects(() => installVersion(f.paths, f.db, { indexBytes: bytes, sig: signBytes(bytes, keys.privateKey), origin: 'kb', modelPath }), EXIT.VERIFY, /no KB public key/);
    rejects(() => installVersion(f.paths, f.db, { indexBytes: index(4, 'local', f.model), sig: null, origin: 'kb', modelPath, publicKey: keys.publicKey }), EXIT.VERIFY, /origin "local"/);
    assert.throws(() => installVersion(f.paths, f.db, { indexBytes: Buffer.from('{"format":1}'), sig: null, origin: 'local', modelPath }), /invalid index/);
    assert.equal(listVersions(f.db).length, 0, 'nothing installed by any refused attempt');
    assert.equal(existsSync(join(f.paths.kb, '4')), false);

    assert.equal(installVersion(f.paths, f.db, { indexBytes: bytes, sig: signBytes(bytes, keys.privateKey), origin: 'kb', modelPath, publicKey: keys.publicKey }), '4');
    assert.equal(readFileSync(join(f.paths.kb, '4', 'index.json.sig'), 'utf8').trim(), signBytes(bytes, keys.privateKey));
    const changed = index(4, 'kb', f.model, { notes: { x: 1 } });
    rejects(() => installVersion(f.paths, f.db, { indexBytes: changed, sig: signBytes(changed, keys.privateKey), origin: 'kb', modelPath, publicKey: keys.publicKey }), EXIT.VERIFY, /different index/);
    assert.equal(latestKbSeq(f.db), 4);
  } finally {
    f.cleanup();
  }
});

test('activateVersion moves the pointer in one step: active -> previous -> retired; tampering is detected', () => {
  const f = fixture();
  try {
    const modelPath = () => join(f.src, 'm.onnx');
    const ids = [1, 2, 3].map((v) => installVersion(f.paths, f.db, { indexBytes: index(v, 'local', f.model), sig: null, origin: 'local', modelPath }));
    assert.deepEqual(activateVersion(f.db, ids[0]), { id: 'local-1', previous: null });
    assert.equal(kvGet(f.db, 'previous_version'), null);
    assert.deepEqual(activateVersion(f.db, ids[1]), { id: 'local-2', previous: 'local-1' });
    assert.deepEqual(activateVersion(f.db, ids[2]), { id: 'local-3', previous: 'local-2' });
    const state = Object.fromEntries(listVersions(f.db).map((v) => [v.id, v.state]));
    assert.deepEqual(state, { 'local-1': 'retired', 'local-2': 'previous', 'local-3': 'active' });
    assert.equal(activeVersion(f.paths, f.db)!.index.version, 3);
    // back to the previous one (what a rollback does)
    activateVersion(f.db, 'local-2');
    assert.equal(kvGet(f.db, 'active_version'), 'local-2');
    assert.equal(kvGet(f.db, 'previous_version'), 'local-3');
    assert.equal((f.db.prepare(`SELECT COUNT(*) AS n FROM kb_versions WHERE state = 'active'`).get() as { n: number }).n, 1);
    assert.ok((f.db.prepare(`SELECT COUNT(*) AS n FROM events WHERE kind = 'version_activated'`).get() as { n: number }).n === 4);
    rejects(() => activateVersion(f.db, 'local-9'), EXIT.USAGE, /not installed/);

    writeFileSync(join(f.paths.kb, 'local-2', 'index.json'), index(2, 'local', f.model, { notes: { tampered: true } }));
    rejects(() => activeVersion(f.paths, f.db), EXIT.VERIFY, /modified after install/);
  } finally {
    f.cleanup();
  }
});

test('installVersion: models the caller verified itself (verifiedModels) are not re-read; all others still are', () => {
  const f = fixture();
  try {
    const s = sha(f.model);
    // what a pull placed after hashing the stream: the file at models/<sha>.onnx. Here its bytes
    // differ (same size) so that a re-read would be visible: only the caller's word vouches for it
    mkdirSync(f.paths.models, { recursive: true });
    const placed = join(f.paths.models, `${s}.onnx`);
    const other = Buffer.from(f.model);
    other[0] ^= 0xff;
    writeFileSync(placed, other);
    const noSource = () => '/nonexistent/model.onnx';
    // without the caller's word (bundles, task add): hashed, found wrong, refused
    rejects(() => installVersion(f.paths, f.db, { indexBytes: index(1, 'local', f.model), sig: null, origin: 'local', modelPath: noSource }), EXIT.VERIFY, /cannot read/);
    // vouched for, but a different sha: still verified
    rejects(
      () => installVersion(f.paths, f.db, { indexBytes: index(1, 'local', f.model), sig: null, origin: 'local', modelPath: noSource, verifiedModels: new Set(['b'.repeat(64)]) }),
      EXIT.VERIFY,
      /cannot read/,
    );
    // vouched for with the wrong size on disk: verified
    writeFileSync(placed, other.subarray(1));
    rejects(() => installVersion(f.paths, f.db, { indexBytes: index(1, 'local', f.model), sig: null, origin: 'local', modelPath: noSource, verifiedModels: new Set([s]) }), EXIT.VERIFY, /cannot read/);
    // vouched for, right size: trusted without reading it again
    writeFileSync(placed, other);
    assert.equal(installVersion(f.paths, f.db, { indexBytes: index(1, 'local', f.model), sig: null, origin: 'local', modelPath: noSource, verifiedModels: new Set([s]) }), 'local-1');
    assert.deepEqual(readFileSync(placed), other, 'the placed file was left as the caller verified it');
  } finally {
    f.cleanup();
  }
});
