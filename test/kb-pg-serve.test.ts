// `kb serve --store postgres://...` as replicas: the CLI contract end to end against a real
// PostgreSQL (throw-away cluster, test/helpers/postgres.ts). No data directory anywhere: kb init
// --store writes the private key only to --signing-key, two replicas serve the same database,
// the admin token and pushes are shared, a replica killed with SIGKILL in the middle of pushes
// loses nothing it acknowledged (every acknowledged id stored exactly once, counters = rows), and
// a database that is down, or a backend terminated under a push, answers it with 503 +
// Retry-After (the replica keeps serving; sync, not on a TTY, says on stderr that it retried).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { sedna, sednaSpawn, tempDir } from './helpers/cli.js';
import { wireSample } from './helpers/kb-sample.js';
import { makeEdge, sednaAsync, seedOutbox } from './helpers/sync-edge.js';
import { postgresMissing, startPostgres, type TestPostgres } from './helpers/postgres.js';
import { verifyBytes } from '../src/format/signature.js';
import { verifyIndexSignature, walkChain } from '../src/format/key-chain.js';

let idSeq = 0;

function sample() {
  return wireSample(`pg-${process.pid}-${idSeq++}-${randomBytes(4).toString('hex')}`, randomBytes(3000), { attrs: { site: 'berlin' }, pred_label: 'a', scores: [0.6, 0.4], created_at: Date.now() });
}

interface Replica {
  url: string;
  proc: ChildProcess;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/** `kb serve --store URL --blobs DIR` on a free port; resolves once it printed its JSON line */
async function replica(store: string, blobs: string): Promise<Replica> {
  const proc = sednaSpawn(['kb', 'serve', '--store', store, '--blobs', blobs, '--port', '0', '--log-level', 'warn']);
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve((JSON.parse(line) as { listening: string }).listening);
    });
    proc.once('exit', (c) => reject(new Error(`kb serve exited ${c}: ${err}`)));
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    url,
    proc,
    kill9: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

async function push(url: string, token: string, samples: unknown[]): Promise<Response> {
  return fetch(`${url}/v1/samples`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ samples }) });
}

/**
 * A connection of the test holding an exclusive lock on samples: a push's insert waits on it.
 * terminateWaiter(): once a backend waits on the lock (unless stop() first), end it as an
 * administrator would (pg_terminate_backend), then release the lock; whether one was ended.
 */
async function samplesLocked(url: string): Promise<{ terminateWaiter(stop?: () => boolean): Promise<boolean>; end(): Promise<void> }> {
  const { default: P } = await import('pg');
  const db = new P.Client({ connectionString: url });
  await db.connect();
  await db.query('BEGIN');
  await db.query('LOCK TABLE samples IN ACCESS EXCLUSIVE MODE');
  return {
    async terminateWaiter(stop = () => false) {
      let pid: number | undefined;
      while (pid === undefined && !stop()) {
        const w = await db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()");
        pid = w.rows[0]?.pid;
      }
      if (pid !== undefined) await db.query('SELECT pg_terminate_backend($1)', [pid]);
      await db.query('ROLLBACK');
      return pid !== undefined;
    },
    end: () => db.end(),
  };
}

const missing = postgresMissing();

