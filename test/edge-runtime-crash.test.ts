// kill -9 of a running `sedna-ll infer` / `sedna-ll serve`: every sample it printed (answered)
// as "logged": true must be in the outbox afterwards, and the database must pass PRAGMA
// integrity_check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { sednaSpawn, tempDir } from './helpers/cli.js';
import { writeRandomMlp } from './helpers/models.js';
import { makeHome } from './edge-runtime-fixtures.js';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths } from '../src/store/home.js';
import { mulberry32 } from '../src/random.js';

async function crashRound(home: string, seed: number, killAfterLines: number): Promise<{ printed: string[]; lines: number }> {
  const child = sednaSpawn(['infer', '--batch', '16'], { home });
  const rand = mulberry32(seed);
  const printed: string[] = [];
  let lines = 0;
  let buf = '';
  let killed = false;
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_c, sig) => resolve(sig)));
  child.stdin!.on('error', () => {}); // EPIPE after the kill
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      // a torn last line cannot happen (one write per window), but be strict about what counts
      const o = JSON.parse(line) as { logged: boolean; sample_id?: string };
      lines++;
      if (o.logged) printed.push(o.sample_id!);
      if (!killed && lines >= killAfterLines) {
        killed = true;
        child.kill('SIGKILL');
      }
    }
  });
  // feed distinct samples in small bursts until the child is gone
  let n = 0;
  while (!killed && n < 200_000) {
    let s = '';
    for (let k = 0; k < 37; k++, n++) s += JSON.stringify({ id: n, x: Array.from({ length: 16 }, () => rand() * 4 - 2), attrs: { site: n % 3 ? 'a' : 'b' } }) + '\n';
    if (!child.stdin!.write(s)) await new Promise((r) => setTimeout(r, 2));
    await new Promise((r) => setTimeout(r, 1));
  }
  const sig = await exited;
  assert.equal(sig, 'SIGKILL', 'the child was killed, not finished');
  return { printed, lines };
}

test('infer survives kill -9: integrity_check ok and every sample printed as logged is stored', async () => {
  const t = tempDir();
  try {
    const a = writeRandomMlp(t.dir, 'a', [16, 8, 4], 1);
    const b = writeRandomMlp(t.dir, 'b', [16, 8, 4], 2);
    const tasks = [
      { id: 'a', model: a, inDim: 16, outDim: 4, attrs: { site: 'a' } },
      { id: 'b', model: b, inDim: 16, outDim: 4, attrs: { site: 'b' } },
    ];
    // every sample hard (c <= 1 < 1.01): a commit per window; then 30 % hard: group commits
    // spanning several windows
    const homeAll = join(t.dir, 'home-all');
    makeHome(homeAll, { tasks, hard: [{ type: 'cross_entropy', threshold: 1.01 }] });
    const homeSome = join(t.dir, 'home-some');
    makeHome(homeSome, { tasks, hard: [{ type: 'random', ratio: 0.3 }] });
    for (const [home, seed, after] of [
      [homeAll, 11, 300],
      [homeAll, 12, 1000],
      [homeSome, 13, 1500],
    ] as const) {
      const r = await crashRound(home, seed, after);
      assert.ok(r.lines >= after && r.printed.length > 0, `round ${seed}: ${r.lines} lines printed`);
      if (process.env.RT_DEBUG) console.error(`round ${seed}: ${r.lines} lines, ${r.printed.length} logged`);
      const db = openEdgeDb(homePaths(home).db);
      try {
        assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
        const has = db.prepare('SELECT 1 FROM samples WHERE id = ?').pluck();
        const missing = r.printed.filter((id) => !has.get(id));
        assert.deepEqual(missing, [], `${missing.length} of ${r.printed.length} samples printed as logged are missing`);
      } finally {
        db.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

// serve commits with synchronous=NORMAL and answers after an fdatasync of the WAL shared by the
// batches committed meanwhile (store/wal-durability.ts): a kill -9 right after answers arrived
// must lose none of the samples those answers reported logged, with 8 clients in flight.
test('serve survives kill -9 under 8 concurrent clients: every sample answered as logged is stored', async () => {
  const t = tempDir();
  const child0: { c: ReturnType<typeof sednaSpawn> | null } = { c: null };
  try {
    const m = writeRandomMlp(t.dir, 'm', [16, 8, 4], 3);
    const home = join(t.dir, 'home');
    makeHome(home, { tasks: [{ id: 'global', model: m, inDim: 16, outDim: 4 }], hard: [{ type: 'cross_entropy', threshold: 1.01 }] });
    const sock = join(t.dir, 's.sock');
    const child = (child0.c = sednaSpawn(['serve', '--socket', sock], { home }));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_c, sig) => resolve(sig)));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
    });
    const rand = mulberry32(21);
    const answered: string[] = [];
    let killed = false;
    let n = 0;
    const post = (body: string) =>
      new Promise<{ logged: boolean; sample_id?: string } | null>((resolve) => {
        const req = request({ socketPath: sock, method: 'POST', path: '/infer', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve(res.statusCode === 200 ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : null));
          res.on('error', () => resolve(null));
        });
        req.on('error', () => resolve(null)); // the kill cuts requests in flight: they were never answered
        req.end(body);
      });
    const clientLoop = async () => {
      while (!killed) {
        const o = await post(JSON.stringify({ id: n++, x: Array.from({ length: 16 }, () => rand() * 4 - 2) }));
        if (!o) continue;
        assert.equal(o.logged, true, 'every sample is hard here');
        answered.push(o.sample_id!);
        if (!killed && answered.length >= 400) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, clientLoop));
    assert.equal(await exited, 'SIGKILL');
    const db = openEdgeDb(homePaths(home).db);
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      const has = db.prepare('SELECT 1 FROM samples WHERE id = ?').pluck();
      const missing = answered.filter((id) => !has.get(id));
      assert.deepEqual(missing, [], `${missing.length} of ${answered.length} samples answered as logged are missing`);
    } finally {
      db.close();
    }
  } finally {
    if (child0.c && child0.c.exitCode === null && child0.c.signalCode === null) child0.c.kill('SIGKILL');
    t.cleanup();
  }
});
