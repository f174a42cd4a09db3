// The KbStore contract: ONE suite per interface (settings, devices, samples, model registry,
// versions, channels, counters/events, transactions and locks), run against every backend, like
// a storage driver test matrix: the embedded SQLite + files store and the PostgreSQL store (a
// throw-away cluster started by this file: test/helpers/postgres.ts; under CI=true a missing
// PostgreSQL fails the file, locally it skips with the reason).
//
// "replica" is a second store over the same data: the PostgreSQL backend's second pool (another
// kb serve); the SQLite backend's same instance (one server process per data directory).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { existsSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tempDir } from './helpers/cli.js';
import { kbSample } from './helpers/kb-sample.js';
import { postgresMissing, startPostgres, type TestPostgres } from './helpers/postgres.js';
import { waitsOnLock } from './helpers/kb-backends.js';
import { SqliteKbStore, INLINE_PAYLOAD_MAX } from '../src/kb/sqlite-store.js';
import { PgKbStore } from '../src/kb/pg-store.js';
import { FsBlobStore } from '../src/kb/blob-store.js';
import { kbPaths } from '../src/kb/paths.js';
import { generateSigningKeys } from '../src/format/signature.js';
import type { KbStore, NewSample, TaskRecord } from '../src/kb/store.js';

interface Opened {
  store: KbStore;
  /** a second store over the same KB (see the header) */
  replica(): Promise<KbStore>;
  /** how to open this KB in a child process: argv for test/fixtures-free node -e scripts */
  childOpen: string;
  /** PostgreSQL: the database URL */
  url?: string;
  /** the embedded backend's versions/ directory (files of version n in versions/<n>/) */
  versionsDir?: string;
  /** resolves once a query of the KB waits on a lock (PostgreSQL); undefined: not observable */
  waitBlocked?: (stop: () => boolean) => Promise<void>;
  /** resolves once at least n queries of the KB wait on a lock at once (PostgreSQL), or stop() */
  waitBlockedCount?: (n: number, stop: () => boolean) => Promise<void>;
  cleanup(): Promise<void>;
}

interface Backend {
  name: string;
  skip: string | false;
  open(): Promise<Opened>;
}

const missingPg = postgresMissing();
let pg: TestPostgres | null = null;

const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    skip: false,
    open: async () => {
      const t = tempDir('sedna-ll-kbstore-');
      const paths = kbPaths(join(t.dir, 'kb'));
      mkdirSync(paths.keys, { recursive: true });
      const keys = generateSigningKeys();
      writeFileSync(paths.privateKey, keys.privateKey, { mode: 0o600 });
      writeFileSync(paths.publicKey, keys.publicKey);
      const store = new SqliteKbStore(paths);
      return {
        store,
        versionsDir: paths.versions,
        replica: async () => store,
        childOpen: `const { SqliteKbStore } = await import(${JSON.stringify(new URL('../src/kb/sqlite-store.ts', import.meta.url).href)}); const { kbPaths } = await import(${JSON.stringify(new URL('../src/kb/paths.ts', import.meta.url).href)}); const store = new SqliteKbStore(kbPaths(${JSON.stringify(paths.data)}));`,
        cleanup: async () => {
          await store.close();
          t.cleanup();
        },
      };
    },
  },
  {
    name: 'postgres',
    skip: missingPg ?? false,
    open: async () => {
      pg ??= await startPostgres();
      const url = await pg.createDatabase();
      const t = tempDir('sedna-ll-kbstore-pg-');
      const keys = generateSigningKeys();
      const keyFile = join(t.dir, 'signing.key');
      writeFileSync(keyFile, keys.privateKey, { mode: 0o600 });
      const blobs = () => new FsBlobStore(join(t.dir, 'blobs'), join(t.dir, 'tmp'));
      const store = await PgKbStore.open({ url, blobs: blobs(), signingKey: keyFile });
      await store.setMeta('signing_public_key', keys.publicKey);
      const replicas: KbStore[] = [];
      return {
        store,
        replica: async () => {
          const r = await PgKbStore.open({ url, blobs: blobs() });
          replicas.push(r);
          return r;
        },
        childOpen: `const { PgKbStore } = await import(${JSON.stringify(new URL('../src/kb/pg-store.ts', import.meta.url).href)}); const { FsBlobStore } = await import(${JSON.stringify(new URL('../src/kb/blob-store.ts', import.meta.url).href)}); const store = await PgKbStore.open({ url: ${JSON.stringify(url)}, blobs: new FsBlobStore(${JSON.stringify(join(t.dir, 'blobs'))}, ${JSON.stringify(join(t.dir, 'tmp'))}) });`,
        url,
        waitBlocked: (stop) => waitsOnLock(url, stop),
        waitBlockedCount: (n, stop) => waitsOnLock(url, stop, n),
        cleanup: async () => {
          for (const r of replicas) await r.close();
          await store.close();
          t.cleanup();
        },
      };
    },
  },
];

