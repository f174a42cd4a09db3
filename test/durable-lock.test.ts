// durable/lock.ts: live holders block (exit 6), holders that are gone (dead pid, pid reused,
// another boot, kill -9) are taken over, a real second process contends, and racing takeovers
// of one stale lock have exactly one winner. Hand-offs between processes are explicit (lines on
// stdin/stdout), never sleeps.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcessByStdio, spawn, spawnSync } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { acquireLock, acquireLockFile, processStartTime } from '../src/durable/lock.js';
import { bootId, pidAlive, stampAlive } from '../src/durable/process.js';
import { LockedError } from '../src/errors.js';
import { ROOT, tempDir } from './helpers/cli.js';

const holderFile = (dir: string, h: Record<string, unknown>) => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'sync.lock'), JSON.stringify({ name: 'sync', since: Date.now(), nonce: 'n-' + Math.random(), ...h }));
};

const locked = (e: unknown) => e instanceof LockedError;

/** A pid that ran and is gone now. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

/** stdin and stdout piped, stderr inherited */
type Contender = ChildProcessByStdio<Writable, Readable, null>;

/**
 * A second process that, on "go" on its stdin, tries the lock and prints WON or LOST <error name>;
 * a winner holds the lock until its stdin ends. It prints READY once loaded.
 */
function contender(dir: string): { p: Contender; line: () => Promise<string> } {
  const script = `
    import { acquireLock } from ${JSON.stringify(join(ROOT, 'src/durable/lock.ts'))};
    import { createInterface } from 'node:readline';
    let held = null;
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (l) => {
      if (l !== 'go') return;
      try {
        held = acquireLock(${JSON.stringify(dir)}, 'sync');
        console.log('WON');
      } catch (e) { console.log('LOST ' + e.name); }
    });
    rl.on('close', () => held?.release());
    console.log('READY');`;
  const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buf = '';
  p.stdout.on('data', (c: Buffer) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(l);
      else lines.push(l);
    }
  });
  let ended = false;
  p.on('close', () => {
    ended = true;
    for (const w of waiters.splice(0)) w('CLOSED');
  });
  const line = () => (lines.length ? Promise.resolve(lines.shift()!) : ended ? Promise.resolve('CLOSED') : new Promise<string>((res) => waiters.push(res)));
  return { p, line };
}

const closed = (p: Contender) => new Promise<void>((res) => (p.exitCode !== null || p.signalCode !== null ? res() : p.on('close', () => res())));