describe('kb serve --store postgres:// replicas', { skip: missing ?? false }, () => {
  let pg: TestPostgres;
  let tmp: { dir: string; cleanup: () => void };
  let store: string;
  let blobs: string;
  let keyFile: string;
  let admin: string;
  let publicKeyPem: string;
  let device: string;
  const running: Replica[] = [];

  before(async () => {
    pg = await startPostgres();
    tmp = tempDir('sedna-ll-kbpg-');
    store = await pg.createDatabase();
    blobs = join(tmp.dir, 'blobs');
    keyFile = join(tmp.dir, 'signing.key');
    const init = sedna(['kb', 'init', '--store', store, '--signing-key', keyFile, '--json']);
    assert.equal(init.code, 0, init.stderr);
    ({ admin_token: admin, public_key: publicKeyPem } = JSON.parse(init.stdout) as { admin_token: string; public_key: string });
    const dev = sedna(['kb', 'device', 'add', 'gw-1', '--store', store, '--json']);
    assert.equal(dev.code, 0, dev.stderr);
    device = (JSON.parse(dev.stdout) as { token: string }).token;
  });
  after(async () => {
    for (const r of running) if (r.proc.exitCode === null && r.proc.signalCode === null) await r.kill9();
    await pg?.stop();
    tmp?.cleanup();
  });

  test('kb init --store: the private key only in --signing-key (0600), again refused; bad --store is a usage error', () => {
    assert.ok(existsSync(keyFile));
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const again = sedna(['kb', 'init', '--store', store, '--signing-key', join(tmp.dir, 'other.key')]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already a KB/);
    const bad = sedna(['kb', 'device', 'ls', '--store', 'mysql://x/y']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--store .*expected postgres:\/\//);
  });

  test('two replicas share pushes and the admin token; one killed with SIGKILL mid-push loses nothing acknowledged', async () => {
    const a = await replica(store, blobs);
    const b = await replica(store, blobs);
    running.push(a, b);
    // the same sample through both replicas: stored once
    const one = sample();
    for (const r of [a, b]) {
      const res = await push(r.url, device, [one]);
      assert.equal(res.status, 200);
      assert.deepEqual(((await res.json()) as { stored: string[] }).stored, [one.id]);
    }
    const stats = await fetch(`${b.url}/v1/admin/stats`, { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(stats.status, 200, 'replica b accepts the admin token from the database');
    assert.equal(((await stats.json()) as { samples: number }).samples, 1);

    // pushes to replica a in flight; a is killed after the first acknowledgements
    const acked = new Set<string>();
    const sent = new Set<string>();
    let killed = false;
    let firstAck!: () => void;
    const gotAck = new Promise<void>((r) => (firstAck = r));
    const worker = async () => {
      while (!killed) {
        const batch = Array.from({ length: 20 }, sample);
        for (const s of batch) sent.add(s.id);
        try {
          const res = await push(a.url, device, batch);
          if (res.status === 200) {
            for (const id of ((await res.json()) as { stored: string[] }).stored) acked.add(id);
            firstAck();
          }
        } catch {
          return; // connection cut by the kill: nothing acknowledged for this batch
        }
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await gotAck;
    killed = true;
    await a.kill9();
    await Promise.all(workers);
    assert.ok(acked.size > 0);

    // every acknowledged id is in the database exactly once, counters = rows (read through b)
    const { default: P } = await import('pg');
    const c = new P.Client({ connectionString: store });
    await c.connect();
    try {
      const r = await c.query('SELECT id, count(*)::int AS n FROM samples WHERE id = ANY($1::text[]) GROUP BY id', [[...acked]]);
      assert.equal(r.rows.length, acked.size, 'every acknowledged id stored');
      assert.ok(r.rows.every((x: { n: number }) => x.n === 1));
      const rows = (await c.query('SELECT count(*)::int AS n FROM samples')).rows[0].n as number;
      const counted = (await c.query("SELECT sum(value)::int AS n FROM counter_shards WHERE name = 'samples_new'")).rows[0].n as number;
      assert.equal(counted, rows, 'samples_new = rows inserted');
      assert.ok(rows <= sent.size + 1);
    } finally {
      await c.end();
    }
    const st = (await (await fetch(`${b.url}/v1/admin/stats`, { headers: { authorization: `Bearer ${admin}` } })).json()) as { samples: number };
    assert.ok(st.samples >= acked.size + 1, 'maintained totals include every acknowledged sample');
    await b.stop();
  });

  test('database down: a push answers 503 with Retry-After; back up: the same push is stored', async () => {
    const r = await replica(store, blobs);
    running.push(r);
    const s = sample();
    pg.down();
    try {
      const res = await push(r.url, device, [s]);
      assert.equal(res.status, 503, await res.clone().text());
      assert.ok(Number(res.headers.get('retry-after')) > 0);
      assert.match(((await res.json()) as { error: string }).error, /KB database unavailable/);
    } finally {
      pg.up();
    }
    // the pool reconnects on the next request
    let res = await push(r.url, device, [s]);
    for (let i = 0; i < 50 && res.status === 503; i++) res = await push(r.url, device, [s]);
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { stored: string[] }).stored, [s.id]);
    await r.stop();
  });

  test('a database backend terminated under a push in flight: that push answers 503 + Retry-After, the replica keeps serving', async () => {
    const r = await replica(store, blobs);
    running.push(r);
    const lock = await samplesLocked(store);
    try {
      const s = sample();
      const res = push(r.url, device, [s]);
      assert.ok(await lock.terminateWaiter(), 'the push waited on the lock');
      const first = await res;
      assert.equal(first.status, 503, await first.clone().text());
      assert.ok(Number(first.headers.get('retry-after')) > 0);
      assert.match(((await first.json()) as { error: string }).error, /KB database unavailable/);
      const again = await push(r.url, device, [s]);
      assert.equal(again.status, 200, await again.clone().text());
      assert.deepEqual(((await again.json()) as { stored: string[] }).stored, [s.id]);
    } finally {
      await lock.end();
    }
    await r.stop();
  });

  test('sync through a KB that answers one push 503 (its database backend terminated): not on a TTY the retry is one plain stderr line, stdout only the --json record', async () => {
    const r = await replica(store, blobs);
    running.push(r);
    const e = makeEdge({ url: r.url, deviceToken: device, publicKeyPem }, { deviceId: 'gw-1' });
    const lock = await samplesLocked(store);
    try {
      seedOutbox(e.home, 5, 512, { seed: 41 });
      // stdout and stderr are pipes here, as under cron
      const run = sednaAsync(['sync', '--push-only', '--json'], { home: e.home });
      let ended = false;
      run.finally(() => (ended = true)).catch(() => {});
      assert.ok(await lock.terminateWaiter(() => ended), 'the push waited on the lock');
      const res = await run;
      assert.equal(res.code, 0, res.stderr);
      assert.equal(JSON.parse(res.stdout).acked, 5);
      assert.equal(res.stdout.trim().split('\n').length, 1, 'stdout: the --json record only');
      assert.match(res.stderr, /^sedna-ll: sync: retry 1 in \d+ ms \(HTTP 503 KB database unavailable: [^\n]*\)$/m);
      assert.doesNotMatch(res.stderr, /[\r\x1b]/, 'no progress bar, no control codes');
    } finally {
      await lock.end();
      e.cleanup();
    }
    await r.stop();
  });

  test('kb train / publish from another machine: without --signing-key nothing is trained; with it, a version every replica serves signed', async () => {
    const db = await pg.createDatabase();
    const env = { SEDNA_LL_KB_STORE: db, SEDNA_LL_KB_BLOBS: join(tmp.dir, 'blobs-train') };
    const key = join(tmp.dir, 'train.key');
    const init = sedna(['kb', 'init', '--signing-key', key, '--json'], { env });
    assert.equal(init.code, 0, init.stderr);
    const dev = JSON.parse(sedna(['kb', 'device', 'add', 'gw-t', '--json'], { env }).stdout) as { token: string; public_key: string };
    const lines: string[] = [];
    for (let i = 0; i < 300; i++) {
      const c = i % 3;
      lines.push(JSON.stringify({ x: [c + (i % 7) / 20, -c + (i % 5) / 20, (i % 11) / 10], label: String(c), attrs: { site: 'a' } }));
    }
    writeFileSync(join(tmp.dir, 'train.jsonl'), lines.join('\n') + '\n');
    assert.equal(sedna(['kb', 'samples', 'import', join(tmp.dir, 'train.jsonl')], { env }).code, 0);
    const noKey = sedna(['kb', 'train', '--json'], { env, timeoutMs: 300_000 });
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /holds no signing key/);
    const train = sedna(['kb', 'train', '--json', '--signing-key', key], { env, timeoutMs: 300_000 });
    assert.equal(train.code, 0, train.stderr);
    const rec = JSON.parse(train.stdout) as { round: number; version: number };
    assert.deepEqual([rec.round, rec.version], [1, 1], 'the refused run trained nothing: this is round 1');
    const r = await replica(db, join(tmp.dir, 'blobs-train'));
    running.push(r);
    const res = await fetch(`${r.url}/v1/index?since=0`, { headers: { authorization: `Bearer ${dev.token}` } });
    assert.equal(res.status, 200);
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.ok(verifyBytes(bytes, res.headers.get('x-sedna-signature')!, dev.public_key), 'signed by the trainer, verified with the key kb device add handed out');

    // key rotation on PostgreSQL: the database only ever holds public keys; the transition is
    // signed with the --signing-key file, which becomes the new key; the replica (no key) serves
    // the chain and the next version, signed by the new key
    const oldCopy = join(tmp.dir, 'train-old.key');
    copyFileSync(key, oldCopy);
    const rot = sedna(['kb', 'keys', 'rotate', '--signing-key', key, '--json'], { env });
    assert.equal(rot.code, 0, rot.stderr);
    const rr = JSON.parse(rot.stdout) as { public_key: string; last_version: number; retired: string };
    assert.equal(rr.last_version, 1);
    const stale = sedna(['kb', 'publish', '--force', '--signing-key', oldCopy, '--json'], { env });
    assert.equal(stale.code, 2, 'the old key publishes nothing after the rotation');
    assert.match(stale.stderr, /not the private key of this KB's public key/);
    const pub = sedna(['kb', 'publish', '--force', '--signing-key', key, '--json'], { env });
    assert.equal(pub.code, 0, pub.stderr);
    assert.equal((JSON.parse(pub.stdout) as { version: number }).version, 2);
    const keysRes = await fetch(`${r.url}/v1/keys`, { headers: { authorization: `Bearer ${dev.token}` } });
    const chain = (await keysRes.json()) as { public_key: string; transitions: unknown[] };
    assert.equal(chain.public_key, rr.public_key);
    const w = walkChain(dev.public_key, chain.transitions);
    assert.equal(w.refused, null);
    assert.deepEqual(w.epochs.map((e) => [e.after, e.upto]), [[null, 1], [1, null]]);
    const res2 = await fetch(`${r.url}/v1/index?since=1`, { headers: { authorization: `Bearer ${dev.token}` } });
    assert.equal(res2.status, 200);
    assert.ok(verifyIndexSignature(w.epochs, Buffer.from(await res2.arrayBuffer()), res2.headers.get('x-sedna-signature')!), 'version 2 verifies with the new key through the chain');
    await r.stop();
  });
});
