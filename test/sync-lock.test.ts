// The single-instance lock: live holders block (exit 6), dead or pid-reused holders are taken
// over, racing takeovers of one stale lock have exactly one winner, and the real CLI: a second
// concurrent sync exits 6 at once, a kill -9'd sync's lock is taken over by the next run.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { acquireLock, processStartTime } from '../src/sync/lock.js';
import { CliError } from '../src/format/exit-codes.js';
import { ROOT, tempDir } from './helpers/cli.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { edgeIds, kbSamples, makeEdge, sednaAsync, seedOutbox, suiteKb } from './helpers/sync-edge.js';
import { sednaSpawn } from './helpers/cli.js';

const holderFile = (dir: string, h: Record<string, unknown>) => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'sync.lock'), JSON.stringify({ name: 'sync', since: Date.now(), nonce: 'n-' + Math.random(), ...h }));
};

describe('lock (unit)', () => {
  it('a live holder blocks with exit 6; release frees it', () => {
    const t = tempDir();
    try {
      const a = acquireLock(t.dir, 'sync');
      assert.throws(
        () => acquireLock(t.dir, 'sync'),
        (e: unknown) => e instanceof CliError && e.code === 6 && /another sync is running \(pid \d+/.test(e.message),
      );
      a.release();
      const b = acquireLock(t.dir, 'sync');
      assert.equal(b.tookOver, false);
      b.release();
      assert.ok(!existsSync(join(t.dir, 'sync.lock')));
      assert.deepEqual(readdirSync(t.dir), [], 'no temp files left behind');
    } finally {
      t.cleanup();
    }
  });

  it('takes over a lock whose pid is dead, or whose pid now runs another process', () => {
    const t = tempDir();
    try {
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
      const deadPid = Number(dead.stdout);
      holderFile(t.dir, { pid: deadPid, start: '123', host: hostname() });
      const a = acquireLock(t.dir, 'sync');
      assert.equal(a.tookOver, true);
      a.release();

      // pid reuse: a live pid (ours) with another start time is not the process that locked
      assert.ok(processStartTime(process.pid) !== null);
      holderFile(t.dir, { pid: process.ppid, start: '1', host: hostname() });
      const b = acquireLock(t.dir, 'sync');
      assert.equal(b.tookOver, true);
      b.release();

      // a garbage lock file (never written by us) is stale too
      writeFileSync(join(t.dir, 'sync.lock'), 'garbage');
      const c = acquireLock(t.dir, 'sync');
      assert.equal(c.tookOver, true);
      c.release();

      // a live pid with its real start time is a live holder
      holderFile(t.dir, { pid: process.ppid, start: processStartTime(process.ppid), host: hostname() });
      assert.throws(() => acquireLock(t.dir, 'sync'), (e: unknown) => e instanceof CliError && e.code === 6);
      // a holder on another host cannot be checked: it counts as alive
      holderFile(t.dir, { pid: 1, start: '1', host: 'some-other-host' });
      assert.throws(() => acquireLock(t.dir, 'sync'), (e: unknown) => e instanceof CliError && e.code === 6 && /some-other-host/.test(e.message));
    } finally {
      t.cleanup();
    }
  });

  it('racing takeovers of one stale lock: exactly one process wins', async () => {
    const t = tempDir();
    try {
      holderFile(t.dir, { pid: 2 ** 22 + 17, start: '5', host: hostname() });
      // the winner holds the lock until every racer has tried (its stdin is closed only after
      // all eight answered): a racer starting late, on a busy machine, still meets a held lock
      const script = `
        import { acquireLock } from ${JSON.stringify(join(ROOT, 'src/sync/lock.ts'))};
        const go = Number(process.argv[1]);
        while (Date.now() < go) {}
        try {
          const l = acquireLock(${JSON.stringify(t.dir)}, 'sync');
          console.log('WON');
          process.stdin.on('end', () => l.release());
          process.stdin.resume();
        } catch (e) { console.log('LOST ' + e.code); }`;
      const go = Date.now() + 2500;
      const kids = Array.from({ length: 8 }, () => spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, String(go)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] }));
      const answered = kids.map(
        (p) =>
          new Promise<string>((res) => {
            let out = '';
            p.stdout.on('data', (c: Buffer) => {
              out += c.toString();
              if (out.includes('\n')) res(out.trim());
            });
            p.on('close', () => res(out.trim()));
          }),
      );
      const runs = kids.map((p) => new Promise<void>((res) => p.on('close', () => res())));
      const outs = await Promise.all(answered);
      for (const p of kids) p.stdin.end();
      await Promise.all(runs);
      assert.equal(outs.filter((o) => o === 'WON').length, 1, outs.join(' | '));
      assert.equal(outs.filter((o) => o === 'LOST 6').length, 7, outs.join(' | '));
      assert.ok(!existsSync(join(t.dir, 'sync.lock')));
    } finally {
      t.cleanup();
    }
  });
});

describe('lock (sync CLI)', () => {
  const kb = suiteKb();

  it('a second concurrent sync exits 6 at once; a kill -9 leaves a stale lock the next run takes over', async () => {
    const proxy = await startFaultProxy(kb().port);
    const e = makeEdge(kb(), { url: proxy.url });
    try {
      const ids = seedOutbox(e.home, 600, 2048, { seed: 21 });
      proxy.setPlan(() => ({ kind: 'delay', ms: 100 })); // a slow link keeps the first run busy
      const first = sednaSpawn(['sync', '--push-only', '--batch-size', '20'], { home: e.home });
      const lockPath = join(e.home, 'locks', 'sync.lock');
      const t0 = Date.now();
      while (!existsSync(lockPath) && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 20));
      assert.ok(existsSync(lockPath), 'first sync holds the lock');
      assert.equal(JSON.parse(readFileSync(lockPath, 'utf8')).pid, first.pid);

      const second = await sednaAsync(['sync', '--json'], { home: e.home });
      assert.equal(second.code, 6, second.stderr);
      assert.match(second.stderr, /locked: another sync is running \(pid \d+/);
      assert.equal(JSON.parse(second.stdout).exit, 6, '--json answers even when the run cannot start');
      // exit 6 (not 0 after the first run ends) is the proof it did not wait for the lock

      // kill -9 the holder mid-push (once it has pushed something): its lock file stays behind
      const t2 = Date.now();
      while ((await kbSamples(kb(), kb().deviceId)).length === 0 && first.exitCode === null && Date.now() - t2 < 120_000) await new Promise((r) => setTimeout(r, 50));
      first.kill('SIGKILL');
      await new Promise((r) => first.on('close', r));
      assert.ok(existsSync(lockPath), 'a killed run leaves its lock file');

      proxy.setPlan(() => ({ kind: 'none' }));
      const third = await sednaAsync(['sync', '--push-only', '--json'], { home: e.home });
      assert.equal(third.code, 0, third.stderr);
      assert.ok(!existsSync(lockPath), 'released after the run');
      const onKb = await kbSamples(kb(), kb().deviceId);
      assert.deepEqual(onKb.map((x) => x.id).sort(), [...ids].sort());
      assert.deepEqual(edgeIds(e.home).pending, []);
    } finally {
      await proxy.close();
      e.cleanup();
    }
  });
});