describe('durable/lock', () => {
  it('a live holder blocks with exit 6; release frees it; nothing is left behind', () => {
    const t = tempDir();
    try {
      const a = acquireLock(t.dir, 'sync');
      assert.throws(() => acquireLock(t.dir, 'sync'), (e: unknown) => locked(e) && /another sync is running \(pid \d+/.test((e as Error).message));
      a.release();
      const b = acquireLock(t.dir, 'sync');
      assert.equal(b.tookOver, false);
      b.release();
      assert.deepEqual(readdirSync(t.dir), [], 'no lock and no temp files left behind');
    } finally {
      t.cleanup();
    }
  });

  it('the holder record names pid, start time, host and boot', () => {
    const t = tempDir();
    try {
      const a = acquireLockFile(join(t.dir, 'train.lock'), 'kb train');
      const h = JSON.parse(readFileSync(join(t.dir, 'train.lock'), 'utf8'));
      assert.equal(h.pid, process.pid);
      assert.equal(h.host, hostname());
      assert.equal(h.start, processStartTime(process.pid));
      assert.equal(h.boot, bootId());
      assert.equal(h.name, 'kb train');
      a.release();
    } finally {
      t.cleanup();
    }
  });

  it('takes over a lock whose pid is dead, reused by another process, or from another boot; garbage is stale', () => {
    const t = tempDir();
    try {
      holderFile(t.dir, { pid: deadPid(), start: '123', host: hostname() });
      const a = acquireLock(t.dir, 'sync');
      assert.equal(a.tookOver, true);
      a.release();

      // pid reuse: a live pid with another start time is not the process that locked
      assert.ok(processStartTime(process.ppid) !== null);
      holderFile(t.dir, { pid: process.ppid, start: '1', host: hostname() });
      const b = acquireLock(t.dir, 'sync');
      assert.equal(b.tookOver, true);
      b.release();

      // another boot: the live pid and even its start time mean nothing after a reboot
      assert.ok(bootId() !== null, 'this test runs on Linux');
      holderFile(t.dir, { pid: process.ppid, start: processStartTime(process.ppid), host: hostname(), boot: 'not-this-boot' });
      const c = acquireLock(t.dir, 'sync');
      assert.equal(c.tookOver, true);
      c.release();

      writeFileSync(join(t.dir, 'sync.lock'), 'garbage');
      const d = acquireLock(t.dir, 'sync');
      assert.equal(d.tookOver, true);
      d.release();

      // a live pid with its real start time and this boot is a live holder
      holderFile(t.dir, { pid: process.ppid, start: processStartTime(process.ppid), host: hostname(), boot: bootId() });
      assert.throws(() => acquireLock(t.dir, 'sync'), locked);
      // a holder on another host cannot be checked: it counts as alive
      holderFile(t.dir, { pid: 1, start: '1', host: 'some-other-host' });
      assert.throws(() => acquireLock(t.dir, 'sync'), (e: unknown) => locked(e) && /some-other-host/.test((e as Error).message));
    } finally {
      t.cleanup();
    }
  });

  it('a bare-pid lock file (written by older versions) is judged by its pid', () => {
    const t = tempDir();
    try {
      const path = join(t.dir, 'train.lock');
      writeFileSync(path, String(process.ppid));
      assert.throws(() => acquireLockFile(path, 'kb train'), (e: unknown) => locked(e) && new RegExp(`pid ${process.ppid}`).test((e as Error).message));
      writeFileSync(path, String(deadPid()));
      const l = acquireLockFile(path, 'kb train');
      assert.equal(l.tookOver, true);
      l.release();
      assert.equal(existsSync(path), false);
    } finally {
      t.cleanup();
    }
  });

  it('sweeps the temp files of acquirers that died, keeps those of live ones', () => {
    const t = tempDir();
    try {
      const dead = join(t.dir, `.sync.lock.new.${deadPid()}.abcdef`);
      const live = join(t.dir, `.sync.lock.new.${process.ppid}.abcdef`);
      writeFileSync(dead, '{}');
      writeFileSync(live, '{}');
      acquireLock(t.dir, 'sync').release();
      assert.equal(existsSync(dead), false);
      assert.equal(existsSync(live), true);
    } finally {
      t.cleanup();
    }
  });

  it('stampAlive / pidAlive: this process is alive, a dead pid and nonsense pids are not', () => {
    assert.equal(pidAlive(process.pid), true);
    assert.equal(pidAlive(deadPid()), false);
    assert.equal(pidAlive(0), false);
    assert.equal(pidAlive(-1), false);
    assert.equal(stampAlive({ pid: process.pid, start: processStartTime(process.pid), host: hostname(), boot: bootId() }), true);
  });

  it('a second process contends: it loses while we hold, wins after release; kill -9 of it leaves a lock we take over', async () => {
    const t = tempDir();
    const other = contender(t.dir);
    try {
      assert.equal(await other.line(), 'READY');
      const mine = acquireLock(t.dir, 'sync');
      other.p.stdin.write('go\n');
      assert.equal(await other.line(), 'LOST LockedError');
      mine.release();
      other.p.stdin.write('go\n');
      assert.equal(await other.line(), 'WON');
      // it holds now: we are refused, naming it
      assert.throws(() => acquireLock(t.dir, 'sync'), (e: unknown) => locked(e) && new RegExp(`pid ${other.p.pid}`).test((e as Error).message));
      // crash of the holder: the lock file stays, and the next taker sees the holder is gone
      other.p.kill('SIGKILL');
      await closed(other.p);
      assert.ok(existsSync(join(t.dir, 'sync.lock')), 'kill -9 leaves the lock file');
      const after = acquireLock(t.dir, 'sync');
      assert.equal(after.tookOver, true);
      after.release();
    } finally {
      other.p.kill('SIGKILL');
      await closed(other.p);
      t.cleanup();
    }
  });

  it('racing takeovers of one stale lock: exactly one of eight processes wins', async () => {
    const t = tempDir();
    const kids = Array.from({ length: 8 }, () => contender(t.dir));
    try {
      holderFile(t.dir, { pid: deadPid(), start: '5', host: hostname() });
      // every racer is loaded before any is told to go; the winner holds the lock until its
      // stdin ends, which happens only after all eight answered: a late racer meets a held lock
      assert.deepEqual(await Promise.all(kids.map((k) => k.line())), kids.map(() => 'READY'));
      for (const k of kids) k.p.stdin.write('go\n');
      const outs = await Promise.all(kids.map((k) => k.line()));
      for (const k of kids) k.p.stdin.end();
      await Promise.all(kids.map((k) => closed(k.p)));
      assert.equal(outs.filter((o) => o === 'WON').length, 1, outs.join(' | '));
      assert.equal(outs.filter((o) => o === 'LOST LockedError').length, 7, outs.join(' | '));
      assert.ok(!existsSync(join(t.dir, 'sync.lock')), 'the winner released it');
    } finally {
      for (const k of kids) k.p.kill('SIGKILL');
      t.cleanup();
    }
  });
});