after(async () => {
  await pg?.stop();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** a pushed sample with a prediction, hard by margin, of KB version 3 */
function newSample(id: string, payload: Buffer | null = randomBytes(64), extra: Partial<NewSample> = {}): NewSample {
  return kbSample(id, payload, { attrs: { site: 'a' }, pred_label: 'x', scores: [0.7, 0.3], hard: true, hard_reasons: ['margin'], kb_version: 3, created_at: 1000, ...extra });
}

/** A push of one sample whose transaction stays open (its seq drawn, not committed) until release() */
async function openPush(store: KbStore, device: string, id: string): Promise<{ done: Promise<void>; release: () => void }> {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let inserted!: () => void;
  const inA = new Promise<void>((r) => (inserted = r));
  const done = store.tx(async (t) => {
    await t.putSamples(device, [newSample(id)]);
    inserted();
    await held;
  });
  await Promise.race([inA, done]);
  return { done, release };
}

function task(id: string, over: Partial<TaskRecord> = {}): TaskRecord {
  return {
    id,
    attrs: {},
    model_sha: 'a'.repeat(64),
    model_size: 10,
    inputs: [{ name: 'input', shape: [-1, 2], dtype: 'float32' }],
    outputs: [{ name: 'probabilities', shape: [-1, 2], dtype: 'float32' }],
    labels: ['a', 'b'],
    preprocessing: { kind: 'vector' },
    output_kind: 'probabilities',
    parent: null,
    metrics: {},
    centroid: null,
    radius: null,
    thresholds: null,
    samples: 0,
    updated_round: 0,
    fallback: false,
    created_at: 1,
    updated_at: 1,
    ...over,
  };
}


/** a task whose model blob exists in the store (publishable) */
async function storedTask(store: KbStore, id: string): Promise<TaskRecord> {
  const model = randomBytes(10);
  await store.blobs.put(model);
  return task(id, { model_sha: sha(model), model_size: 10 });
}

/** run a child node process with the store open; resolves when it printed `ready` */
function child(o: Opened, code: string): Promise<{ kill9: () => Promise<void> }> {
  const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `${o.childOpen} ${code}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready'))
        resolve({
          kill9: () =>
            new Promise<void>((r) => {
              p.once('exit', () => r());
              p.kill('SIGKILL');
            }),
        });
    });
    p.once('exit', (c) => reject(new Error(`child exited ${c} before ready: ${err}`)));
  });
}

for (const backend of BACKENDS) {
  describe(`KbStore contract: ${backend.name}`, { skip: backend.skip }, () => {
    let o: Opened;
    let store: KbStore;
    const fresh = async () => {
      o = await backend.open();
      store = o.store;
    };

    describe('SettingsStore', () => {
      before(fresh);
      after(() => o.cleanup());
      test('get / set / overwrite', async () => {
        await store.setMeta('k', 'v');
        await store.setMeta('k', 'w');
        assert.equal(await store.getMeta('k'), 'w');
        assert.equal(await store.getMeta('none'), null);
      });
    });

    describe('KeyStore', () => {
      before(fresh);
      after(() => o.cleanup());
      test('the public key everywhere, the signing key only where configured', async () => {
        const pub = await store.publicKey();
        assert.match(pub, /BEGIN PUBLIC KEY/);
        assert.match(await store.signingKey(), /BEGIN PRIVATE KEY/);
        if (backend.name === 'postgres') await assert.rejects((await o.replica()).signingKey(), /holds no signing key.*--signing-key/);
      });
    });

    describe('DeviceStore', () => {
      before(fresh);
      after(() => o.cleanup());
      test('add, look up by token hash, channel, report, revoke', async () => {
        await store.addDevice({ id: 'd1', token_hash: 'h1', channel: 'stable' });
        await assert.rejects(store.addDevice({ id: 'd1', token_hash: 'h2', channel: 'stable' }), /already exists/);
        assert.equal((await store.deviceByTokenHash('h1'))!.id, 'd1');
        assert.equal(await store.deviceByTokenHash('h9'), null);
        assert.ok(await store.setDeviceChannel('d1', 'canary'));
        assert.ok(!(await store.setDeviceChannel('ghost', 'canary')));
        await store.saveReport('d1', { active_version: 2, trial: { version: 2, result: 'fail', reason: 'canary' } }, 5000);
        const d = (await store.getDevice('d1'))!;
        assert.deepEqual([d.channel, d.active_version, d.last_seen, d.last_report!.trial!.result], ['canary', 2, 5000, 'fail']);
        assert.ok(await store.revokeDevice('d1'));
        assert.ok((await store.getDevice('d1'))!.revoked_at! > 0);
        assert.equal((await store.listDevices({ channel: 'canary' })).length, 1);

      });
    });

    describe('SampleStore', () => {
      before(fresh);
      after(() => o.cleanup());
      test('idempotent upsert, ownership, payloads inline and in blobs, labels, counters, paging', async () => {
        const big = randomBytes(INLINE_PAYLOAD_MAX + 1000);
        const pp = { kind: 'image' as const, width: 8, height: 8, channels: 1 as const, layout: 'NCHW' as const, scale: 1 / 255 };
        const batch = [newSample('id-aaaaaaaa'), newSample('id-bbbbbbbb', big, { preprocessing: pp }), newSample('id-cccccccc', null, { label: 'l1' })];
        const r1 = await store.putSamples('dev-1', batch);
        assert.deepEqual([r1.stored, r1.inserted, r1.rejected], [batch.map((s) => s.id), 3, []]);
        const r2 = await store.putSamples('dev-1', batch);
        assert.deepEqual([r2.stored, r2.inserted], [batch.map((s) => s.id), 0]);
        const r3 = await store.putSamples('dev-2', [newSample('id-aaaaaaaa', randomBytes(8)), newSample('id-dddddddd')]);
        assert.deepEqual(r3.stored, ['id-dddddddd']);
        assert.equal(r3.rejected[0].id, 'id-aaaaaaaa');
        assert.deepEqual(await store.samplePayload('id-aaaaaaaa'), batch[0].payload, 'never overwritten by another owner');
        assert.deepEqual(await store.samplePayload('id-bbbbbbbb'), big);
        assert.deepEqual((await store.getSample('id-bbbbbbbb'))!.preprocessing, pp, 'an image sample keeps the preprocessing the edge logged');
        assert.equal((await store.getSample('id-aaaaaaaa'))!.preprocessing, undefined);
        assert.ok(await store.blobs.has(sha(big)), 'a large payload lives in the blob store');
        assert.equal(await store.samplePayload('id-cccccccc'), null);
        assert.equal(await store.samplePayload('nope'), null);
        const s = (await store.getSample('id-aaaaaaaa'))!;
        assert.deepEqual([s.device_id, s.task, s.attrs, s.scores, s.hard, s.hard_reasons, s.kb_version, s.payload_bytes, s.source], ['dev-1', 'global', { site: 'a' }, [0.7, 0.3], true, ['margin'], 3, 64, 'edge']);

        // labels: a device only for its own samples, all or nothing; admin for any
        const bad = await store.setLabels([{ id: 'id-aaaaaaaa', label: 'z' }, { id: 'id-dddddddd', label: 'z' }], 'edge', 'dev-2');
        assert.deepEqual([bad.stored, bad.forbidden], [[], ['id-aaaaaaaa']]);
        assert.equal((await store.getSample('id-dddddddd'))!.label, null, 'nothing stored from a refused batch');
        const ok = await store.setLabels([{ id: 'id-aaaaaaaa', label: 'z' }, { id: 'missing-1', label: 'q' }], 'admin', null);
        assert.deepEqual([ok.stored, ok.unknown, ok.newly_labelled], [['id-aaaaaaaa'], ['missing-1'], 1]);
        const again = await store.setLabels([{ id: 'id-aaaaaaaa', label: 'y' }], 'admin', null);
        assert.equal(again.newly_labelled, 0, 'relabelling is not new');
        const c = await store.counters();
        assert.deepEqual([c.samples_new, c.labelled_new], [4, 2]);
        await store.setCounter('labelled_new', 0);
        await store.addCounter('labelled_new', 5);
        assert.equal((await store.counters()).labelled_new, 5);

        // listing: filters, keyset paging, order
        assert.equal(await store.countSamples(), 4);
        assert.equal(await store.countSamples({ labelled: true }), 2);
        assert.deepEqual((await store.listSamples({ device: 'dev-2' })).map((x) => x.id), ['id-dddddddd']);
        const p1 = await store.listSamples({ limit: 2 });
        const p2 = await store.listSamples({ after: p1[1].seq, limit: 2 });
        assert.deepEqual([...p1, ...p2].map((x) => x.id), ['id-aaaaaaaa', 'id-bbbbbbbb', 'id-cccccccc', 'id-dddddddd']);
        assert.equal((await store.listSamples({ order: 'desc', limit: 1 }))[0].id, 'id-dddddddd');

        // learner bookkeeping
        await store.assignSamples([{ id: 'id-aaaaaaaa', assigned_task: 't1', split: 'heldout' }]);
        await store.markSamplesUsed(['id-aaaaaaaa', 'id-bbbbbbbb'], 4);
        assert.deepEqual((await store.listSamples({ assigned_task: 't1', split: 'heldout' })).map((x) => x.used_in_round), [4]);
        assert.equal(await store.countSamples({ unused: true }), 2);
        assert.equal(await store.countSamples({ split: 'none' }), 3);
        const st = await store.stats();
        assert.deepEqual([st.samples, st.labelled], [4, 2]);
      });

      test('concurrent pushes of the same ids from two replicas: every id stored once, counters = rows', async () => {
        const other = await o.replica();
        const before0 = await store.countSamples();
        const c0 = (await store.counters()).samples_new ?? 0;
        const s0 = (await store.stats()).samples;
        const ids = Array.from({ length: 60 }, (_, i) => `cc-${i}`);
        const batches = [0, 1, 2, 3].map((k) => ids.filter((_, i) => i % 4 !== k).map((id) => newSample(id, Buffer.from(id.padEnd(64, '.')))));
        const rs = await Promise.all(batches.map((b, k) => (k % 2 ? other : store).putSamples('dev-c', b)));
        for (const [k, r] of rs.entries()) assert.deepEqual([r.stored.length, r.rejected], [batches[k].length, []], 'every sample acknowledged');
        assert.equal(rs.reduce((a, r) => a + r.inserted, 0), ids.length, 'inserted exactly once in total');
        assert.equal((await store.countSamples()) - before0, ids.length);
        assert.equal(((await store.counters()).samples_new ?? 0) - c0, ids.length, 'samples_new = rows inserted');
        assert.equal((await store.stats()).samples - s0, ids.length, 'maintained total = rows');
      });

      test('pushes held open never wait for each other (each adds to a counter shard no other holds); with all 16 held the next waits; counts exact', async () => {
        if (!o.waitBlocked) return; // one connection (SQLite): pushes run one after another
        // a pool holds 10 connections: 8 open pushes on each of two, the 17th push on a third
        const pools = [store, await o.replica()];
        const third = await o.replica();
        const c0 = (await store.counters()).samples_new ?? 0;
        const s0 = (await store.stats()).samples;
        const open: { done: Promise<void>; release: () => void }[] = [];
        const releaseAll = async () => {
          for (const h of open) h.release();
          await Promise.all(open.map((h) => h.done));
        };
        for (let i = 0; i < 16; i++) {
          let started = false;
          const push = openPush(pools[i % 2], 'dev-shard', `shard-${i}`).finally(() => (started = true));
          const waited = await Promise.race([push.then(() => false), o.waitBlocked(() => started).then(() => !started)]);
          if (waited) {
            await releaseAll();
            (await push).release();
            await (await push).done;
            assert.fail(`push ${i + 1} waited on a lock while ${i} pushes were held open`);
          }
          open.push(await push);
        }
        // every shard held: the 17th waits for one of them, then adds to it
        let lastDone = false;
        const last = third.putSamples('dev-shard', [newSample('shard-16')]).finally(() => (lastDone = true));
        await Promise.race([last, o.waitBlocked(() => lastDone)]);
        const waitedAll = !lastDone;
        await releaseAll();
        assert.equal((await last).inserted, 1);
        assert.ok(waitedAll, 'the 17th push did not wait with all 16 shards held');
        assert.equal(((await store.counters()).samples_new ?? 0) - c0, 17, 'samples_new = pushes');
        assert.equal((await store.stats()).samples - s0, 17, 'maintained total = pushes');
      });

      test('ascending pages never skip a row whose seq commits after a higher one', async () => {
        const other = await o.replica();
        const seen = new Set((await store.listSamples({})).map((s) => s.id));
        let cursor = Math.max(0, ...(await store.listSamples({ order: 'desc', limit: 1 })).map((s) => s.seq));
        // A draws its seq first and commits last
        const { done: a, release } = await openPush(store, 'dev-p', 'ooo-a');
        if (backend.name === 'postgres') {
          // B (another replica) draws a higher seq and commits first: it must not wait for A
          // (it adds to a counter shard A does not hold)
          let bDone = false;
          const b = other.putSamples('dev-p', [newSample('ooo-b')]).finally(() => (bDone = true));
          await Promise.race([b, o.waitBlocked!(() => bDone)]);
          if (!bDone) {
            release();
            await a;
            await b;
            assert.fail('push B waited for push A, which was held open');
          }
        }
        const page = store === other ? null : other.listSamples({ after: cursor });
        // the reader waits for A (it cannot skip it); a reader that does not wait ends the race
        let settled = false;
        page?.finally(() => (settled = true)).catch(() => {});
        if (page && o.waitBlocked) await Promise.race([o.waitBlocked(() => settled), page]);
        release();
        await a;
        if (backend.name !== 'postgres') await other.putSamples('dev-p', [newSample('ooo-b')]);
        const got: string[] = page ? (await page).map((s) => s.id) : [];
        // page on from there until nothing is left: both ids, each once
        for (;;) {
          const more = await store.listSamples({ after: cursor, limit: 1 });
          if (!more.length) break;
          if (!got.includes(more[0].id)) got.push(more[0].id);
          cursor = more[0].seq;
        }
        assert.deepEqual(got.filter((id) => !seen.has(id)).sort(), ['ooo-a', 'ooo-b']);
        if (page) assert.deepEqual((await page).map((s) => s.id).sort(), ['ooo-a', 'ooo-b'], 'the page read while A was open includes A');
      });

      test('an ascending page waiting for a push in flight does not hold up new pushes', async () => {
        if (!o.waitBlocked) return; // one connection (SQLite): nothing waits on the watermark
        const other = await o.replica();
        const third = await o.replica();
        let cursor = Math.max(0, ...(await store.listSamples({ order: 'desc', limit: 1 })).map((s) => s.seq));
        const { done: a, release } = await openPush(store, 'dev-w', 'wm-a');
        let pageDone = false;
        const page = other.listSamples({ after: cursor });
        page.finally(() => (pageDone = true)).catch(() => {});
        await o.waitBlocked(() => pageDone); // the page waits for A
        // a new push meanwhile: it waits for nothing (not the page, not A: it adds to a counter
        // shard A does not hold), so a second backend waiting on a lock means it queued
        let bDone = false;
        const b = third.putSamples('dev-w', [newSample('wm-b')]).finally(() => (bDone = true));
        const blocked = await Promise.race([b.then(() => false), o.waitBlockedCount!(2, () => bDone).then(() => !bDone)]);
        release();
        await a;
        await b;
        assert.equal(blocked, false, 'a new push waited behind an ascending page');
        const got = (await page).map((s) => s.id);
        assert.ok(got.includes('wm-a'), 'the page read while A was open includes A');
        // nothing skipped: page on from the cursor
        const all: string[] = [];
        for (;;) {
          const more = await store.listSamples({ after: cursor, limit: 1 });
          if (!more.length) break;
          all.push(more[0].id);
          cursor = more[0].seq;
        }
        assert.deepEqual(all.sort(), ['wm-a', 'wm-b']);
      });

      test('rolling upgrade: a page waits for a push of the older version too (it holds only the shared watermark lock)', async () => {
        if (!o.url) return; // PostgreSQL only: replicas of two versions on one database
        const cursor = Math.max(0, ...(await store.listSamples({ order: 'desc', limit: 1 })).map((s) => s.seq));
        const { default: P } = await import('pg');
        const old = new P.Client({ connectionString: o.url });
        await old.connect();
        try {
          // what putSamples of the version before did: the shared lock (0x5ed1a11, 4), then the insert
          await old.query('BEGIN');
          await old.query('SELECT pg_advisory_xact_lock_shared($1, $2)', [0x5ed1a11, 4]);
          await old.query(
            `INSERT INTO samples (id, device_id, source, task, attrs, payload_kind, payload_blob, payload_sha, payload_bytes, scores, hard, hard_reasons, unseen, created_at, received_at)
             VALUES ('old-push-1', 'dev-o', 'edge', 't', '{}', 'none', false, 'x', 0, '[]', false, '[]', false, 1, 1)`,
          );
          await (await o.replica()).putSamples('dev-o', [newSample('new-push-1')]); // a higher seq, committed first
          let done = false;
          const page = store.listSamples({ after: cursor });
          page.finally(() => (done = true)).catch(() => {});
          await o.waitBlocked!(() => done);
          assert.equal(done, false, 'the page did not wait for the older push');
          await old.query('COMMIT');
          assert.deepEqual((await page).map((s) => s.id), ['old-push-1', 'new-push-1']);
        } finally {
          await old.end();
        }
      });

      test('scanSamples: one snapshot with payloads, in seq order, batches', async () => {
        const before0 = await store.countSamples();
        await store.putSamples('dev-s', [newSample('scan-1', Buffer.from('one')), newSample('scan-2', Buffer.from('two')), newSample('scan-3', null)]);
        const got: { id: string; payload: Buffer | null }[] = [];
        let first = true;
        for await (const batch of store.scanSamples({ device: 'dev-s' }, { batch: 2 })) {
          assert.ok(batch.length <= 2);
          for (const s of batch) got.push({ id: s.id, payload: s.payload });
          if (first) {
            first = false;
            // written after the scan began: not part of its snapshot
            await (await o.replica()).putSamples('dev-s', [newSample('scan-4')]);
          }
        }
        assert.deepEqual(got, [
          { id: 'scan-1', payload: Buffer.from('one') },
          { id: 'scan-2', payload: Buffer.from('two') },
          { id: 'scan-3', payload: null },
        ]);
        assert.equal(await store.countSamples(), before0 + 4, 'the late sample is stored all the same');
      });
    });

    describe('ModelStore', () => {
      before(fresh);
      after(() => o.cleanup());
      test('tasks (retired hidden, replace) and content-addressed blobs', async () => {
        await store.putTask(task('b', { fallback: true }));
        await store.putTask(task('a', { metrics: { accuracy: 0.9 }, extra: { history: [1, 2] } }));
        await store.putTask(task('old', { retired: true }));
        assert.deepEqual((await store.listTasks()).map((t) => t.id), ['a', 'b']);
        assert.equal((await store.listTasks({ includeRetired: true })).length, 3);
        assert.deepEqual((await store.getTask('a'))!.extra, { history: [1, 2] });
        await store.putTask(task('a', { updated_round: 2 }));
        assert.equal((await store.getTask('a'))!.updated_round, 2);

        const model = randomBytes(5000);
        const put = await store.blobs.put(Readable.from([model.subarray(0, 100), model.subarray(100)]));
        assert.deepEqual(put, { sha256: sha(model), size: 5000 });
        await assert.rejects(store.blobs.put(Buffer.from('x'), 'b'.repeat(64)), /expected/);
        assert.equal(await store.blobs.size(sha(model)), 5000);
        const chunks: Buffer[] = [];
        for await (const c of await store.blobs.get(sha(model), { start: 10, end: 19 })) chunks.push(c as Buffer);
        assert.deepEqual(Buffer.concat(chunks), model.subarray(10, 20));

      });
    });

    describe('VersionStore + ChannelStore', () => {
      before(fresh);
      after(() => o.cleanup());
      test('versions, index + signature, channels', async () => {
        const model = randomBytes(5000);
        await store.blobs.put(model);
        assert.equal(await store.latestVersion(), null);
        const idx = Buffer.from('{"v":1}');
        await store.addVersion({ n: 1, created_at: 1, parent: null, channel: 'stable', tasks: 1, notes: { r: 1 } }, idx, 'sig1', [sha(model)]);
        await assert.rejects(store.addVersion({ n: 1, created_at: 2, parent: null, channel: 'stable', tasks: 1, notes: null }, Buffer.from('{}'), 's', []), /already exists/);
        assert.deepEqual(await store.readVersionIndex(1), { bytes: idx, sig: 'sig1' }, 'a refused duplicate leaves the stored index alone');
        assert.ok(await store.isPublishedBlob(sha(model)));
        assert.ok(!(await store.isPublishedBlob('c'.repeat(64))));
        await store.addVersion({ n: 2, created_at: 3, parent: 1, channel: null, tasks: 1, notes: null }, Buffer.from('{"v":2}'), 'sig2', []);
        assert.equal((await store.getChannel('stable'))!.version, 1, 'channel null: no channel moved');
        const ch = await store.setChannelVersion('stable', 2);
        assert.deepEqual([ch.version, ch.previous_version], [2, 1]);
        await assert.rejects(store.setChannelVersion('stable', 9), /does not exist/);
        const up = await store.upsertChannel('canary', { config: { abort_pct: 30 } });
        assert.deepEqual([up.version, up.config], [null, { abort_pct: 30 }]);
        await store.upsertChannel('canary', { state: { trial: 2 } });
        assert.deepEqual((await store.getChannel('canary'))!.config, { abort_pct: 30 }, 'fields left out keep their value');
        assert.deepEqual((await store.listVersions()).map((v) => [v.n, v.parent, v.index_sha]), [
          [1, null, sha(idx)],
          [2, 1, sha(Buffer.from('{"v":2}'))],
        ]);
        assert.equal((await store.latestVersion())!.n, 2);

      });

      test('concurrent publishes from two replicas get consecutive versions: no duplicate, no gap', async () => {
        const other = await o.replica();
        const base = (await store.latestVersion())?.n ?? 0;
        const rs = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            (i % 2 ? other : store).tx(async (t) => {
              const n = await t.nextVersion();
              await t.addVersion({ n, created_at: Date.now(), parent: n - 1 || null, channel: null, tasks: 0, notes: { i } }, Buffer.from(`{"n":${n}}`), `sig${n}`, []);
              return n;
            }),
          ),
        );
        assert.deepEqual([...rs].sort((x, y) => x - y), [1, 2, 3, 4, 5, 6].map((k) => base + k));
        assert.deepEqual((await store.listVersions()).map((v) => v.n).slice(-6), [1, 2, 3, 4, 5, 6].map((k) => base + k));
      });

      test('rollout abort is a compare-and-set: two evaluators at once, one wins', async () => {
        const other = await o.replica();
        await store.upsertChannel('cas', { state: { rollout: { status: 'rolling' } } });
        const decide = (s: KbStore) =>
          s.tx(async (t) => {
            const c = (await t.lockChannel('cas'))!;
            const r = c.state.rollout as { status: string };
            if (r.status !== 'rolling') return false;
            await t.upsertChannel('cas', { state: { rollout: { status: 'aborted' } } });
            await t.logEvent('rollout_aborted', { channel: 'cas' });
            return true;
          });
        const wins = await Promise.all([decide(store), decide(other), decide(store), decide(other)]);
        assert.equal(wins.filter(Boolean).length, 1);
        assert.equal((await store.listEvents({ kind: 'rollout_aborted' })).length, 1);
      });
    });

    describe('publishing on VersionStore', () => {
      before(fresh);
      after(() => o.cleanup());
      test('two publishVersion at once: two signed consecutive versions', async () => {
        const { publishVersion } = await import('../src/kb/publish.js');
        await store.putTask(await storedTask(store, 'pub'));
        const base = (await store.latestVersion())?.n ?? 0;
        // two connections of the pool (PostgreSQL): as concurrent as two processes
        const [a, b] = await Promise.all([publishVersion(store, { channel: null }), publishVersion(store, { channel: null })]);
        assert.deepEqual([a.version.n, b.version.n].sort(), [base + 1, base + 2]);
        const second = a.version.n > b.version.n ? a : b;
        assert.equal(second.index.parent, base + 1, 'the later one is built on the earlier one');
      });
    });

    describe('versions that never commit', () => {
      before(fresh);
      after(() => o.cleanup());
      test('a publish rolled back, or killed -9 in its transaction, leaves no version: no row, no index, no files; the next publish takes the number', async () => {
        const n = ((await store.latestVersion())?.n ?? 0) + 1;
        const v = (notes: Record<string, unknown>) => ({ n, created_at: Date.now(), parent: null, channel: null, tasks: 0, notes });
        const files = () => (o.versionsDir && existsSync(o.versionsDir) ? readdirSync(o.versionsDir).sort() : []);
        const before0 = files();
        await assert.rejects(
          store.tx(async (t) => {
            await t.addVersion(v({ rolled: true }), Buffer.from('{"rolled":1}'), 'sigR', []);
            throw new Error('a later step of the publish failed');
          }),
          /a later step/,
        );
        assert.equal(await store.getVersion(n), null);
        assert.equal(await store.readVersionIndex(n), null, 'no index of a rolled-back version');
        assert.deepEqual(files(), before0, 'no files of a rolled-back version');

        // a publisher killed -9 after it wrote the version, before its commit
        const c = await child(
          o,
          `await store.tx(async (t) => { const n = await t.nextVersion(); await t.addVersion({ n, created_at: 1, parent: null, channel: null, tasks: 0, notes: null }, Buffer.from('{"killed":1}'), 'sigK', []); process.stdout.write('ready\\n'); await new Promise(() => {}); });`,
        );
        await c.kill9();
        assert.equal(await store.getVersion(n), null);
        assert.equal(await store.readVersionIndex(n), null, 'no index of a version that never committed (whatever the killed publisher left on disk)');

        await store.addVersion(v({ real: true }), Buffer.from('{"real":1}'), 'sigN', []);
        assert.deepEqual(await store.readVersionIndex(n), { bytes: Buffer.from('{"real":1}'), sig: 'sigN' });
        if (o.versionsDir) assert.deepEqual(files(), [...before0, String(n)].sort(), 'only committed versions have files');
      });
    });

    describe('CounterStore', () => {
      before(fresh);
      after(() => o.cleanup());
      test('counters add up across replicas; events; stats', async () => {
        const other = await o.replica();
        await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? other : store).addCounter('hits', 1)));
        assert.equal((await store.counters()).hits, 40);
        await store.setCounter('hits', 3);
        assert.equal((await other.counters()).hits, 3);
        assert.ok(!Object.keys(await store.counters()).some((k) => k.startsWith('total.')), 'totals are not counters');
        await store.logEvent('x', { a: 1 });
        await store.logEvent('y');
        assert.deepEqual((await store.listEvents({ kind: 'x' })).map((e) => e.detail), [{ a: 1 }]);
        assert.equal((await store.listEvents({ limit: 1 }))[0].kind, 'y');
        await store.setMeta('k', 'v');
        assert.equal(await store.getMeta('k'), 'v');
        assert.equal(await store.getMeta('none'), null);
        const st = await store.stats();
        assert.deepEqual([st.samples, st.labelled, st.versions], [0, 0, 0]);
      });
    });

    describe('KbStore.tx and trainLock', () => {
      before(fresh);
      after(() => o.cleanup());
      test('a transaction that throws stores nothing; one that returns stores everything', async () => {
        await assert.rejects(
          store.tx(async (t) => {
            await t.putSamples('dev-t', [newSample('tx-1')]);
            await t.setMeta('tx', 'yes');
            await t.addCounter('tx_count', 1);
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.equal(await store.getSample('tx-1'), null);
        assert.equal(await store.getMeta('tx'), null);
        assert.equal((await store.counters()).tx_count, undefined);
        const n = await store.tx(async (t) => {
          await t.putSamples('dev-t', [newSample('tx-2')]);
          await t.setMeta('tx', 'yes');
          return 7;
        });
        assert.equal(n, 7);
        assert.ok(await store.getSample('tx-2'));
        assert.equal(await store.getMeta('tx'), 'yes');
      });

      test('training lock: one holder; a holder killed with SIGKILL releases it', async () => {
        const release = await store.trainLock();
        await assert.rejects(store.trainLock(), /another kb train is running/);
        await release();
        const holder = await child(o, 'await store.trainLock(); console.log("ready"); setInterval(() => {}, 1000);');
        await assert.rejects(store.trainLock(), /another kb train is running/);
        await holder.kill9();
        // the database notices the dead connection (PostgreSQL) / the pid is gone (SQLite)
        let again: (() => Promise<void>) | null = null;
        for (let i = 0; i < 600 && !again; i++) {
          again = await store.trainLock().catch(async () => {
            await new Promise((r) => setTimeout(r, 100));
            return null;
          });
        }
        assert.ok(again, 'the lock of the killed holder was released');
        await again!();
      });
    });
  });
}
